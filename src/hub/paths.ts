// Names: repo ids, revisions, file paths in a repo, URL quoting and glob patterns, each as
// huggingface_hub spells them.

import { checkRelativePath, quoteValue } from '../io/relpath.js';
import { HubError, type HubErrorCode } from './errors.js';

/** A 40-hex-digit commit hash (huggingface_hub's REGEX_COMMIT_HASH). */
export const COMMIT_HASH = /^[0-9a-f]{40}$/;
/** A 64-hex-digit sha256: the ETag of an LFS file. */
export const SHA256 = /^[0-9a-f]{64}$/;

const REPO_ID = /^(?:[\w\-.]+\/)?[\w\-.]{1,96}$/;

/** Checks a repo id (`name` or `org/name`) the way huggingface_hub's validator does. */
export function validateRepoId(repoId: string): void {
  if (!REPO_ID.test(repoId) || repoId.includes('--') || repoId.includes('..') || repoId.endsWith('.git') || /(^|\/)[-.]|[-.]($|\/)/.test(repoId)) {
    throw new HubError('invalid', `"${repoId}" is not a Hugging Face repo id (expected org/name: letters, digits, '-', '_', '.'; no '--' or '..')`, { repoId });
  }
}

/** The kinds of hub repository this module reads: models (the default everywhere) and datasets. */
export type RepoType = 'model' | 'dataset';
export const REPO_TYPES: readonly RepoType[] = ['model', 'dataset'];

/** huggingface_hub's `REPO_TYPES_URL_PREFIXES`: what comes before the repo id in hub URLs. */
const URL_PREFIXES: Readonly<Record<RepoType, string>> = { model: '', dataset: 'datasets/' };

/** Checks a repo type given at run time (`'model'` or `'dataset'`). */
export function validateRepoType(repoType: unknown): asserts repoType is RepoType {
  if (!REPO_TYPES.includes(repoType as RepoType)) {
    throw new HubError('invalid', `${JSON.stringify(repoType)} is not a repo type this module handles (expected "model" or "dataset")`);
  }
}

/** The repo as hub URLs name it, and as messages name it: `org/name` for a model,
 *  `datasets/org/name` for a dataset. */
export function repoUrlName(repoId: string, repoType: RepoType = 'model'): string {
  validateRepoType(repoType);
  return `${URL_PREFIXES[repoType]}${repoId}`;
}

/** `models--org--name` or `datasets--org--name`: the cache folder of a repo (huggingface_hub's
 *  `repo_folder_name`: the plural type, then the id with `/` as `--`). */
export function repoFolderName(repoId: string, repoType: RepoType = 'model'): string {
  validateRepoId(repoId);
  validateRepoType(repoType);
  return [`${repoType}s`, ...repoId.split('/')].join('--');
}

/** What a validation error names besides its message. */
export interface NameDetails {
  repoId?: string;
  path?: string;
}

/** A path inside a repository that came from outside (a tree listing, `siblings`, a shard index, a
 *  cache file): relative, `/`-separated, in canonical form (no empty, `.` or `..` segments), no
 *  backslash, NUL or drive letter. `source` says where it came from ("the tree listing <url>");
 *  returns the path. Every repo path goes through here before it is joined to a cache folder. */
export function validateRepoFilePath(path: unknown, source: string, details: NameDetails = {}, code: HubErrorCode = 'protocol'): string {
  const r = typeof path === 'string' ? checkRelativePath(path) : { problem: 'it is not a string' };
  const problem = 'problem' in r ? r.problem : r.path !== path ? "it has empty or '.' segments" : undefined;
  if (problem !== undefined) {
    throw new HubError(code, `${source}: ${quoteValue(path)} is not a relative file path inside the repository (${problem})`, { ...details, path: typeof path === 'string' ? path : undefined });
  }
  return path as string;
}

/** Checks a path inside a repo given by the caller: relative, `/`-separated, no `.`/`..`/empty segments. */
export function validateRepoPath(repoId: string, path: string): void {
  validateRepoFilePath(path, repoId, { repoId }, 'invalid');
}

/** A commit hash that came from outside (`X-Repo-Commit`, the revision API's `sha`, a `refs/` file):
 *  40 lowercase hex digits, as huggingface_hub's REGEX_COMMIT_HASH; it names `snapshots/<commit>/`.
 *  `source` names the header, URL or file. Returns the commit. */
export function validateCommit(commit: unknown, source: string, details: NameDetails = {}, code: HubErrorCode = 'protocol'): string {
  if (typeof commit !== 'string' || !COMMIT_HASH.test(commit)) {
    throw new HubError(code, `${source} is ${quoteValue(commit)}, not a commit hash (expected 40 lowercase hex digits)`, details);
  }
  return commit;
}

/** Characters an ETag may keep as a blob file name: the ETag's own (RFC 9110 etagc: visible ASCII
 *  but '"'), less the separators and the characters Windows refuses in a file name. */
const ETAG_CHARS = /^[!#-~]+$/;
const ETAG_UNSAFE = /[/\\:*?<>|]/;

/** An ETag (already without `W/` and quotes, see {@link normalizeEtag}) that came from a server:
 *  it names `blobs/<etag>` and `.locks/…/<etag>.lock`, so it must be one file name: the ETag's own
 *  characters, no '/', '\\' or ':', no '..', not ending in `.incomplete` (the partial download's
 *  name). An LFS file's ETag (`lfs`, sent as X-Linked-Etag) must be its sha256 (64 lowercase hex
 *  digits): that is what its download is checked against, so anything else is refused rather than
 *  trusted. `source` names the header and URL. Returns the ETag. */
export function validateEtag(etag: unknown, source: string, details: NameDetails = {}, o: { lfs?: boolean } = {}): string {
  if (typeof etag !== 'string' || !etag) throw new HubError('protocol', `${source} is empty, expected an ETag`, details);
  if (o.lfs && !SHA256.test(etag)) {
    throw new HubError('protocol', `${source} is ${quoteValue(etag)}, not the sha256 of an LFS file (expected 64 lowercase hex digits); the file is not downloaded`, details);
  }
  if (etag.length > 255 || !ETAG_CHARS.test(etag) || ETAG_UNSAFE.test(etag) || etag.includes('..') || etag === '.' || etag.endsWith('.incomplete')) {
    throw new HubError('protocol', `${source} is ${quoteValue(etag)}, not an ETag usable as a blob name in the cache (expected up to 255 visible characters without '/', '\\', ':' or '..')`, details);
  }
  return etag;
}

/** Checks a revision: a branch, tag or commit hash; refs such as `refs/pr/1` may contain `/`. */
export function validateRevision(repoId: string, revision: string): void {
  const parts = revision.split('/');
  if (!revision || revision.includes('\\') || revision.includes('\0') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new HubError('invalid', `${repoId}: "${revision}" is not a revision (a branch, tag or commit hash)`, { repoId });
  }
}

/** Python's `urllib.parse.quote(s, safe)`: UTF-8 bytes outside `A-Za-z0-9_.-~` and `safe` become `%XX`. */
export function quote(s: string, safe = '/'): string {
  let out = '';
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.\-~]/.test(c) || (byte < 128 && safe.includes(c))) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** `{endpoint}/{repo_id}/resolve/{revision}/{path}`, with `datasets/` before the id of a dataset
 *  (huggingface_hub's `hf_hub_url`). */
export function resolveUrl(endpoint: string, repoId: string, revision: string, path: string, repoType: RepoType = 'model'): string {
  return `${endpoint}/${repoUrlName(repoId, repoType)}/resolve/${quote(revision, '')}/${quote(path)}`;
}

/** `{endpoint}/api/{type}s/{repo_id}`: the base of the repo-info and tree APIs
 *  (`/api/models/…`, `/api/datasets/…`). */
export function apiUrl(endpoint: string, repoId: string, repoType: RepoType = 'model'): string {
  validateRepoType(repoType);
  return `${endpoint}/api/${repoType}s/${repoId}`;
}

/** Python's `fnmatch.translate` for `fnmatchcase`: `*` (any run, `/` included), `?`, `[seq]`, `[!seq]`. */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = pattern[i++]!;
    if (c === '*') {
      re += '[\\s\\S]*';
      while (pattern[i] === '*') i++;
    } else if (c === '?') {
      re += '[\\s\\S]';
    } else if (c === '[') {
      let j = i;
      if (pattern[j] === '!') j++;
      if (pattern[j] === ']') j++;
      while (j < n && pattern[j] !== ']') j++;
      if (j >= n) {
        re += '\\[';
      } else {
        let body = pattern.slice(i, j);
        i = j + 1;
        const negate = body.startsWith('!');
        if (negate) body = body.slice(1);
        body = body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^').replace(/\[/g, '\\[').replace(/]/g, '\\]');
        re += body === '' ? (negate ? '[\\s\\S]' : '(?!)') : `[${negate ? '^' : ''}${body}]`;
      }
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

/** Patterns as snapshot_download takes them: one or several globs; a trailing `/` means "the folder". */
export type Patterns = string | readonly string[];

function compile(patterns: Patterns): RegExp[] {
  return (typeof patterns === 'string' ? [patterns] : [...patterns]).map((p) => {
    const q = p.replace(/\\/g, '/');
    return globToRegExp(q.endsWith('/') ? `${q}*` : q);
  });
}

/** huggingface_hub's `filter_repo_objects`: keeps the paths matching at least one of `allow` (when
 *  given) and none of `ignore` (when given). Case-sensitive; `*` matches across `/`. */
export function filterRepoPaths(paths: Iterable<string>, allow?: Patterns, ignore?: Patterns): string[] {
  const a = allow === undefined ? undefined : compile(allow);
  const g = ignore === undefined ? undefined : compile(ignore);
  const out: string[] = [];
  for (const raw of paths) {
    const p = raw.replace(/\\/g, '/');
    if (a && !a.some((r) => r.test(p))) continue;
    if (g && g.some((r) => r.test(p))) continue;
    out.push(raw);
  }
  return out;
}

/** Strips `W/` and quotes from an ETag header (huggingface_hub's `_normalize_etag`). */
export function normalizeEtag(etag: string | null | undefined): string | undefined {
  if (etag === null || etag === undefined) return undefined;
  return etag.replace(/^[W/]+/, '').replace(/^"+|"+$/g, '');
}

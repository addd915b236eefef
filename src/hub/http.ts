// The hub's HTTP protocol: the HEAD on `resolve/` that gives a file's commit, ETag, size and
// download location; the repo-info and tree APIs; errors mapped to HubError the way
// huggingface_hub's `hf_raise_for_status` classifies them.

import process from 'node:process';
import type { TreeEntry } from './cache.js';
import { quoteValue } from '../io/relpath.js';
import { HubError } from './errors.js';
import { apiUrl, normalizeEtag, quote, repoUrlName, resolveUrl, SHA256, validateCommit, validateEtag, validateRepoFilePath, type RepoType } from './paths.js';
import type { HubSettings } from './settings.js';

const USER_AGENT = `diffsim-hub; node/${process.versions?.node ?? 'unknown'}`;

/** What a request is about, and what its error message can name. */
export interface RequestSubject {
  repoId: string;
  /** `model` when absent. */
  repoType?: RepoType;
  revision: string;
  path?: string;
}

/** How messages name the subject's repo: `org/name`, or `datasets/org/name`. */
export function subjectName(subject: RequestSubject): string {
  return repoUrlName(subject.repoId, subject.repoType ?? 'model');
}

export function authHeaders(s: HubSettings): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': USER_AGENT };
  if (s.token) h.authorization = `Bearer ${s.token}`;
  return h;
}

const OS_ERRORS: [RegExp, string][] = [
  [/connection refused/i, 'ECONNREFUSED'],
  [/connection reset/i, 'ECONNRESET'],
  [/dns error|failed to lookup|name or service not known|nodename nor servname/i, 'ENOTFOUND'],
  [/timed out/i, 'ETIMEDOUT'],
  [/network is unreachable/i, 'ENETUNREACH'],
];

/** A short reason for a failed request: the system error code (also recognised in Deno's messages),
 *  `timed out`, or the message. */
export function describeCause(e: unknown): string {
  let cur: unknown = e;
  let last = String(e);
  for (let i = 0; i < 5 && cur; i++) {
    const c = cur as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    if (typeof c.code === 'string' && !c.code.startsWith('UND_ERR')) return c.code;
    if (c.name === 'TimeoutError') return 'timed out';
    if (typeof c.message === 'string') {
      for (const [re, code] of OS_ERRORS) if (re.test(c.message)) return code;
      last = c.message;
    }
    cur = c.cause;
  }
  return last;
}

/** `fetch`, with any failure to get an answer (refused, DNS, reset, timeout) as a `network` HubError. */
export async function hubFetch(url: string, init: RequestInit, s: HubSettings, subject: RequestSubject): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const why = describeCause(e);
    if (/redirect count exceeded/i.test(why)) {
      // fetch's own limit (20) on a GET that follows redirects: a loop, not a broken connection.
      throw new HubError('protocol', `${subjectName(subject)}: too many redirects from ${url}${subject.path ? ` for "${subject.path}"` : ''} (a redirect loop at ${s.endpoint}, a proxy or the CDN?)`, { repoId: subject.repoId, path: subject.path, cause: e });
    }
    throw new HubError('network', `${subjectName(subject)}: cannot reach ${s.endpoint} (${why})${subject.path ? ` for "${subject.path}"` : ''}`, { repoId: subject.repoId, path: subject.path, cause: e });
  }
}

/** The HubError for an error answer. */
export function httpError(res: Response, s: HubSettings, subject: RequestSubject): HubError {
  const code = res.headers.get('x-error-code');
  const msg = res.headers.get('x-error-message');
  const { repoId, revision, path } = subject;
  const name = subjectName(subject);
  const what = path ? `"${path}"` : `revision "${revision}"`;
  const d = { repoId, path, status: res.status, commit: res.headers.get('x-repo-commit') ?? undefined };
  const st = `HTTP ${res.status}`;
  if (code === 'RevisionNotFound') return new HubError('revision-not-found', `${name}: no revision "${revision}" (${st}${path ? ` for "${path}"` : ''})`, d);
  if (code === 'EntryNotFound' || (res.status === 404 && !code && path)) return new HubError('entry-not-found', `${name}: no file "${path}" at revision "${revision}" (${st})`, d);
  if (code === 'GatedRepo') return new HubError('gated', `${name}: gated repository; accept its conditions at ${s.endpoint}/${name} and ${s.token ? 'use a token of that account' : 'set HF_TOKEN (or run `hf auth login`)'} (${st} for ${what})`, d);
  if (res.status === 401 && msg === 'Invalid credentials in Authorization header') return new HubError('repo-not-found', `${name}: the token was rejected (invalid credentials); check HF_TOKEN (${st} for ${what})`, d);
  if (code === 'RepoNotFound' || res.status === 401 || res.status === 404) {
    return new HubError('repo-not-found', `${name}: repository not found at ${s.endpoint}, or private or gated and ${s.token ? 'the token sent has no access to it' : 'no token was sent (set HF_TOKEN or run `hf auth login`)'} (${st} for ${what})`, d);
  }
  if (res.status === 403) return new HubError('forbidden', `${name}: access to ${what} refused${msg ? ` (${msg})` : ''}; make sure the token has read access (${st})`, d);
  return new HubError('http', `${name}: ${s.endpoint} answered ${st}${res.statusText ? ` ${res.statusText}` : ''} for ${what}`, d);
}

/** A file's metadata from `HEAD …/resolve/{revision}/{path}` (huggingface_hub's `get_hf_file_metadata`). */
export interface FileMetadata {
  /** `X-Repo-Commit`. */
  commit: string;
  /** `X-Linked-Etag` (LFS: the sha256) or `ETag` (git blob sha1), without quotes or `W/`. */
  etag: string;
  /** Where to GET the bytes: the redirect target (a CDN, for LFS files) or the resolve URL itself. */
  location: string;
  /** `X-Linked-Size`, or `Content-Length` of a non-redirect answer. */
  size: number;
}

function isRelativeLocation(loc: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(loc) && !loc.startsWith('//');
}

/** Redirects a HEAD follows before it gives up (huggingface_hub and browsers stop around there). */
export const MAX_REDIRECTS = 10;

/** HEAD on the resolve URL. Relative redirects (a renamed repo) are followed; an absolute one (a CDN)
 *  is not: its headers are the answer and its Location is where the GET goes, as in huggingface_hub.
 *  The commit and ETag are checked here, before they name anything in the cache. */
export async function fileMetadata(s: HubSettings, subject: RequestSubject & { path: string }): Promise<FileMetadata> {
  let url = resolveUrl(s.endpoint, subject.repoId, subject.revision, subject.path, subject.repoType ?? 'model');
  const headers = { ...authHeaders(s), 'accept-encoding': 'identity' };
  const details = { repoId: subject.repoId, path: subject.path };
  for (let hops = 0; ; hops++) {
    const res = await hubFetch(url, { method: 'HEAD', headers, redirect: 'manual', signal: AbortSignal.timeout(s.etagTimeout * 1000) }, s, subject);
    const location = res.headers.get('location');
    const redirect = res.status >= 300 && res.status < 400;
    if (!redirect && !res.ok) throw httpError(res, s, subject);
    const commit = res.headers.get('x-repo-commit');
    let follow: string | undefined;
    if (redirect && location && isRelativeLocation(location)) {
      const u = new URL(url);
      u.pathname = new URL(location, url).pathname;
      follow = u.toString();
    } else if (redirect && location && !(commit && (res.headers.get('x-linked-etag') ?? res.headers.get('etag')))) {
      // A redirect that does not carry the metadata: follow it when it stays on the hub's host name
      // (huggingface_hub >= 2 follows those), never to a CDN elsewhere.
      const target = new URL(location, url);
      if (target.hostname === new URL(url).hostname || target.hostname === new URL(s.endpoint).hostname) follow = target.toString();
    }
    if (follow !== undefined) {
      if (hops >= MAX_REDIRECTS) {
        throw new HubError('protocol', `${subjectName(subject)}: too many redirects (more than ${MAX_REDIRECTS}) on the HEAD for "${subject.path}"; the last one, from ${url}, went to ${follow} (a redirect loop at ${s.endpoint} or a proxy?)`, details);
      }
      url = follow;
      continue;
    }
    const linked = res.headers.get('x-linked-etag');
    const etagHeader = linked !== null ? 'X-Linked-Etag' : 'ETag';
    const etag = normalizeEtag(linked ?? res.headers.get('etag'));
    const sizeText = res.headers.get('x-linked-size') ?? (redirect ? null : res.headers.get('content-length'));
    const size = sizeText === null ? NaN : Number(sizeText);
    const where = `${subjectName(subject)}: ${s.endpoint} answered the HEAD for "${subject.path}" without`;
    if (!commit) throw new HubError('protocol', `${where} X-Repo-Commit (is HF_ENDPOINT a Hugging Face hub? check proxy and firewall settings)`, details);
    if (!etag) throw new HubError('protocol', `${where} an ETag`, details);
    if (!Number.isInteger(size) || size < 0) throw new HubError('protocol', `${where} a size (X-Linked-Size or Content-Length)`, details);
    const header = (name: string) => `${subjectName(subject)}: the ${name} header of the answer to the HEAD for "${subject.path}" (${url})`;
    validateCommit(commit, header('X-Repo-Commit'), details);
    // X-Linked-Etag (or X-Linked-Size) marks an LFS file: its ETag must be its sha256.
    validateEtag(etag, header(etagHeader), details, { lfs: linked !== null || res.headers.get('x-linked-size') !== null });
    return { commit, etag, location: redirect && location ? new URL(location, url).toString() : url, size };
  }
}

async function getJson(url: string, s: HubSettings, subject: RequestSubject): Promise<{ body: unknown; res: Response }> {
  const res = await hubFetch(url, { headers: authHeaders(s), signal: AbortSignal.timeout(s.etagTimeout * 1000 * 3) }, s, subject);
  if (!res.ok) throw httpError(res, s, subject);
  try {
    return { body: await res.json(), res };
  } catch (e) {
    throw new HubError('protocol', `${subjectName(subject)}: ${url} did not answer JSON (${describeCause(e)})`, { repoId: subject.repoId, cause: e });
  }
}

/** `GET /api/models/{repo}/revision/{revision}` (`/api/datasets/…` for a dataset): the commit a
 *  revision points at, and the file list. */
export async function repoInfo(s: HubSettings, subject: RequestSubject): Promise<{ sha: string; siblings: string[] }> {
  const url = `${apiUrl(s.endpoint, subject.repoId, subject.repoType ?? 'model')}/revision/${quote(subject.revision, '')}`;
  const { body } = await getJson(url, s, subject);
  const b = body as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
  if (b?.sha === undefined) throw new HubError('protocol', `${subjectName(subject)}: the repo info for revision "${subject.revision}" (${url}) has no commit sha`, { repoId: subject.repoId });
  const sha = validateCommit(b.sha, `${subjectName(subject)}: the "sha" of the repo info for revision "${subject.revision}" (${url})`, { repoId: subject.repoId });
  const siblings = Array.isArray(b.siblings) ? b.siblings.map((x) => validateRepoFilePath(x?.rfilename, `${subjectName(subject)}: a "siblings" entry of the repo info ${url}`, { repoId: subject.repoId })) : [];
  return { sha, siblings };
}

function nextLink(res: Response): string | undefined {
  const link = res.headers.get('link');
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return m[1];
  }
  return undefined;
}

/** `GET /api/models/{repo}/tree/{commit}?recursive=true` (`/api/datasets/…` for a dataset), every
 *  page (`Link: <…>; rel="next"`): the files of a commit with their sizes and hashes. */
export async function listTree(s: HubSettings, subject: RequestSubject): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  let url: string | undefined = `${apiUrl(s.endpoint, subject.repoId, subject.repoType ?? 'model')}/tree/${quote(subject.revision, '')}?recursive=true`;
  for (let pages = 0; url && pages < 10_000; pages++) {
    const { body, res } = await getJson(url, s, subject);
    if (!Array.isArray(body)) throw new HubError('protocol', `${subjectName(subject)}: the tree listing of "${subject.revision}" is not a list`, { repoId: subject.repoId });
    for (const e of body as { type?: unknown; path?: unknown; size?: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown }; xetHash?: unknown }[]) {
      if (e?.type !== 'file') continue;
      const source = `${subjectName(subject)}: the tree listing ${url}`;
      const path = validateRepoFilePath(e.path, `${source} names the file`, { repoId: subject.repoId });
      if (e.lfs && !(typeof e.lfs.oid === 'string' && SHA256.test(e.lfs.oid))) {
        throw new HubError('protocol', `${source}: the LFS oid of "${path}" is ${quoteValue(e.lfs.oid)}, not a sha256 (expected 64 lowercase hex digits)`, { repoId: subject.repoId, path });
      }
      const entry: TreeEntry = { size: typeof e.size === 'number' ? e.size : 0, blob_id: typeof e.oid === 'string' ? e.oid : '' };
      if (e.lfs && typeof e.lfs.oid === 'string') {
        entry.lfs_sha256 = e.lfs.oid;
        entry.lfs_size = typeof e.lfs.size === 'number' ? e.lfs.size : entry.size;
      }
      if (typeof e.xetHash === 'string') entry.xet_hash = e.xetHash;
      out.set(path, entry);
    }
    const next = nextLink(res);
    url = next ? new URL(next, url).toString() : undefined;
  }
  return out;
}

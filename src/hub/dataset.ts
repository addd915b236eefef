// Dataset folders given as hub URIs, `hf://datasets/org/name[@revision][/folder]` (the grammar of
// huggingface_hub's `parse_hf_uri`), resolved to a folder of the Hugging Face cache.
//
// Only the `hf://` form names a hub dataset. The bare `datasets/org/name` is not accepted as one: it
// is also a valid relative path on disk, so any string that does not start with `hf://` is a local
// path and is returned unchanged.

import { basename, join } from 'node:path';
import { isDirectory, readTreeCache, repoCacheDir } from './cache.js';
import { callContext, notCachedError } from './download.js';
import { HubError } from './errors.js';
import { repoUrlName, validateRepoId, validateRepoPath, validateRevision, type RepoType } from './paths.js';
import { snapshotDownload, type SnapshotOptions } from './snapshot.js';

export const HF_PROTOCOL = 'hf://';

/** A parsed `hf://[<type>s/]org/name[@revision][/path]`. */
export interface HfUri {
  repoType: RepoType;
  repoId: string;
  /** From `@revision`, URL-decoded (`refs%2Fpr%2F1` is `refs/pr/1`); `undefined` means `main`. */
  revision: string | undefined;
  /** The path inside the repo, `''` for its root. */
  path: string;
}

/** A parsed `hf://datasets/org/name[@revision][/folder]`. */
export interface DatasetSpec {
  repoId: string;
  /** `undefined` means `main`. */
  revision: string | undefined;
  /** The folder inside the dataset, `''` for its root. */
  subfolder: string;
}

const DATASET_FORM = 'hf://datasets/org/name[@revision][/folder]';
/** `hf://` type prefixes (huggingface_hub's `HF_URI_TYPE_PREFIXES`), and which this module reads. */
const TYPE_PREFIXES = new Map<string, RepoType | undefined>([
  ['models', 'model'],
  ['datasets', 'dataset'],
  ['spaces', undefined],
  ['kernels', undefined],
  ['buckets', undefined],
]);
const SINGULAR = new Map([...TYPE_PREFIXES.keys()].map((p) => [p.slice(0, -1), p]));
/** Revisions containing `/` that `@…` takes whole: `refs/pr/N`, `refs/convert/<name>`. */
const SPECIAL_REF = /^refs\/(?:convert\/[\w.-]+|pr\/\d+)/;

function uriError(uri: string, reason: string, form: string, repoId?: string): HubError {
  return new HubError('invalid', `${uri}: not a Hugging Face ${form === DATASET_FORM ? 'dataset' : 'hub'} URI: ${reason} (expected ${form})`, repoId === undefined ? {} : { repoId });
}

/** Python's `urllib.parse.unquote`: `%XX` runs decoded as UTF-8, anything else left as written. */
function unquote(s: string): string {
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => new TextDecoder().decode(Uint8Array.from(run.slice(1).split('%'), (h) => parseInt(h, 16))));
}

/** Parses a hub URI, `hf://[models/|datasets/]org/name[@revision][/path]`, as huggingface_hub's
 *  `parse_hf_uri` does: no prefix means a model; `@` only counts right after `org/name` (an `@`
 *  deeper in the path is part of a file name); `@refs/pr/N` and `@refs/convert/<name>` are taken
 *  whole, any other revision ends at the next `/` (write a `/` inside one as `%2F`). Leading and
 *  trailing `/` are ignored. Spaces, kernels and buckets are refused (this module reads models and
 *  datasets), so are empty path segments, `.` and `..`. Errors are `HubError`s (`invalid`) that
 *  quote the URI and say what was expected. */
export function parseHfUri(uri: string, form = 'hf://[datasets/]org/name[@revision][/path]'): HfUri {
  if (!uri.startsWith(HF_PROTOCOL)) throw uriError(uri, `it does not start with ${HF_PROTOCOL}`, form);
  const body = uri.slice(HF_PROTOCOL.length);
  if (!body) throw uriError(uri, `nothing after ${HF_PROTOCOL}`, form);
  let repoType: RepoType = 'model';
  let location = body;
  const slash = body.indexOf('/');
  const first = slash < 0 ? body : body.slice(0, slash);
  if (TYPE_PREFIXES.has(first)) {
    const t = TYPE_PREFIXES.get(first);
    if (!t) throw uriError(uri, `${first} are not supported here, only models and datasets`, form);
    if (slash < 0) throw uriError(uri, `no repository id after "${first}"`, form);
    repoType = t;
    location = body.slice(slash + 1);
  } else if (SINGULAR.has(first)) {
    throw uriError(uri, `the type prefix is plural: "${SINGULAR.get(first)}/", not "${first}/"`, form);
  }
  location = location.replace(/^\/+|\/+$/g, '');
  if (!location) throw uriError(uri, 'no repository id', form);
  const at = location.indexOf('@');
  let repoId: string;
  let revision: string | undefined;
  let path: string;
  if (at < 0 || location.slice(0, at).split('/').length > 2) {
    const parts = location.split('/');
    if (parts.length < 2) throw uriError(uri, `the repository id must be org/name, got "${location}"`, form);
    repoId = `${parts[0]}/${parts[1]}`;
    path = parts.slice(2).join('/');
  } else {
    repoId = location.slice(0, at);
    if (!repoId) throw uriError(uri, 'no repository id before "@"', form);
    if (repoId.split('/').length !== 2) throw uriError(uri, `the repository id must be org/name, got "${repoId}"`, form);
    const rest = location.slice(at + 1);
    const special = SPECIAL_REF.exec(rest);
    const raw = special ? special[0] : rest.split('/')[0]!;
    path = rest.slice(raw.length).replace(/^\//, '');
    revision = unquote(raw);
    if (!revision) throw uriError(uri, 'an empty revision after "@"', form, repoId);
  }
  try {
    validateRepoId(repoId);
    if (revision !== undefined) validateRevision(repoId, revision);
    if (path) validateRepoPath(repoId, path);
  } catch (e) {
    const why = (e as Error).message;
    throw uriError(uri, why.startsWith(`${repoId}: `) ? why.slice(repoId.length + 2) : why, form, repoId);
  }
  return { repoType, repoId, revision, path };
}

/** Parses `hf://datasets/org/name[@revision][/folder]` (see {@link parseHfUri}); a URI of a model
 *  (`hf://org/name`) or a malformed one is an `invalid` HubError naming the URI. */
export function parseDatasetSpec(spec: string): DatasetSpec {
  const u = parseHfUri(spec, DATASET_FORM);
  if (u.repoType !== 'dataset') throw uriError(spec, `it names the model repository ${u.repoId}; a dataset is hf://datasets/${u.repoId}`, DATASET_FORM, u.repoId);
  return { repoId: u.repoId, revision: u.revision, subfolder: u.path };
}

/** Options of {@link resolveDataset}: those of {@link snapshotDownload}, except what the URI sets. */
export interface ResolveDatasetOptions extends Omit<SnapshotOptions, 'repoType' | 'allowPatterns' | 'select'> {}

/** `fnmatch` pattern for a literal folder name: `*`, `?` and `[` matched as themselves. */
function literalGlob(s: string): string {
  return s.replace(/[*?[]/g, (c) => `[${c}]`);
}

/** A local folder for a dataset. `hf://datasets/org/name[@revision][/folder]` is downloaded into the
 *  Hugging Face cache (every file of the dataset, or only those under `folder`, through
 *  {@link snapshotDownload}: resumed, checked, progress through `onProgress`) or found there offline, and the
 *  snapshot folder, or `folder` inside it, is returned. Any other string is a local path and is
 *  returned unchanged (the bare `datasets/org/name` included: it is a relative path as well).
 *
 *  A revision in the URI and `options.revision` must agree. A folder the dataset does not have is
 *  an `entry-not-found` HubError; offline, one the cache cannot vouch for is an `offline` one. */
export async function resolveDataset(spec: string, options: ResolveDatasetOptions = {}): Promise<string> {
  if (!spec.startsWith(HF_PROTOCOL)) return spec;
  const { repoId, revision: fromUri, subfolder } = parseDatasetSpec(spec);
  if (fromUri !== undefined && options.revision !== undefined && fromUri !== options.revision) {
    throw uriError(spec, `its revision "${fromUri}" is not the revision "${options.revision}" asked for`, DATASET_FORM, repoId);
  }
  const revision = fromUri ?? options.revision ?? 'main';
  const snapshot: SnapshotOptions = { ...options, repoType: 'dataset', revision, allowPatterns: subfolder ? `${literalGlob(subfolder)}/` : undefined, select: undefined };
  const folder = await snapshotDownload(repoId, snapshot);
  if (!subfolder) return folder;
  const local = join(folder, ...subfolder.split('/'));
  if (await isDirectory(local)) return local;
  // Nothing under the folder: the dataset has no such folder, or (without the commit's file list)
  // the cache cannot tell.
  const name = repoUrlName(repoId, 'dataset');
  const ctx = callContext(snapshot);
  const commit = basename(folder);
  const tree = await readTreeCache(repoCacheDir(repoId, ctx.settings.cacheDir, 'dataset'), commit);
  const at = revision === 'main' ? '' : ` at revision "${revision}"`;
  if (!tree && ctx.settings.offline) throw notCachedError(ctx, repoId, `the folder "${subfolder}"${at}`, undefined, { path: subfolder });
  if (!tree) throw new HubError('incomplete', `${name}: "${subfolder}" is not in the cached snapshot ${commit}, whose file list is unknown; run again with the hub reachable (${spec})`, { repoId, path: subfolder, commit });
  const what = tree.has(subfolder) ? 'is a file, expected a folder' : 'is not a folder of the dataset';
  throw new HubError('entry-not-found', `${name}: "${subfolder}"${at} ${what} (${spec})`, { repoId, path: subfolder, commit });
}

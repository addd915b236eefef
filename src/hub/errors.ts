// The one error type of the hub module: a readable one-line message and a machine-readable code.

/** What went wrong, for callers that react to a kind of failure rather than to a message. */
export type HubErrorCode =
  /** Offline mode (HF_HUB_OFFLINE) is on and the file or snapshot is not in the cache. */
  | 'offline'
  /** The hub could not be reached (connection refused, DNS, timeout, 5xx) and nothing usable is cached. */
  | 'network'
  /** The repository does not exist, or it is private and no valid token was sent (401). */
  | 'repo-not-found'
  /** The repository is gated: its conditions must be accepted on the hub and a token sent. */
  | 'gated'
  /** The token is valid but not allowed to read the repository (403). */
  | 'forbidden'
  /** The revision (branch, tag or commit) does not exist. */
  | 'revision-not-found'
  /** The file does not exist at that revision (404, or a cached `.no_exist` marker). */
  | 'entry-not-found'
  /** The cached snapshot lacks files the selection needs and the hub cannot be asked. */
  | 'incomplete'
  /** The downloaded bytes do not hash to the file's sha256 (LFS) or do not have the announced size. */
  | 'checksum'
  /** The hub answered something this module cannot use (missing ETag, commit or size; bad JSON). */
  | 'protocol'
  /** Another HTTP status. */
  | 'http'
  /** An invalid argument: repo id, path, revision, model spec. */
  | 'invalid'
  /** The cache folder could not be written or read. */
  | 'filesystem';

/** An expected failure of a hub look-up or download. The message is one line that names the
 *  repository and, where there is one, the file, and says how to fix it; print it without a stack. */
export class HubError extends Error {
  override name = 'HubError';
  readonly code: HubErrorCode;
  readonly repoId: string | undefined;
  readonly path: string | undefined;
  /** The HTTP status behind the error, when there was one. */
  readonly status: number | undefined;
  /** The commit the hub named in its answer (`X-Repo-Commit`), when it named one. */
  readonly commit: string | undefined;

  constructor(code: HubErrorCode, message: string, details: { repoId?: string; path?: string; status?: number; commit?: string; cause?: unknown } = {}) {
    super(message.replace(/\s*\n\s*/g, ' '), details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.repoId = details.repoId;
    this.path = details.path;
    this.status = details.status;
    this.commit = details.commit;
  }
}

/** `true` for a `HubError` (also across copies of this module). */
export function isHubError(e: unknown): e is HubError {
  return e instanceof HubError || (e instanceof Error && e.name === 'HubError' && typeof (e as { code?: unknown }).code === 'string');
}

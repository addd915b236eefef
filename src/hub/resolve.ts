// `--model` values: a local file or folder as it is, or a hub id (`org/name`, `org/name@revision`)
// resolved to a folder of the Hugging Face cache.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HubError } from './errors.js';
import { validateRepoId, validateRevision } from './paths.js';
import { MODEL_SELECTIONS, type ModelSelection } from './select.js';
import { expandPath } from './settings.js';
import { snapshotDownload, type SnapshotOptions } from './snapshot.js';

/** A hub model reference. */
export interface ModelSpec {
  repoId: string;
  /** From `@revision`; `undefined` means `main`. */
  revision: string | undefined;
}

/** Parses `org/name` or `org/name@revision` (the revision may contain `/`, as in `refs/pr/1`). */
export function parseModelSpec(spec: string): ModelSpec {
  const at = spec.indexOf('@');
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? undefined : spec.slice(at + 1);
  validateRepoId(repoId);
  if (revision !== undefined) validateRevision(repoId, revision);
  return { repoId, revision };
}

function looksLikePath(spec: string): boolean {
  return /^(\.{1,2}([/\\]|$)|[/\\~]|[A-Za-z]:)/.test(spec) || spec.includes('\\') || spec.split('@')[0]!.split('/').length > 2;
}

/** Options of {@link resolveModel}. */
export interface ResolveModelOptions extends SnapshotOptions {
  /** The files to take; default {@link MODEL_SELECTIONS} for the repo, else every folder's configs
   *  and safetensors weights. `variant` is merged into it. */
  select?: ModelSelection;
  /** Weight variant to prefer (`fp16`), where published. */
  variant?: string;
}

/** A local folder (or file) for a model: an existing local path is returned as is (`~` expanded);
 *  anything else is a hub id, `org/name[@revision]`, downloaded (only the files the model needs) into
 *  the Hugging Face cache, or found there offline. Returns the snapshot folder, or the selection's
 *  `subfolder` in it (`models` for h94/IP-Adapter). */
export async function resolveModel(spec: string, options: ResolveModelOptions = {}): Promise<string> {
  const local = expandPath(spec, options.env);
  try {
    await stat(local);
    return local;
  } catch {
    // not a local path
  }
  if (looksLikePath(spec)) throw new HubError('invalid', `${spec}: no such file or folder (and not a Hugging Face repo id such as org/name)`);
  const { repoId, revision } = parseModelSpec(spec);
  const base: ModelSelection = options.select ?? MODEL_SELECTIONS[repoId] ?? {};
  const select: ModelSelection = options.variant ? { ...base, variant: options.variant } : base;
  const folder = await snapshotDownload(repoId, { ...options, revision: revision ?? options.revision, select });
  return select.subfolder ? join(folder, ...select.subfolder.split('/')) : folder;
}

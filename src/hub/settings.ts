// Where the cache is, which endpoint to ask, with which token, and whether to ask at all: the
// environment variables huggingface_hub reads, with the same defaults and the same precedence.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import process from 'node:process';

/** Environment variables as a plain record (`process.env` by default). */
export type HubEnv = Readonly<Record<string, string | undefined>>;

/** Options every hub call takes; each overrides the matching environment variable. */
export interface HubOptions {
  /** The cache folder (`HF_HUB_CACHE`, legacy `HUGGINGFACE_HUB_CACHE`, default `$HF_HOME/hub`). */
  cacheDir?: string;
  /** The hub (`HF_ENDPOINT`, default `https://huggingface.co`). */
  endpoint?: string;
  /** The token sent as `Authorization: Bearer …` (`HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, then the
   *  file `HF_TOKEN_PATH`, default `$HF_HOME/token`); `false` sends none. */
  token?: string | false;
  /** Never touch the network, use the cache only (`HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE`). */
  offline?: boolean;
  /** Where `HF_*` variables are read from; defaults to `process.env`. */
  env?: HubEnv;
}

/** Everything resolved: what the download functions use. */
export interface HubSettings {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
  /** `HF_HUB_DISABLE_SYMLINKS`: write copies into snapshots instead of symlinks. */
  disableSymlinks: boolean;
  /** Seconds to wait for the metadata (HEAD/API) answer (`HF_HUB_ETAG_TIMEOUT`, default 10). */
  etagTimeout: number;
  /** Seconds without a byte before a download is considered stalled (`HF_HUB_DOWNLOAD_TIMEOUT`, default 10). */
  downloadTimeout: number;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
const TRUE_VALUES = new Set(['1', 'ON', 'YES', 'TRUE']);

/** huggingface_hub's `_is_true`: 1/on/yes/true, any case. */
export function envFlag(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.toUpperCase());
}

function envOf(o: HubOptions): HubEnv {
  return o.env ?? process.env;
}

/** Python's `os.path.expanduser` (`~` and `~/…`) followed by `os.path.expandvars` (`$VAR`, `${VAR}`;
 *  unknown variables stay as written). */
export function expandPath(p: string, env: HubEnv = process.env): string {
  let out = p;
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) out = join(env.HOME ?? env.USERPROFILE ?? homedir(), out.slice(1));
  return out.replace(/\$(\w+)|\$\{([^}]*)\}/g, (m, a: string | undefined, b: string | undefined) => env[(a ?? b)!] ?? m);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/** `HF_HOME`: `$XDG_CACHE_HOME/huggingface`, by default `~/.cache/huggingface`. */
export function hfHome(o: HubOptions = {}): string {
  const env = envOf(o);
  const home = nonEmpty(env.HF_HOME) ?? join(nonEmpty(env.XDG_CACHE_HOME) ?? join(env.HOME ?? homedir(), '.cache'), 'huggingface');
  return expandPath(home, env);
}

/** The hub cache folder: `cacheDir`, else `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else
 *  `$HF_HOME/hub` (an absolute path, `~` and `$VARS` expanded as huggingface_hub does). */
export function hubCacheDir(o: HubOptions = {}): string {
  const env = envOf(o);
  const dir = o.cacheDir ?? nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHome(o), 'hub');
  return resolve(expandPath(dir, env));
}

/** The token: `token`, else `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file
 *  (`HF_TOKEN_PATH`, default `$HF_HOME/token`) that `hf auth login` writes. Whitespace and line
 *  breaks are stripped; an empty token counts as none. */
export function hubToken(o: HubOptions = {}): string | undefined {
  if (o.token === false) return undefined;
  const clean = (t: string | undefined): string | undefined => {
    const s = t?.replace(/[\r\n]/g, '').trim();
    return s ? s : undefined;
  };
  if (o.token !== undefined) return clean(o.token);
  const env = envOf(o);
  const fromEnv = clean(env.HF_TOKEN) ?? clean(env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv) return fromEnv;
  const file = expandPath(nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHome(o), 'token'), env);
  try {
    return clean(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function seconds(v: string | undefined, fallback: number): number {
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** All settings for one call. */
export function hubSettings(o: HubOptions = {}): HubSettings {
  const env = envOf(o);
  return {
    cacheDir: hubCacheDir(o),
    endpoint: (o.endpoint ?? nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    token: hubToken(o),
    offline: o.offline ?? envFlag(nonEmpty(env.HF_HUB_OFFLINE) ?? env.TRANSFORMERS_OFFLINE),
    disableSymlinks: envFlag(env.HF_HUB_DISABLE_SYMLINKS),
    etagTimeout: seconds(env.HF_HUB_ETAG_TIMEOUT, 10),
    downloadTimeout: seconds(env.HF_HUB_DOWNLOAD_TIMEOUT, 10),
  };
}

// Loading progress as one stream of events, shaped like transformers.js's `progress_callback` so a
// page written for it can show ours: per file `initiate` → (`download` → `progress`…) → `done`,
// `weights` while a checkpoint's tensors go onto the GPU, `ready` once a model is usable. The hub
// cache (Node), browser downloads, picked folders, the weight loader and the metrics all emit these,
// identically; nothing is printed unless the caller renders them (the CLI does, on stderr).
//
// Low on purpose: the hub, io and nn layers emit these, so this module imports nothing.

/** Which model of a metric an event is about (set by the metric layer). */
export type LoadRole = 'sd' | 'sdxl' | 'ipAdapter' | 'clip' | 'dino' | 'lpips' | 'lpipsHeads' | 'vgg' | 'dit';

/** Where an event's file is. */
export interface LoadFileRef {
  /** The repo id (`org/name`; `datasets/org/name` for a dataset) or the folder (local, picked). */
  name: string;
  /** The file's path in it, '/'-separated. */
  file: string;
  /** The metric's model the file belongs to, where a metric loads it. */
  role?: LoadRole;
}

/** A file is asked for (before the cache is looked at or anything is fetched). */
export interface LoadInitiateEvent extends LoadFileRef {
  status: 'initiate';
}

/** The file is not cached: its bytes start coming from the network. */
export interface LoadDownloadEvent extends LoadFileRef {
  status: 'download';
}

/** Bytes of a download arrived. */
export interface LoadProgressEvent extends LoadFileRef {
  status: 'progress';
  /** Bytes of the file so far (resumed bytes included), of `total`. */
  loaded: number;
  total: number;
  /** `loaded` in percent of `total`, 0–100. */
  progress: number;
  /** Bytes per second this transfer received so far. */
  rate?: number;
  /** Seconds left at that rate (absent while unknown). */
  eta?: number;
  /** Seconds since this transfer started. */
  elapsed?: number;
  /** Bytes already on disk from an earlier, interrupted download (Node's cache resumes them). */
  resumedFrom?: number;
}

/** The file is in place (downloaded, or found cached). */
export interface LoadDoneEvent extends LoadFileRef {
  status: 'done';
  /** The file's size, where known. */
  total?: number;
  /** Nothing was transferred: the file came from a cache or a picked folder. */
  cached?: boolean;
  /** Seconds the transfer took. */
  elapsed?: number;
  /** Bytes that were on disk before this transfer. */
  resumedFrom?: number;
}

/** Another process holds the lock of the file's download; this one waits for it. */
export interface LoadWaitEvent extends LoadFileRef {
  status: 'wait';
  /** The lock file. */
  lock: string;
}

/** A checkpoint's tensors going onto the GPU: once with `loaded` 0, then after each tensor. */
export interface LoadWeightsEvent extends LoadFileRef {
  status: 'weights';
  /** Tensors on the GPU so far, of `total`. */
  loaded: number;
  total: number;
  /** Checkpoint bytes read so far, of `totalBytes`. */
  bytes: number;
  totalBytes: number;
}

/** A model is loaded and usable. */
export interface LoadReadyEvent {
  status: 'ready';
  /** The model as it was asked for: a repo id (`org/name[@revision]`) or a folder or file. */
  name: string;
  role?: LoadRole;
  /** Where its files are (the cache's snapshot folder for a repo id; the name otherwise). */
  path?: string;
  /** Its hub commit, where known. */
  commit?: string;
}

/** Everything a load reports. */
export type LoadEvent = LoadInitiateEvent | LoadDownloadEvent | LoadProgressEvent | LoadDoneEvent | LoadWaitEvent | LoadWeightsEvent | LoadReadyEvent;

/** Receives load events (`onProgress` of every loading function). */
export type LoadEventCallback = (e: LoadEvent) => void;

/** A weights file's place, as the weight loader names it in `weights` events. */
export interface LoadOrigin {
  name: string;
  file: string;
}

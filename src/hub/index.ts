// Model and dataset files from the Hugging Face hub, in the cache Python's huggingface_hub uses.
export { HubError, isHubError, type HubErrorCode } from './errors.js';
export { hubCacheDir, hubSettings, hubToken, hfHome, envFlag, expandPath, DEFAULT_ENDPOINT, type HubOptions, type HubSettings, type HubEnv } from './settings.js';
export { repoFolderName, repoUrlName, validateRepoId, filterRepoPaths, normalizeEtag, resolveUrl, REPO_TYPES, type RepoType, type Patterns } from './paths.js';
export { tryToLoadFromCache, repoCacheDir, readTreeCache, CACHED_NO_EXIST, type CachedNoExist, type TreeEntry } from './cache.js';
export { resolveModelFile, type DownloadOptions } from './download.js';
export { snapshotDownload, type SnapshotOptions } from './snapshot.js';
export { selectRepoFiles, shardsOf, MODEL_SELECTIONS, type FileSelection, type ModelSelection } from './select.js';
export { resolveModel, parseModelSpec, type ModelSpec, type ResolveModelOptions } from './resolve.js';
export type { LoadEvent, LoadEventCallback } from '../io/events.js';
export { resolveDataset, parseDatasetSpec, parseHfUri, type DatasetSpec, type HfUri, type ResolveDatasetOptions } from './dataset.js';

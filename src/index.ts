/// <reference types="@webgpu/types" preserve="true" />
// The package's Node and Deno entry: the shared API (api.ts) and what needs a file system.
export * from './api.js';
export { openFile } from './io/bytesource.js';
export { openSafetensors } from './io/safetensors.js';
export { localModelFiles, FolderModelFiles } from './io/local-files.js';
export { loadImage, loadImageSamples, readImageFile } from './io/image.js';
export { HubError, isHubError, type HubErrorCode, hubCacheDir, hubSettings, hubToken, type HubOptions, type HubSettings, tryToLoadFromCache, CACHED_NO_EXIST, type CachedNoExist, resolveModelFile, type DownloadOptions, snapshotDownload, type SnapshotOptions, resolveModel, parseModelSpec, type ModelSpec, type ResolveModelOptions, filterRepoPaths, repoFolderName, type RepoType, resolveDataset, parseDatasetSpec, type DatasetSpec, type ResolveDatasetOptions } from './hub/index.js';
export { createMetric, createMetrics, toRgbImage, type CreateMetricOptions } from './diffsim/metric.js';
export { Ensemble, type Votes, type Pick, type EnsembleOptions } from './diffsim/ensemble.js';
export { listItems, itemPaths, ProtocolError, BENCHMARK_NAMES, benchmarkPreset, PyRandom, decide, decideEnsemble, decide2x, directionOf, runEval, readRows, summarize, mergeFiles, parseShard, shardRange, wilson, runId, ResultsError, runSweep, sweepSource, registerSweepMetric, SWEEP_METRICS, mergeSweepFiles, bestCell } from './eval/index.js';
export type { BenchmarkName, EvalItem, ProtocolOptions, Decision, DecisionRule, TieRule, EvalRunOptions, EvalRunResult, ResultRow, Shard, Summary, SweepCell, SweepGroup, SweepSource, SweepSourceFactory, SweepGrid, SweepRow, SweepCellResult, SweepRunOptions, SweepRunResult, SweepMemory } from './eval/index.js';
export { renderAgreement } from './apps/map.js';
export { renderSweepPlot, renderRetrievalGrid, type SweepPlotCell, type SweepPlotOptions, type RetrievalGridRow, type RetrievalGridOptions } from './apps/plot.js';
export { retrieve, rankResults, EmbeddingCache, videoConsistency, listFrames, summarise, listImages, naturalCompare, isGalleryImageName, IMAGE_EXTENSIONS, CACHE_FOLDER } from './apps/index.js';
export type { RetrieveOptions, Retrieval, RetrievalResult, EmbeddingCacheOptions, EmbeddingCacheStats, VideoOptions, VideoConsistency, MetricConsistency, ScoreSummary, ListedImage, ListImagesOptions } from './apps/index.js';

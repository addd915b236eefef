// Benchmark protocols: the official scripts' item lists, listings, Python's random, decisions.
export { PyRandom, seedWords } from './pyrandom.js';
export { listdir, walk, isDirectory, isFile, compareNames, type ListingOrder, type WalkEntry } from './listing.js';
export {
  listItems,
  nightsItems,
  tid2013Items,
  cuteItems,
  dreambenchItems,
  iprefItems,
  styleItems,
  itemPaths,
  isImageName,
  tidReferenceNames,
  tidDistortedNames,
  ProtocolError,
  BENCHMARK_NAMES,
  benchmarkPreset,
  DEFAULT_PROMPT,
  DEFAULT_SEED,
  STYLE_TRIALS,
  DREAMBENCH_RATINGS,
  IPREF_PAIRS,
  type BenchmarkName,
  type EvalItem,
  type ProtocolOptions,
} from './protocols.js';
export { decide, decideEnsemble, decide2x, directionOf, type Decision, type DecisionRule, type TieRule } from './decide.js';
export { parseCsv, readCsvDicts, parseJsonOrdered, decodeUtf8, type CsvRecord, type CsvRow, type JsonValue } from './pyread.js';
export { runEval, type EvalRunOptions, type EvalRunResult } from './runner.js';
export { readRows, resumeRows, RowWriter, summarize, mergeFiles, parseShard, shardRange, wilson, runId, ResultsError, type ResultRow, type Shard, type Summary } from './results.js';
// Evaluations over folders of images: retrieval with an embedding cache, frame-sequence consistency.
export { retrieve, rankResults, type RetrieveOptions, type Retrieval, type RetrievalResult } from './retrieve.js';
export { EmbeddingCache, type EmbeddingCacheOptions, type EmbeddingCacheStats } from './embedding-cache.js';
export { videoConsistency, listFrames, summarise, type VideoOptions, type VideoConsistency, type MetricConsistency, type ScoreSummary } from './video.js';
export { listImages, naturalCompare, isImageName as isGalleryImageName, IMAGE_EXTENSIONS, CACHE_FOLDER, type ListedImage, type ListImagesOptions } from './images.js';

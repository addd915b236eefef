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
export { datasetIdentity, type DatasetIdentity } from './identity.js';
export { readRows, resumeRows, lockResults, RowWriter, summarize, mergeFiles, parseShard, shardRange, wilson, runId, ResultsError, type ResultRow, type Shard, type Summary } from './results.js';
export { runSweep, sweepSource, registerSweepMetric, SWEEP_METRICS, DEFAULT_SWEEP_STEPS, summarizeCells, mergeSweepFiles, bestCell, cellRunId, type SweepCell, type SweepGroup, type SweepSource, type SweepSourceFactory, type SweepGrid, type SweepTensors, type SweepRow, type SweepCellResult, type SweepRunOptions, type SweepRunResult, type SweepMemory } from './sweep.js';

// The DiffSim metric family: DiffSim-S/C on SD1.5, the CLIP/DINOv2 metrics, the ensemble.
export { DiffSim, CLIP_IMAGE_PROCESSOR, type DiffSimModels, type DiffSimLoadOptions, type DiffSimExecution, type GivenNoise, type EmbedOptions, type DiffSimScore } from './core.js';
export { DiffSimEmbedding, type ImageRole, type NoiseSource, type DiffSimIntermediates } from './embedding.js';
export { DIFFSIM_DEFAULTS, DIFFSIM_PRESETS, DIFFSIM_PRESET_NAMES, presetSettings, SCORING_SETTINGS, DiffSimSettingsError, mergeSettings, embeddingSettings, settingsKey, settingsDiff, blockOf, type DiffSimSettings, type DiffSimSettingsInput, type DiffSimPresetName, type ResolvedDiffSimSettings, type EmbeddingSettings, type ScoringSetting, type DiffSimBlock, type DiffSimBlockName } from './settings.js';
export { resolveHook, type HookPoint } from './hook.js';
export { aasOutputs, aasSums, aasScores, aasFromSums, pairScore, type Qkv, type AasOutputs, type AasOptions, type AasScores, type PairScore, type AttentionLayout } from './aas.js';
export { ClipMetric, Dinov2Metric, VisionEmbedding, DINOV2_IMAGE_PROCESSOR, type ClipMetricOptions, type VisionInput, type VisionLayerEmbedding, type VisionLayerScores, type VisionScores } from './vision.js';
export { Ensemble, vote, majority, type Votes, type Pick, type EnsembleOptions } from './ensemble.js';
export { createMetric, createMetrics, toRgbImage, lowerBetterOf, minMaxNormalise, cosine64, METRIC_NAMES, DEFAULT_MODELS, type Metric, type MetricName, type MetricEmbedding, type ImageInput, type CreateMetricOptions, type ModelRole, type ResolvedModel } from './metric.js';

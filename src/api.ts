/// <reference types="@webgpu/types" preserve="true" />
// The API the Node and browser entries share: each name means the same thing in both. index.ts adds
// what needs a file system (paths, the Hugging Face cache folder, benchmarks, galleries), browser.ts
// what needs a page (hub downloads into Cache Storage, picked folders, the adapter-limit check).
export { acquireDevice, NoAdapterError, OPTIONAL_FEATURES, type AcquiredDevice, type AdapterDescription, type DeviceOptions } from './gpu/device.js';
export { Runtime, Tensor, ShapeError, tidy, getRuntime, releaseRuntime, numelOf, DTYPE_BYTES, type DType, type Kernel, type KernelSource, type OutputSpec, type DispatchArgs, type MemoryStats, type RuntimeOptions } from './gpu/runtime.js';
export { FLAGS, FlagError, resolveFlag, resolveFlags, formatFlag, TENSOR_CORE_MODES, type Flags, type FlagOptions, type FlagName, type FlagSource, type FlagSpec, type GroupNormFlag, type TensorCoreMode } from './gpu/flags.js';
export { f32ToF16Bits, f16BitsToF32, f32ArrayToF16, f16ArrayToF32, bf16ArrayToF32 } from './platform/half.js';
export { blobSource, type ByteSource, type BlobLike } from './io/bytesource.js';
export { SafetensorsFile, ShardedSafetensors, SafetensorsError, encodeSafetensors, rawToFloat32, rawToInt32, SAFETENSORS_DTYPES, MAX_HEADER_BYTES, type TensorToWrite, type SafetensorsDType, type TensorInfo, type RawTensor, type TensorSource } from './io/safetensors.js';
export { type ModelFiles, MemoryModelFiles, chooseWeights } from './io/model-files.js';
export type { LoadEvent, LoadEventCallback, LoadRole, LoadInitiateEvent, LoadDownloadEvent, LoadProgressEvent, LoadDoneEvent, LoadWaitEvent, LoadWeightsEvent, LoadReadyEvent } from './io/events.js';
export { decodeImage, decodeImageSamples, applyOrientation, toRgb, jpegOrientation, sniffFormat, ImageDecodeError, MAX_PIXELS, MAX_DIMENSION, type RgbImage, type StoredImage, type PilMode, type DecodeOptions, type ImageFormat } from './io/image.js';
export { resizeU8, resizeImage, type ResampleFilter } from './io/resample.js';
export { processImage, imageProcessor, imageProcessorGeometry, shortEdgeSize, validateImageProcessorConfig, type ImageProcessorConfig, type ProcessorGeometry } from './io/preprocess.js';
export { FileError } from './io/errors.js';
export { ConfigError } from './io/config-check.js';
export { selectRepoFiles, shardsOf, MODEL_SELECTIONS, type FileSelection, type ModelSelection } from './hub/select.js';
export * as kernels from './kernels/index.js';
export type { ActivationDType } from './kernels/common.js';
export { Taps, Vocabulary, TapNameError, type ForwardOptions, type ModelComputeOptions } from './nn/context.js';
export { WeightStore, WeightLoadError, Param, Scope, type LoadOptions, type WeightPrecision } from './nn/weights.js';
export { Linear, Conv2d, GroupNorm, LayerNorm } from './nn/modules.js';
export { UNet2DConditionModel, type UNetConfig, type UNetOutput, type UNetForwardOptions } from './models/unet.js';
export { VaeEncoder, legacyVaeKey, type VaeConfig, type Posterior, type VaeEncoderOutput } from './models/vae.js';
export { ClipTextModel, type ClipTextConfig, type ClipTextOutput, type EncoderForwardOptions } from './models/clip-text.js';
export { ClipTokenizer, type ClipTokenizerFiles } from './models/clip-tokenizer.js';
export { PNDMScheduler, EulerDiscreteScheduler, NormalGenerator, type SchedulerConfig } from './models/scheduler.js';
export { ClipVisionModel, ClipModel, type ClipVisionConfig, type ClipVisionOutput, type ClipModelConfig } from './models/clip-vision.js';
export { Dinov2Model, type Dinov2Config, type Dinov2Output } from './models/dinov2.js';
export { IpAdapterPlus, RESAMPLER_PATH, type IpAdapterConfig, type ResamplerConfig, type ResamplerOutput } from './models/ip-adapter.js';
export type { Conditioning, IpConditioning, IpProjection } from './models/sd-blocks.js';
export { loadSdxl, isSdxlFolder, type StableDiffusionXL } from './models/load.js';
export { loadSd15, loadClipVision, loadClipModel, loadDinov2, loadIpAdapterPlus, sd15Layout, ipAdapterLayout, openSd15Components, processorConfig, latentSide, vaeScaleFactor, SD15_SCHEDULER_CONFIG, type StableDiffusion, type Sd15Part, type Sd15Layout, type Sd15LoadOptions, type Sd15Components, type Sd15Component, type SingleFileConfigs, type ModelFilesInput, type ModelLoadOptions, type IpAdapterLoadOptions, type LoadedIpAdapter } from './models/load.js';
export { inferResamplerConfig } from './models/sources.js';
export { sd15SingleFile, isSd15SingleFile, SingleFileError, unetKeyToDiffusers, vaeKeyToDiffusers, clipKeyToDiffusers, emaKeyOf, type SingleFileComponents, type SingleFileComponent, type SingleFileOptions, type ConfigOrigin } from './models/single-file.js';
export { DiffSim, CLIP_IMAGE_PROCESSOR, type DiffSimModels, type DiffSimLoadOptions, type DiffSimExecution, type GivenNoise, type EmbedOptions, type DiffSimScore } from './diffsim/core.js';
export { DiffSimEmbedding, type ImageRole, type NoiseSource, type DiffSimIntermediates } from './diffsim/embedding.js';
export { DIFFSIM_DEFAULTS, DIFFSIM_XL_DEFAULTS, XL_SETTINGS, DIFFSIM_PRESETS, DIFFSIM_PRESET_NAMES, presetSettings, SCORING_SETTINGS, DiffSimSettingsError, mergeSettings, embeddingSettings, settingsKey, settingsDiff, blockOf, type DiffSimSettings, type DiffSimSettingsInput, type DiffSimPresetName, type ResolvedDiffSimSettings, type EmbeddingSettings, type ScoringSetting, type DiffSimBlock, type DiffSimBlockName } from './diffsim/settings.js';
export { resolveHook, resolveXlHook, type HookPoint } from './diffsim/hook.js';
export { NonFiniteScoreError } from './diffsim/finite.js';
export { aasOutputs, aasSums, aasScores, aasFromSums, pairScore, type Qkv, type AasOutputs, type AasOptions, type AasScores, type PairScore, type AttentionLayout } from './diffsim/aas.js';
export { ClipMetric, Dinov2Metric, VisionEmbedding, DINOV2_IMAGE_PROCESSOR, type ClipMetricOptions, type VisionInput, type VisionLayerEmbedding, type VisionLayerScores, type VisionScores } from './diffsim/vision.js';
export { lowerBetterOf, METRIC_NAMES, DEFAULT_MODELS, type Metric, type MetricName, type MetricEmbedding, type ImageInput, type ModelRole, type ResolvedModel, type MetricSettingsOptions } from './diffsim/metric-api.js';
export { minMaxNormalise, cosine64 } from './diffsim/metrics.js';
export { AGREEMENT_METRICS, agreementMap, agreementFromEmbeddings, agreementPixels, agreementTensor, tokenGrid, upsampleGrid, renderLayout, RENDER_LAYOUT, viridis, type AgreementMap, type AgreementPicture, type RenderOptions } from './apps/agreement.js';

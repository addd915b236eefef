/// <reference types="@webgpu/types" preserve="true" />
// The public API of the diffsim package.
export { acquireDevice, NoAdapterError, OPTIONAL_FEATURES, type AcquiredDevice, type AdapterDescription, type DeviceOptions } from './gpu/device.js';
export { Runtime, Tensor, Storage, Params, ShapeError, tidy, getRuntime, releaseRuntime, sizeClass, numelOf, DTYPE_BYTES, type DType, type Kernel, type KernelSource, type OutputSpec, type DispatchArgs, type MemoryStats, type RuntimeOptions } from './gpu/runtime.js';
export { f32ToF16Bits, f16BitsToF32, f32ArrayToF16, f16ArrayToF32, bf16ArrayToF32 } from './gpu/half.js';
export { openFile, blobSource, type ByteSource, type BlobLike } from './io/bytesource.js';
export { SafetensorsFile, ShardedSafetensors, SafetensorsError, openSafetensors, encodeSafetensors, type TensorToWrite, parseHeader, rawToFloat32, rawToInt32, SAFETENSORS_DTYPES, MAX_HEADER_BYTES, type SafetensorsDType, type TensorInfo, type RawTensor, type TensorSource } from './io/safetensors.js';
export * as kernels from './kernels/index.js';
export { Taps, Vocabulary, TapNameError, type ForwardOptions } from './nn/context.js';
export { WeightStore, WeightLoadError, Param, Scope, type LoadOptions, type WeightPrecision } from './nn/weights.js';
export { Linear, Conv2d, GroupNorm, LayerNorm } from './nn/modules.js';
export { UNet2DConditionModel, type UNetConfig, type UNetOutput, type UNetForwardOptions } from './models/unet.js';
export { VaeEncoder, legacyVaeKey, type VaeConfig, type Posterior, type VaeEncoderOutput } from './models/vae.js';
export { ClipTextModel, type ClipTextConfig, type ClipTextOutput, type EncoderForwardOptions } from './models/clip-text.js';
export { ClipTokenizer, type ClipTokenizerFiles } from './models/clip-tokenizer.js';
export { PNDMScheduler, NormalGenerator, type SchedulerConfig } from './models/scheduler.js';
export { loadStableDiffusion, loadUNet, loadVaeEncoder, loadTextEncoder, type StableDiffusion, type Sd15Part, type ModelLoadOptions } from './models/sd15.js';
export { findWeights } from './models/files.js';
export { loadClipVision, loadClipModel, loadDinov2, loadIpAdapterPlus, inferResamplerConfig, type IpAdapterLoadOptions, type LoadedIpAdapter } from './models/vision-loaders.js';
export { runParity, type ParityRow } from './parity/parity.js';
export { ClipVisionModel, ClipModel, type ClipVisionConfig, type ClipVisionOutput, type ClipModelConfig } from './models/clip-vision.js';
export { Dinov2Model, type Dinov2Config, type Dinov2Output } from './models/dinov2.js';
export { IpAdapterPlus, RESAMPLER_PATH, type IpAdapterConfig, type ResamplerConfig, type ResamplerOutput } from './models/ip-adapter.js';
export type { Conditioning, IpConditioning, IpProjection } from './models/sd-blocks.js';
export { decodeImage, decodeImageSamples, loadImage, loadImageSamples, readImageFile, applyOrientation, toRgb, jpegOrientation, sniffFormat, ImageDecodeError, MAX_PIXELS, MAX_DIMENSION, type RgbImage, type StoredImage, type PilMode, type DecodeOptions, type ImageFormat } from './io/image.js';
export { resizeU8, resizeImage, type ResampleFilter } from './io/resample.js';
export { processImage, imageProcessor, shortEdgeSize, type ImageProcessorConfig } from './io/preprocess.js';
export { FileError } from './io/errors.js';
export { HubError, isHubError, type HubErrorCode, hubCacheDir, hubSettings, hubToken, type HubOptions, type HubSettings, tryToLoadFromCache, CACHED_NO_EXIST, type CachedNoExist, resolveModelFile, type DownloadOptions, snapshotDownload, type SnapshotOptions, selectRepoFiles, shardsOf, MODEL_SELECTIONS, type FileSelection, type ModelSelection, resolveModel, parseModelSpec, type ModelSpec, type ResolveModelOptions, stderrProgress, type DownloadProgress, type ProgressCallback, filterRepoPaths, repoFolderName } from './hub/index.js';

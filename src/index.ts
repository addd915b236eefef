export { acquireDevice, NoAdapterError, OPTIONAL_FEATURES, type AcquiredDevice, type AdapterDescription, type DeviceOptions } from './gpu/device.js';
export { Runtime, Tensor, Storage, Params, ShapeError, getRuntime, releaseRuntime, sizeClass, numelOf, DTYPE_BYTES, type DType, type KernelDef, type DispatchArgs, type MemoryStats, type RuntimeOptions } from './gpu/runtime.js';
export { f32ToF16Bits, f16BitsToF32, f32ArrayToF16, f16ArrayToF32, bf16ArrayToF32 } from './gpu/half.js';
export { openFile, blobSource, type ByteSource } from './io/bytesource.js';
export { SafetensorsFile, ShardedSafetensors, SafetensorsError, openSafetensors, encodeSafetensors, type TensorToWrite, parseHeader, rawToFloat32, rawToInt32, SAFETENSORS_DTYPES, MAX_HEADER_BYTES, type SafetensorsDType, type TensorInfo, type RawTensor, type TensorSource } from './io/safetensors.js';
export * as kernels from './kernels/index.js';

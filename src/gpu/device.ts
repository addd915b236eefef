// Acquiring a GPUDevice in Node (dawn.node via the `webgpu` package), Deno and browsers.

import { hostPackage } from '../platform/host.js';
import { resolveFlags, type Flags } from './flags.js';

/** Optional features we request whenever the adapter offers them. */
export const OPTIONAL_FEATURES = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
] as const;

export interface DeviceOptions {
  /** Dawn toggles to enable (Node only), e.g. `allow_unsafe_apis`, `disable_robustness`, besides
   *  the `dawnToggles` flag (`DIFFSIM_DAWN_TOGGLES`). */
  enableToggles?: string[];
  /** Dawn toggles to disable (Node only), besides the `dawnDisableToggles` flag. */
  disableToggles?: string[];
  /** Dawn backend name (Node only): `vulkan`, `metal`, `d3d12`, …; wins over the `dawnBackend` flag. */
  backend?: string;
  /** Adapter power preference; default `high-performance`. */
  powerPreference?: GPUPowerPreference;
  /** Features to leave out even if present (e.g. to test fallbacks), besides the `disableFeatures` flag. */
  disableFeatures?: string[];
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** `node-dawn`, `deno` or `browser`. */
  host: string;
  /** Dawn backend when known (Node), e.g. `vulkan`. */
  backend: string;
  isFallbackAdapter: boolean;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** Shapes offered by `chromium-experimental-subgroup-matrix` (M×N×K, component types). */
  subgroupMatrixConfigs?: { M: number; N: number; K: number; componentType: string; resultComponentType: string }[];
}

export interface AcquiredDevice {
  device: GPUDevice;
  adapter: GPUAdapter;
  adapterInfo: AdapterDescription;
  features: string[];
  /** The limits granted to the device. */
  limits: Record<string, number>;
  /** Releases the device and the reference that keeps dawn.node alive. */
  destroy(): void;
}

export class NoAdapterError extends Error {
  constructor(detail: string) {
    super(
      `no WebGPU adapter found (${detail}). ` +
        'diffsim needs a Vulkan, Metal or D3D12 capable GPU driver. On Linux without a GPU install ' +
        "Mesa's lavapipe software Vulkan driver, version 23 or newer (Debian 12: " +
        '`apt-get install -t bookworm-backports mesa-vulkan-drivers`; Ubuntu 24.04: ' +
        '`apt-get install mesa-vulkan-drivers`), then run `diffsim info`.',
    );
    this.name = 'NoAdapterError';
  }
}

interface ProcessLike {
  versions?: { node?: string };
}

/** The flags the device is acquired with. */
export type DeviceFlags = Pick<Flags, 'dawnToggles' | 'dawnDisableToggles' | 'dawnBackend' | 'disableFeatures'>;

function isNode(): boolean {
  const proc = (globalThis as { process?: ProcessLike }).process;
  return !!proc?.versions?.node && !(globalThis as { Deno?: unknown }).Deno;
}

const LIMITS_TO_MAXIMISE = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
] as const;

/** Returns a ready GPUDevice with the adapter's maximum buffer and workgroup limits and every
 *  optional feature from OPTIONAL_FEATURES the adapter has. `flags` (see flags.ts) default to the
 *  environment's. */
export async function acquireDevice(options: DeviceOptions = {}, flags: DeviceFlags = resolveFlags().flags): Promise<AcquiredDevice> {
  let gpu: GPU | undefined;
  let host: string;
  let backend = '';
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (isNode()) {
    host = 'node-dawn';
    let mod: { create(args: string[]): GPU; globals: object };
    try {
      mod = await hostPackage<{ create(args: string[]): GPU; globals: object }>('webgpu');
    } catch (e) {
      throw new NoAdapterError(`the 'webgpu' package (dawn.node) could not be loaded: ${(e as Error).message}`);
    }
    // dawn.node's classes (GPUBufferUsage, …) become globals, as in browsers.
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    const enable = [...(options.enableToggles ?? []), ...flags.dawnToggles];
    const disable = [...(options.disableToggles ?? []), ...flags.dawnDisableToggles];
    backend = options.backend ?? (flags.dawnBackend || (detectPlatform() === 'linux' ? 'vulkan' : ''));
    const args: string[] = [];
    if (enable.length) args.push(`enable-dawn-features=${[...new Set(enable)].join(',')}`);
    if (disable.length) args.push(`disable-dawn-features=${[...new Set(disable)].join(',')}`);
    if (backend) args.push(`backend=${backend}`);
    try {
      gpu = mod.create(args);
    } catch (e) {
      throw new NoAdapterError(`dawn.node failed to start with ${JSON.stringify(args)}: ${(e as Error).message}`);
    }
  } else if (nav?.gpu) {
    gpu = nav.gpu;
    host = (globalThis as { Deno?: unknown }).Deno ? 'deno' : 'browser';
  } else {
    throw new NoAdapterError('this runtime has no navigator.gpu (Deno 2 and current browsers have it)');
  }

  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  } catch (e) {
    throw new NoAdapterError(`requestAdapter failed: ${(e as Error).message}`);
  }
  if (!adapter) throw new NoAdapterError(`requestAdapter returned null on ${host}${backend ? ` (${backend})` : ''}`);

  const disabled = new Set([...(options.disableFeatures ?? []), ...flags.disableFeatures]);
  const requiredFeatures = OPTIONAL_FEATURES.filter(
    (f) => adapter!.features.has(f) && !disabled.has(f),
  ) as unknown as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  const adapterLimits = adapter.limits as unknown as Record<string, number>;
  for (const name of LIMITS_TO_MAXIMISE) {
    const v = adapterLimits[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });

  const info = adapter.info;
  const adapterInfo: AdapterDescription = {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    host,
    backend,
    isFallbackAdapter: !!(info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter,
  };
  const sub = info as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number };
  if (typeof sub?.subgroupMinSize === 'number') adapterInfo.subgroupMinSize = sub.subgroupMinSize;
  if (typeof sub?.subgroupMaxSize === 'number') adapterInfo.subgroupMaxSize = sub.subgroupMaxSize;
  const configs = (info as unknown as { subgroupMatrixConfigs?: ArrayLike<Record<string, unknown>> } | undefined)?.subgroupMatrixConfigs;
  if (configs && configs.length) {
    adapterInfo.subgroupMatrixConfigs = Array.from(configs, (c) => ({
      M: Number(c.M),
      N: Number(c.N),
      K: Number(c.K),
      componentType: String(c.componentType),
      resultComponentType: String(c.resultComponentType),
    }));
  }

  const limits: Record<string, number> = {};
  const deviceLimits = device.limits as unknown as Record<string, number>;
  for (const key in deviceLimits) {
    const v = deviceLimits[key];
    if (typeof v === 'number') limits[key] = v;
  }
  // Some hosts expose limits only as prototype getters, which for..in does not always enumerate.
  for (const name of LIMITS_TO_MAXIMISE) if (typeof deviceLimits[name] === 'number') limits[name] = deviceLimits[name]!;

  const features = [...device.features].map(String).sort();
  // dawn.node's GPU object must stay referenced while the device is in use; dropping the last
  // reference after destroy lets Node exit.
  const keepAlive: { gpu: GPU | null } = { gpu };
  return {
    device,
    adapter,
    adapterInfo,
    features,
    limits,
    destroy() {
      device.destroy();
      keepAlive.gpu = null;
    },
  };
}

function detectPlatform(): string {
  const proc = (globalThis as { process?: { platform?: string } }).process;
  return proc?.platform ?? '';
}

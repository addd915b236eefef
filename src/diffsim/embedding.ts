// A DiffSim embedding: one image's hooked queries, keys and values with the settings they were
// made with, so that a score can be computed later against any other image embedded the same
// way (a retrieval index embeds once per image). Saved as safetensors with the settings in the
// metadata.

import type { Runtime, Tensor } from '../gpu/runtime.js';
import { blobSource } from '../io/bytesource.js';
import { SafetensorsFile, encodeSafetensors } from '../io/safetensors.js';
import type { Qkv } from './aas.js';
import { DiffSimSettingsError, settingsKey, type DitEmbeddingSettings, type EmbeddingSettings } from './settings.js';

/** Which side of a pair an image is embedded for: in the official mode its noise draws depend on it. */
export type ImageRole = 'A' | 'B';
/** Whether the noise came from the seeded generator or was given by the caller. */
export type NoiseSource = 'generator' | 'given';

/** What a pass computed on the way, kept on request (EmbedOptions.keepIntermediates). */
export interface DiffSimIntermediates {
  /** 0.18215·z of the VAE posterior [1, 4, s, s]. */
  latents: Tensor;
  /** add_noise(latents, noise, t) [1, 4, s, s] (SDXL: latentScale·latents + σ·noise). */
  noisyLatents: Tensor;
  /** SDXL: scale_model_input's output, noisyLatents/√(σ² + 1) [1, 4, s, s]. */
  modelInput?: Tensor;
  /** DiffSim-C: the image encoder's penultimate states of [zeros image, image] [B, T, E]. */
  imageEmbeds?: Tensor;
  /** DiffSim-C: the resampler's IP tokens [B, 16, D]. */
  ipTokens?: Tensor;
}

const FORMAT = 'diffsim-embedding';

export class DiffSimEmbedding implements Qkv {
  private disposed = false;
  constructor(
    readonly role: ImageRole,
    /** The settings the embedding depends on (the scoring ones, similarity, cfgHalves and
     *  roundToF16, belong to the metric that compares). */
    readonly settings: Readonly<EmbeddingSettings | DitEmbeddingSettings>,
    /** settingsKey(settings): equal keys ⇔ comparable embeddings. */
    readonly key: string,
    /** Queries (B, N, C) before the head split, B = the CFG batch [negative, prompt]. */
    readonly q: Tensor,
    /** Keys (B, Nk, C): attn1's for DiffSim-S, the IP keys (Nk = 16) for DiffSim-C. */
    readonly k: Tensor,
    readonly v: Tensor,
    readonly noiseSource: NoiseSource,
    readonly intermediates?: DiffSimIntermediates,
    /** Further taps of the same pass asked for by name (EmbedOptions.taps), owned by the embedding. */
    readonly taps: ReadonlyMap<string, Tensor> = new Map(),
  ) {}

  get isDisposed(): boolean {
    return this.disposed;
  }

  assertLive(): void {
    if (this.disposed) throw new Error(`DiffSim: the embedding (role ${this.role}) was already disposed`);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [this.q, this.k, this.v, ...Object.values(this.intermediates ?? {}), ...this.taps.values()]) t.dispose();
  }

  /** safetensors bytes: q, k, v (F32) and the settings, role and noise source in the metadata. */
  async toSafetensors(): Promise<Uint8Array> {
    this.assertLive();
    const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const [name, t] of [['q', this.q], ['k', this.k], ['v', this.v]] as const) tensors[name] = { dtype: 'F32', shape: t.shape, data: (await t.read()) as Float32Array };
    return encodeSafetensors(tensors, { format: FORMAT, version: '1', role: this.role, noise_source: this.noiseSource, settings: JSON.stringify(this.settings) });
  }

  /** Reads an embedding written by `toSafetensors` (uploaded to `rt`). */
  static async fromSafetensors(rt: Runtime, bytes: Uint8Array, name = 'embedding'): Promise<DiffSimEmbedding> {
    const file = await SafetensorsFile.open(blobSource(bytes, name));
    try {
      const m = file.metadata;
      if (m.format !== FORMAT) throw new DiffSimSettingsError(`${name}: not a DiffSim embedding (metadata format ${JSON.stringify(m.format)})`);
      if (m.role !== 'A' && m.role !== 'B') throw new DiffSimSettingsError(`${name}: role ${JSON.stringify(m.role)} is not A or B`);
      if (m.noise_source !== 'generator' && m.noise_source !== 'given') throw new DiffSimSettingsError(`${name}: noise source ${JSON.stringify(m.noise_source)}`);
      let settings: EmbeddingSettings | DitEmbeddingSettings;
      try {
        settings = Object.freeze(JSON.parse(m.settings ?? '') as EmbeddingSettings | DitEmbeddingSettings);
      } catch {
        throw new DiffSimSettingsError(`${name}: the settings metadata is not JSON`);
      }
      const up: Tensor[] = [];
      try {
        for (const t of ['q', 'k', 'v']) {
          const { shape, data } = await file.readFloat32(t);
          up.push(rt.upload(data, shape).keep());
        }
      } catch (e) {
        for (const t of up) t.dispose();
        throw e;
      }
      return new DiffSimEmbedding(m.role, settings, settingsKey(settings), up[0]!, up[1]!, up[2]!, m.noise_source);
    } finally {
      await file.close();
    }
  }
}

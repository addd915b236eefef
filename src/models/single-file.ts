// placeholder until the single-file conversion lands on this branch
import type { TensorSource } from '../io/safetensors.js';
import type { ClipTextConfig } from './clip-text.js';
import type { UNetConfig } from './unet.js';
import type { VaeConfig } from './vae.js';
export interface SingleFileConfigs { unet?: UNetConfig; vae?: VaeConfig; textEncoder?: ClipTextConfig }
export function isSd15SingleFile(src: TensorSource): boolean {
  return src.names().some((n) => n.startsWith('model.diffusion_model.'));
}
export function sd15SingleFile(_src: TensorSource, _o: { configs?: SingleFileConfigs; ema?: boolean } = {}): { unet: { source: TensorSource; config: UNetConfig }; vae: { source: TensorSource; config: VaeConfig }; textEncoder: { source: TensorSource; config: ClipTextConfig } } {
  throw new Error('single-file checkpoints are not supported yet');
}

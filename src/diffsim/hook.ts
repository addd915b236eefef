// Where DiffSim hooks the U-Net, derived from the model's own block lists (so any SD1.5-shaped
// config works, not only SD1.5's sizes). The official `DiffSim.diffsim()` selects, with L the
// target layer:
//   down → unet.down_blocks[:-1][L].attentions[-1].transformer_blocks[-1]
//   mid  → unet.mid_block.attentions[-1].transformer_blocks[-1]            (L ignored)
//   up   → unet.up_blocks[1:][L].attentions[-1].transformer_blocks[-1]
// and hooks its attn1 (DiffSim-S) or attn2 (DiffSim-C). The slices drop SD1.5's plain
// DownBlock2D (last) and UpBlock2D (first), which have no attention.

import type { UNet2DConditionModel } from '../models/unet.js';
import type { Attention } from '../models/sd-blocks.js';
import { DiffSimSettingsError, type DiffSimBlock } from './settings.js';

export interface HookPoint {
  block: DiffSimBlock;
  layer: number;
  /** Path of the hooked attention module. */
  module: string;
  attention: Attention;
  heads: number;
}

interface BlockWithAttentions {
  readonly attentions: readonly { readonly path: string; readonly transformer_blocks: readonly { readonly attn1: Attention; readonly attn2: Attention }[] }[];
}

/** The attention module the official code hooks for (block, layer). Unknown blocks and layers
 *  outside the block list are refused, naming the valid range. */
export function resolveHook(unet: UNet2DConditionModel, block: DiffSimBlock, layer: number, kind: 'attn1' | 'attn2'): HookPoint {
  let candidates: readonly BlockWithAttentions[];
  let listName: string;
  let firstIndex: number;
  if (block === 'down') {
    candidates = unet.down_blocks.slice(0, -1);
    listName = 'down_blocks[:-1]';
    firstIndex = 0;
  } else if (block === 'up') {
    candidates = unet.up_blocks.slice(1);
    listName = 'up_blocks[1:]';
    firstIndex = 1;
  } else if (block === 'mid') {
    candidates = [unet.mid_block];
    listName = 'mid_block';
    firstIndex = 0;
  } else {
    throw new DiffSimSettingsError(`DiffSim: unknown block ${JSON.stringify(block)} (down, mid, up)`);
  }
  if (!Number.isInteger(layer) || layer < 0 || layer >= candidates.length) {
    const range = candidates.length === 1 ? 'only layer 0' : `layers 0–${candidates.length - 1}`;
    throw new DiffSimSettingsError(`DiffSim: block "${block}" has no layer ${layer}: ${listName} of this U-Net has ${range}`);
  }
  const b = candidates[layer]!;
  const blockPath = block === 'mid' ? 'mid_block' : `${block}_blocks.${layer + firstIndex}`;
  const transformer = b.attentions[b.attentions.length - 1];
  if (!transformer) throw new DiffSimSettingsError(`DiffSim: ${blockPath} (block "${block}", layer ${layer}) has no attention layers to hook`);
  const tb = transformer.transformer_blocks[transformer.transformer_blocks.length - 1];
  if (!tb) throw new DiffSimSettingsError(`DiffSim: ${transformer.path} has no transformer blocks`);
  const attention = tb[kind];
  return { block, layer, module: attention.path, attention, heads: attention.heads };
}

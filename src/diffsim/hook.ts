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

/** Where DiffSim on SDXL hooks (diffsim_xl.py), with the list-valued target [L0, L1, L2]:
 *    down → unet.down_blocks[1:][L0].attentions[L1].transformer_blocks[L2]   (= down_blocks.{L0+1})
 *    up   → unet.up_blocks[:-1][L0].attentions[L1].transformer_blocks[L2]    (= up_blocks.{L0})
 *    mid  → unet.mid_block.attentions[L0].transformer_blocks[L1]
 *  The slices drop SDXL's plain DownBlock2D (first) and UpBlock2D (last). Indices left out (a
 *  single value, which crashes the official code) are the last attention / transformer block. */
export function resolveXlHook(unet: UNet2DConditionModel, block: DiffSimBlock, target: readonly number[], kind: 'attn1' | 'attn2'): HookPoint & { target: number[] } {
  let blocks: readonly BlockWithAttentions[];
  let listName: string;
  let firstIndex: number;
  if (block === 'down') [blocks, listName, firstIndex] = [unet.down_blocks.slice(1), 'down_blocks[1:]', 1];
  else if (block === 'up') [blocks, listName, firstIndex] = [unet.up_blocks.slice(0, -1), 'up_blocks[:-1]', 0];
  else if (block === 'mid') [blocks, listName, firstIndex] = [[unet.mid_block], 'mid_block', 0];
  else throw new DiffSimSettingsError(`DiffSim: unknown block ${JSON.stringify(block)} (down, mid, up)`);
  const depth = block === 'mid' ? 2 : 3;
  if (target.length === 0 || target.length > depth) throw new DiffSimSettingsError(`DiffSim (SDXL): block "${block}" takes a target of 1–${depth} indices (${block === 'mid' ? '[attention, transformer block]' : '[block, attention, transformer block]'}), got [${target.join(', ')}]`);
  const range = (n: number) => (n === 1 ? 'only 0' : `0–${n - 1}`);
  const path = block === 'mid' ? [0, ...target] : [...target];
  const b = blocks[path[0]!];
  if (!b) throw new DiffSimSettingsError(`DiffSim (SDXL): block "${block}" has no layer ${path[0]}: ${listName} of this U-Net has ${range(blocks.length)}`);
  const blockPath = block === 'mid' ? 'mid_block' : `${block}_blocks.${path[0]! + firstIndex}`;
  if (!b.attentions.length) throw new DiffSimSettingsError(`DiffSim (SDXL): ${blockPath} has no attention layers to hook`);
  const ai = path[1] ?? b.attentions.length - 1;
  const transformer = b.attentions[ai];
  if (!transformer) throw new DiffSimSettingsError(`DiffSim (SDXL): ${blockPath} has no attention ${ai} (${range(b.attentions.length)})`);
  const ti = path[2] ?? transformer.transformer_blocks.length - 1;
  const tb = transformer.transformer_blocks[ti];
  if (!tb) throw new DiffSimSettingsError(`DiffSim (SDXL): ${transformer.path} has no transformer block ${ti} (${range(transformer.transformer_blocks.length)})`);
  const attention = tb[kind];
  const resolved = block === 'mid' ? [ai, ti] : [path[0]!, ai, ti];
  return { block, layer: resolved[0]!, module: attention.path, attention, heads: attention.heads, target: resolved };
}

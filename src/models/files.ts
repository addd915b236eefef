// Reading model folders on disk (Node, Deno): JSON configs, the weights file of a component folder,
// tensor sources.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openSafetensors, type TensorSource } from '../io/safetensors.js';
import { chooseWeights } from './sources.js';

export async function readJson<T>(path: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read the ${what} (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path}: the ${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** The weights file of a diffusers component folder: a shard index (`*.safetensors.index.json`, or a
 *  variant's `*.safetensors.index.fp16.json`) or the single `*.safetensors` (preferring the
 *  non-variant name). */
export async function findWeights(dir: string): Promise<string> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new Error(`${dir}: cannot list the folder (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  const chosen = chooseWeights(names);
  if (!chosen) throw new Error(`${dir}: no .safetensors weights (only .safetensors is supported; convert .bin/.ckpt files first)`);
  return join(dir, chosen);
}

export async function withSource<T>(path: string, fn: (src: TensorSource) => Promise<T>): Promise<T> {
  const src = await openSafetensors(path);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}


// Writes the trimmed DiffSim references of the fixture subset (test/fixtures/diffsim-tiny) from a
// full fixture folder, and lists them in test/fixtures/index.json:
//   diffsim_s.safetensors: the inputs (process_image tensors, latents, noise, prompt), the
//     timestep list and, for every stored step, t, the noisy latents and all of up_blocks.0
//     (the official default layer: q/k/v, attention outputs, AAS values);
//   diffsim_c.safetensors: the same for step 600 only, without the process_image tensors (the
//     PNGs are processed instead), with the IP image embeddings and tokens.
// Usage: node build/test/support/make-diffsim-subset.js /work/shared/fixtures
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { FIXTURES } from './helpers.js';

interface IndexFile {
  description?: string;
  config?: unknown;
  bytes?: number;
  tensors: Record<string, { shape: number[]; dtype: string; doc?: string }>;
}

const STEP = /^step(\d+)\.(.+)$/;

function keepS(name: string): boolean {
  const m = STEP.exec(name);
  if (!m) return true;
  return m[2] === 't' || m[2]!.startsWith('noisy_latents_') || m[2]!.startsWith('up_blocks.0.');
}

function keepC(name: string): boolean {
  const m = STEP.exec(name);
  if (!m) return !name.startsWith('input.');
  return m[1] === '600' && (m[2] === 't' || m[2]!.startsWith('noisy_latents_') || m[2]!.startsWith('ip_tokens_') || m[2]!.startsWith('up_blocks.0.'));
}

async function main(): Promise<void> {
  const src = process.argv[2];
  if (!src) throw new Error('usage: make-diffsim-subset.js FULL_FIXTURES_DIR');
  const fullIndex = JSON.parse(readFileSync(join(src, 'index.json'), 'utf8')) as { files: Record<string, IndexFile> };
  const indexPath = join(FIXTURES, 'index.json');
  let text = readFileSync(indexPath, 'utf8');
  const index = JSON.parse(text) as { files: Record<string, IndexFile> };
  const entries: string[] = [];
  for (const [name, keep] of [['diffsim_s', keepS], ['diffsim_c', keepC]] as const) {
    const rel = `diffsim-tiny/${name}.safetensors`;
    const file = await SafetensorsFile.open(join(src, rel));
    const tensors: Record<string, TensorToWrite> = {};
    for (const n of file.names().filter(keep)) {
      const raw = await file.readRaw(n);
      tensors[n] = { dtype: raw.dtype, shape: raw.shape, data: raw.bytes };
    }
    const bytes = encodeSafetensors(tensors, file.metadata);
    // The index describes the file: its config is the file's metadata (the full index's entry may
    // list more, e.g. diffsim_s's module_paths include diffsim_c's).
    const config = JSON.parse(file.metadata.config ?? 'null') as unknown;
    await file.close();
    writeFileSync(join(FIXTURES, rel), bytes);
    const full = fullIndex.files[rel]!;
    if (index.files[rel]) throw new Error(`${indexPath} already lists ${rel}: remove its entry first`);
    const entry: IndexFile = {
      description: `${full.description} (subset)`,
      config,
      bytes: full.bytes,
      tensors: Object.fromEntries(Object.entries(full.tensors).filter(([n]) => keep(n))),
    };
    // Formatted as the index is (Python's json.dumps(indent=1): non-ASCII escaped), so that the
    // rest of the file stays byte for byte.
    const json = JSON.stringify({ [rel]: entry }, null, 1).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    entries.push(` ${json.slice(2, -2).replace(/\n/g, '\n ')}`);
    console.log(`${rel}: ${Object.keys(tensors).length} tensors, ${bytes.byteLength} bytes`);
  }
  const anchor = '\n "files": {\n';
  const at = text.indexOf(anchor);
  if (at < 0) throw new Error(`${indexPath}: no "files" object`);
  text = `${text.slice(0, at + anchor.length)}${entries.join(',\n')},\n${text.slice(at + anchor.length)}`;
  JSON.parse(text);
  writeFileSync(indexPath, text);
}

await main();

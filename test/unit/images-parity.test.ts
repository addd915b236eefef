// `diffsim parity` on image fixtures follows each fixture's documented meaning, without a GPU:
// preprocess/<name>.pixels is np.array(PIL.Image.open(png)) as stored (palette indices for mode P),
// codecs/<file>.pixels is the loader's RGB.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDLERS, loadIndex, type FixtureIndex } from '../../src/parity/parity.js';
import { SafetensorsFile, encodeSafetensors } from '../../src/io/safetensors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { FIXTURES } from '../support/helpers.js';

const noGpu = null as unknown as Runtime; // the image handlers never touch the runtime

test('preprocess parity compares a palette PNG as palette indices, and every kind as stored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-parity-'));
  try {
    mkdirSync(join(dir, 'preprocess'));
    const ref = await SafetensorsFile.open(join(FIXTURES, 'images', 'reference.safetensors'));
    const tensors: Parameters<typeof encodeSafetensors>[0] = {};
    const images: Record<string, { png: string }> = {};
    // Mode P (palette indices), 1 (0/1), L, LA as stored by PIL.
    for (const [key, file] of [['pal8', 'png_palette8.png'], ['pal4', 'png_palette4_trns.png'], ['bits', 'png_gray1.png'], ['gray', 'png_gray8.png'], ['la', 'png_la8.png']] as const) {
      copyFileSync(join(FIXTURES, 'images', file), join(dir, 'preprocess', `${key}.png`));
      const stored = await ref.readRaw(`${file}#stored`);
      tensors[`${key}.pixels`] = { dtype: 'U8', shape: stored.shape, data: stored.bytes };
      images[key] = { png: `preprocess/${key}.png` };
    }
    await ref.close();
    writeFileSync(join(dir, 'preprocess', 'preprocess.safetensors'), encodeSafetensors(tensors, { format: 'pt', images: JSON.stringify(images) }));
    const index: FixtureIndex = { files: { 'preprocess/preprocess.safetensors': { tensors: {} } } };
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    const rows = await HANDLERS.preprocess!(noGpu, dir, 'preprocess', await loadIndex(dir), { weights: 'f32' });
    assert.equal(rows.map((r) => r.name).sort(), ['bits.pixels', 'gray.pixels', 'la.pixels', 'pal4.pixels', 'pal8.pixels']);
    for (const r of rows) assert.ok(r.pass && r.err === 0, `${r.name}: ${r.err} mismatches (${r.note})`);
    assert.match(rows.find((r) => r.name === 'pal8.pixels')!.note!, /mode P/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('preprocess and codecs fixtures in the repo pass, the codecs JPEGs exactly', async () => {
  const index = await loadIndex(FIXTURES);
  for (const folder of ['preprocess', 'codecs']) {
    const rows = await HANDLERS[folder]!(noGpu, FIXTURES, folder, index, { weights: 'f32' });
    assert.ok(rows.length > 0, folder);
    for (const r of rows) assert.ok(r.pass, `${folder}/${r.name}: ${r.err} (${r.note ?? ''})`);
    for (const r of rows.filter((x) => x.name.endsWith('.pixels'))) assert.is(r.err, 0, `${r.name} exact`);
  }
  assert.ok(readFileSync(join(FIXTURES, 'codecs', 'codecs.safetensors')).length > 0);
});

test.run();

// Synthetic images for the suites that build datasets on disk: a smooth gradient per seed, so
// images differ and scores are not tied.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { rng } from './helpers.js';

/** A size×size PNG (whatever the file's extension: images are sniffed): a gradient per seed. */
export function png(seed: number, size = 24): Buffer {
  const r = rng(seed);
  const img = new PNG({ width: size, height: size });
  const [a, b, c] = [r() * 255, r() * 255, r() * 255];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 4;
      img.data[i] = (a + x * 7) % 256;
      img.data[i + 1] = (b + y * 5) % 256;
      img.data[i + 2] = (c + (x + y) * 3 + r() * 20) % 256;
      img.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(img);
}

/** Writes the 24×24 PNG of a seed, or the given bytes, to `path`, creating its folder. */
export function writeImage(path: string, content: number | Buffer | string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, typeof content === 'number' ? png(content) : content);
}

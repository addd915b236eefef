#!/usr/bin/env node
// Links this package's own `diffsim` command into node_modules/.bin after a build in the package's
// checkout, so `npx diffsim …` works right after `npm install` in a clone (npm links the bins of
// dependencies only).
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'dist', 'cli', 'bin.js');
const binDir = join(root, 'node_modules', '.bin');
if (existsSync(target) && existsSync(join(root, 'node_modules'))) {
  chmodSync(target, 0o755);
  mkdirSync(binDir, { recursive: true });
  const link = join(binDir, 'diffsim');
  rmSync(link, { force: true });
  symlinkSync(relative(binDir, target), link);
}

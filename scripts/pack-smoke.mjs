#!/usr/bin/env node
// The package as a user gets it: `npm pack`, install the tarball into an empty project, then
// `import('diffsim')`, `npx diffsim --help` and `npx diffsim demo` (offline, on the tiny model the
// package ships) in Node, the same import under Deno, and a strict
// TypeScript consumer (skipLibCheck false) type-checking against the shipped declarations.
// Prints "pack: N passed, M failed". Needs the package built (`tsc -p tsconfig.json`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'diffsim-pack-'));
let passed = 0;
let failed = 0;

function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail ? `\n${detail.trim().split('\n').slice(-15).map((l) => `       ${l}`).join('\n')}` : ''}`);
}

function sh(cmd, args, cwd, env = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });
  return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

try {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const pack = sh(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root);
  let files = [];
  let tarball = '';
  try {
    const info = JSON.parse(pack.out.slice(pack.out.indexOf('[')))[0];
    files = info.files.map((f) => f.path);
    tarball = join(work, info.filename);
  } catch {
    check('npm pack', false, pack.out);
    throw new Error('npm pack failed');
  }
  check('npm pack', pack.code === 0 && existsSync(tarball), pack.out);
  const demoFiles = (f) => f.startsWith('weights/tiny/sd15/') || f === 'weights/tiny/README.md' || f.startsWith('assets/pair/');
  const stray = files.filter((f) => !(f.startsWith('dist/') || demoFiles(f) || ['package.json', 'README.md', 'LICENSE'].includes(f)) || f.startsWith('dist/test') || f.startsWith('dist/bench') || f.endsWith('.map'));
  check(`tarball holds only the library and the demo's files (${files.length} files)`, stray.length === 0, `unexpected: ${stray.slice(0, 10).join(', ')}`);
  // Of weights/tiny only the demo's SD1.5 ships (the other tiny test models stay in the repository).
  check('tarball holds the demo model weights/tiny/sd15 and pair, no other tiny model', files.includes('weights/tiny/sd15/unet/diffusion_pytorch_model.safetensors') && files.includes('assets/pair/A.png') && !files.some((f) => f.startsWith('weights/') && !demoFiles(f)));
  const size = JSON.parse(pack.out.slice(pack.out.indexOf('[')))[0].size;
  check(`tarball ${(size / 1e6).toFixed(2)} MB (at most 11 MB)`, size <= 11e6);
  check('tarball has the entry point, declarations and the command', ['dist/index.js', 'dist/index.d.ts', 'dist/cli/bin.js', 'dist/cli/main.js'].every((f) => files.includes(f)));

  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  const install = sh(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, `typescript@${process.env.npm_package_devDependencies_typescript ?? '5.9.3'}`], app);
  check('npm install <tarball> into an empty project', install.code === 0, install.out);

  writeFileSync(
    join(app, 'use.mjs'),
    `import * as d from 'diffsim';
const want = ['Runtime', 'tidy', 'loadSd15', 'UNet2DConditionModel', 'ClipVisionModel', 'Dinov2Model', 'IpAdapterPlus', 'loadImage', 'SafetensorsFile', 'kernels'];
const missing = want.filter((k) => !(k in d));
if (missing.length) { console.log('missing exports: ' + missing.join(', ')); process.exit(1); }
console.log('exports ok');
`,
  );
  const imp = sh(process.execPath, ['use.mjs'], app);
  check("import('diffsim') in Node", imp.code === 0 && imp.out.includes('exports ok'), imp.out);

  const help = sh(process.execPath, [join(app, 'node_modules', '.bin', 'diffsim'), '--help'], app);
  check('npx diffsim --help', help.code === 0 && /usage/i.test(help.out), help.out);
  const npx = sh(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['--no-install', 'diffsim', '--help'], app);
  check('npx --no-install diffsim --help', npx.code === 0 && /usage/i.test(npx.out), npx.out);
  // The first run: nothing fetched (an empty hub cache stays empty; the hub endpoint goes nowhere).
  const hfHome = join(work, 'hf-home');
  mkdirSync(hfHome);
  const npxBin = process.platform === 'win32' ? 'npx.cmd' : 'npx';
  const demoEnv = { HF_HOME: hfHome, HF_HUB_CACHE: join(hfHome, 'hub'), HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '' };
  const demo = spawnSync(npxBin, ['--no-install', 'diffsim', 'demo'], { cwd: app, encoding: 'utf8', env: { ...process.env, ...demoEnv }, timeout: 300_000 });
  const lines = (demo.stdout ?? '').split('\n').filter(Boolean);
  check(
    'npx diffsim demo: a finite score and one line saying what it means, offline, stderr clean',
    demo.status === 0 && lines.length === 2 && Number.isFinite(Number(lines[0])) && /role A.*role B.*more similar/.test(lines[1] ?? '') && !/artificially reduced|^Warning:/m.test(demo.stderr ?? '') && readdirSync(hfHome).length === 0,
    `${demo.stdout ?? ''}${demo.stderr ?? ''}${demo.error?.message ?? ''}`,
  );

  writeFileSync(
    join(app, 'consumer.ts'),
    `import { Runtime, tidy, kernels, type Tensor, type Taps, type UNetOutput } from 'diffsim';
export async function main(): Promise<number> {
  const rt: Runtime = await Runtime.create();
  const y: Tensor = tidy(() => kernels.affine(rt.upload([1, 2], [2]), 2, 1));
  const device: GPUDevice = rt.device;
  const out: UNetOutput | null = null;
  const taps: Taps | undefined = out ?? undefined;
  void device; void taps;
  return (await y.read())[0]!;
}
`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: [] }, files: ['consumer.ts'] }),
  );
  const tsc = sh(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
  check('declarations type-check in a strict consumer (skipLibCheck false; the DOM lib WebGPU types need, no Node types)', tsc.code === 0, tsc.out);

  const deno = join(root, 'node_modules', '.bin', 'deno');
  if (existsSync(deno)) {
    writeFileSync(join(app, 'deno.mjs'), `import { Runtime, tidy, kernels } from 'diffsim';\nconst rt = await Runtime.create();\nconst y = tidy(() => kernels.affine(rt.upload([1, 2], [2]), 2, 1));\nconsole.log('deno result ' + Array.from(await y.read()).join(','));\nawait rt.close();\n`);
    const d = sh(deno, ['run', '--allow-read', '--allow-env', 'deno.mjs'], app, { DENO_NO_UPDATE_CHECK: '1' });
    check("import('diffsim') in Deno (navigator.gpu)", d.code === 0 && d.out.includes('deno result 3,5'), d.out);
    const dh = sh(deno, ['run', '--allow-read', '--allow-env', 'node_modules/diffsim/dist/cli/main.js', '--help'], app, { DENO_NO_UPDATE_CHECK: '1' });
    check('diffsim --help in Deno', dh.code === 0 && /usage/i.test(dh.out), dh.out);
  } else check('deno is installed (dev dependency)', false);
} catch (e) {
  if (!failed) check('smoke test ran', false, String(e?.stack ?? e));
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`pack: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

// The demo page end to end in headless Chromium (Debian's /usr/bin/chromium through playwright-core;
// WebGPU on SwiftShader): the page is built with esbuild and served on 127.0.0.1, the tiny models
// come from a fake hub in the hub's layout (CORS as the hub answers other origins), two fixture
// images are scored and the score must equal the Node library's for the same inputs and settings.
// A reload must read every model file back from Cache Storage: no second download. For the AAS
// metrics the page's agreement map (mean, min, max and every grid value) must equal the Node
// library's, and the DiffSim page, saved as docs/demo.png, must show it: the map canvas's pixels in
// the screenshot are agreementPixels' picture as Node computes it. DiffSim-C runs on the tiny
// IP-Adapter. With ?bufferLimit lowered below the largest buffer, the page must refuse before any
// weight is downloaded, naming the buffer Node's check names.
//
// Tolerance: SwiftShader and lavapipe both compute in f32 but order reductions (matmul tiles,
// softmax and norm sums, subgroup operations) differently, so results differ in the last bits;
// over the few hundred accumulations of a tiny model's pass that stays within 3e-5 relative to the
// score (seen: 1.5e-6 for DiffSim at step 500, 1.3e-5 at the default step 600, whose less noisy
// latents give the hooked layer other magnitudes; CLIP, DINOv2 AAS and DiffSim-C below 1e-6). The f16 rounding of DiffSim's score is turned off for the comparison
// (?diffsim={"roundToF16":false}), since one f32 ulp may flip an f16 rounding. The map's values are
// cosines in [−1, 1] from the same passes, each over one token's C channels only (32 in the tiny
// U-Net), so one value carries more of the rounding than the pair's score over all tokens (seen:
// up to 1e-5 for DiffSim's, 2e-6 for DiffSim-C's): every grid value, min and max included, must
// agree within 5e-5 absolute (GRID_TOL), the map's mean within 3e-5 absolute (MAP_TOL; 1.07e-5 seen for
// DiffSim's at the default step 600). The
// screenshot's map pixels may differ from Node's picture by 1 per channel where a colour's rounding
// flips on such a difference (PIXEL_TOL 2, and on average less than 0.05).
//
// Without /usr/bin/chromium (or $DIFFSIM_CHROMIUM) the suite fails, saying how to install it,
// unless DIFFSIM_SKIP_BROWSER=1.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createMetric, type MetricName } from '../../src/diffsim/metric.js';
import { agreementMap, agreementPixels, type AgreementMap } from '../../src/apps/map.js';
import { decodeImage, loadImage } from '../../src/io/image.js';
import type { WeightPrecision } from '../../src/nn/weights.js';
import { PickedModelFiles } from '../../src/web/hub.js';
import type { ModelFiles } from '../../src/io/model-files.js';
import { bufferNeeds, largestNeed, limitViolations } from '../../src/web/limits.js';
import { FakeHub, type FakeFile } from '../support/hub-server.js';
import { FIXTURES, REPO_ROOT, runCli } from '../support/helpers.js';
import { DIFFSIM_DEFAULTS } from '../../src/diffsim/settings.js';

const CHROMIUM = process.env.DIFFSIM_CHROMIUM ?? '/usr/bin/chromium';
const SKIP = process.env.DIFFSIM_SKIP_BROWSER === '1';
const TINY = join(REPO_ROOT, 'weights', 'tiny');
const IMAGE_A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const IMAGE_B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const REL_TOL = 3e-5;
const MAP_TOL = 3e-5;
const GRID_TOL = 5e-5;
const PIXEL_TOL = 2;
/** WebGPU in headless Chromium without a GPU: SwiftShader's Vulkan through Dawn. */
const CHROMIUM_ARGS = ['--no-sandbox', '--headless=new', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader'];

const REPOS = {
  'tiny/sd15': { dir: 'sd15', commit: '1111111111111111111111111111111111111111' },
  'tiny/clip': { dir: 'clip', commit: '2222222222222222222222222222222222222222' },
  'tiny/dinov2': { dir: 'dinov2', commit: '3333333333333333333333333333333333333333' },
  'tiny/ip-adapter': { dir: 'ip-adapter', commit: '4444444444444444444444444444444444444444' },
} as const;

/** A tiny model folder as the page's picked files (what the Node side of the checks reads). */
function pickedFiles(dir: string): ModelFiles {
  const files = Object.entries(repoFiles(dir)).map(([path, f]) => ({ path, file: new Blob([new Uint8Array(f.content)]) }));
  return new PickedModelFiles(dir, files);
}

function repoFiles(dir: string): Record<string, FakeFile> {
  const out: Record<string, FakeFile> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(join(TINY, dir), p).split('\\').join('/')] = { content: readFileSync(p), lfs: name.endsWith('.safetensors') };
    }
  };
  walk(join(TINY, dir));
  return out;
}

interface DemoState {
  status: string;
  score?: number;
  settings?: Record<string, unknown>;
  plan?: { files: number; totalBytes: number; downloadBytes: number };
  loadMs?: number;
  scoreMs?: number;
  error?: string;
  progress: { status: string; file: string; cached?: boolean }[];
  limits?: { maxBufferSize: number; maxStorageBufferBindingSize: number; weights: WeightPrecision; largest?: { kind: string; tensor: string; bytes: number }; over?: { kind: string; tensor: string; bytes: number; limit: string; value: number } };
  map?: { mean: number; min: number; max: number; grid: number[]; gridWidth: number; gridHeight: number; module: string; halves: number };
  mapNote?: string;
  mapMs?: number;
}

type Page = import('playwright-core').Page;

/** Opens the page, picks the metric and the images, clicks #score (or #load) and
 *  waits for the outcome. */
async function runPage(page: Page, url: string, metric: MetricName, button: 'score' | 'load' = 'score'): Promise<DemoState> {
  await page.goto(url);
  await page.selectOption('#metric', metric);
  await page.setInputFiles('#images', [IMAGE_A, IMAGE_B]);
  await page.click(`#${button}`);
  const ends = button === 'score' ? ['done', 'error'] : ['loaded', 'error'];
  await page.waitForFunction((e) => e.includes((window as unknown as { diffsimDemo: { status: string } }).diffsimDemo.status), ends, { timeout: 480_000, polling: 250 });
  return page.evaluate(() => (window as unknown as { diffsimDemo: DemoState }).diffsimDemo);
}

/** The page's map against Node's: the same grid; its mean within MAP_TOL, every grid value (min
 *  and max among them) within GRID_TOL. Returns the largest differences. */
function sameMap(page: DemoState['map'], node: AgreementMap, label: string): { mean: number; grid: number } {
  assert.ok(page, `${label}: the page shows an agreement map`);
  assert.is(page!.module, node.module, `${label}: module`);
  assert.is(page!.halves, node.halves, `${label}: halves averaged`);
  assert.equal([page!.gridWidth, page!.gridHeight], [node.gridWidth, node.gridHeight], `${label}: grid`);
  let grid = 0;
  for (let i = 0; i < node.grid.length; i++) grid = Math.max(grid, Math.abs(page!.grid[i]! - node.grid[i]!));
  for (const k of ['min', 'max'] as const) grid = Math.max(grid, Math.abs(page![k] - node[k]));
  const mean = Math.abs(page!.mean - node.mean);
  const values = `page mean ${page!.mean} min ${page!.min} max ${page!.max}; Node ${node.mean} ${node.min} ${node.max}`;
  assert.ok(mean <= MAP_TOL, `${label}: the map's mean differs from Node's by ${mean.toExponential(2)} > ${MAP_TOL} (${values})`);
  assert.ok(grid <= GRID_TOL, `${label}: a grid value differs from Node's by ${grid.toExponential(2)} > ${GRID_TOL} (${values})`);
  return { mean, grid };
}

function close(actual: number, expected: number, label: string): void {
  const rel = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-12);
  assert.ok(rel <= REL_TOL, `${label}: browser ${actual} vs Node ${expected} (relative difference ${rel.toExponential(2)} > ${REL_TOL})`);
}

test('the demo page scores two images in Chromium as Node does, and a reload downloads nothing again', async () => {
  if (!existsSync(CHROMIUM)) {
    if (SKIP) {
      console.log(`browser suite skipped (DIFFSIM_SKIP_BROWSER=1; no ${CHROMIUM})`);
      return;
    }
    assert.unreachable(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), point DIFFSIM_CHROMIUM at a Chromium binary, or set DIFFSIM_SKIP_BROWSER=1 to skip the browser tests`);
  }
  const { chromium } = await import('playwright-core');
  const demo = (await import(join(REPO_ROOT, 'scripts', 'demo.mjs'))) as { buildDemo(out?: string): Promise<string>; serveStatic(dir: string, port?: number): Promise<{ url: string; close(): Promise<void> }> };
  const site = await demo.serveStatic(await demo.buildDemo());
  const hub = new FakeHub(Object.fromEntries(Object.entries(REPOS).map(([id, r]) => [id, { commit: r.commit, files: repoFiles(r.dir) }])));
  hub.cors = true;
  await hub.start();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 1300 } });
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    const url = `${site.url}?endpoint=${encodeURIComponent(hub.url)}&sd=tiny/sd15&ipAdapter=tiny/ip-adapter&clip=tiny/clip&dino=tiny/dinov2&diffsim=${encodeURIComponent(JSON.stringify({ roundToF16: false }))}`;
    const picked = { sd: pickedFiles('sd15'), ipAdapter: pickedFiles('ip-adapter'), clip: pickedFiles('clip'), dino: pickedFiles('dinov2') };

    // DiffSim-S, an AAS metric and a feature baseline (CLIP AAS runs the code paths of both), and
    // DiffSim-C on the IP-Adapter (one score and its map).
    const cases: { metric: MetricName; node: Parameters<typeof createMetric>[1]; repo: keyof typeof REPOS }[] = [
      { metric: 'diffsim', node: { model: join(TINY, 'sd15'), diffsim: { roundToF16: false } }, repo: 'tiny/sd15' },
      { metric: 'dino-aas', node: { dinoModel: join(TINY, 'dinov2') }, repo: 'tiny/dinov2' },
      { metric: 'clip', node: { clipModel: join(TINY, 'clip') }, repo: 'tiny/clip' },
      { metric: 'diffsim-c', node: { model: join(TINY, 'sd15'), ipAdapter: join(TINY, 'ip-adapter'), diffsim: { roundToF16: false } }, repo: 'tiny/sd15' },
    ];
    const aas = new Set<MetricName>(['diffsim', 'diffsim-c', 'clip-aas', 'dino-aas']);
    for (const c of cases) {
      const nodeMetric = await createMetric(c.metric, c.node);
      let expected: number;
      let nodeMap: AgreementMap | undefined;
      try {
        expected = await nodeMetric.score(IMAGE_A, IMAGE_B);
        if (aas.has(c.metric)) nodeMap = await agreementMap(nodeMetric, IMAGE_A, IMAGE_B);
      } finally {
        await nodeMetric.close();
      }
      hub.clearLog();
      const first = await runPage(page, url, c.metric);
      assert.is(first.error, undefined, `${c.metric}: the page failed: ${first.error}\n${logs.join('\n')}`);
      close(first.score!, expected, `${c.metric} score`);
      if (c.metric === 'diffsim') {
        // One set of defaults: the page (no preset; roundToF16 false is the default too), the Node
        // library and the command line use the same settings. The command runs on lavapipe as the
        // Node library does (bit for bit); the page on SwiftShader (within REL_TOL, see above).
        assert.equal([first.settings!.preset, first.settings!.step, first.settings!.t], [null, DIFFSIM_DEFAULTS.step, 401], 'diffsim: the page runs the defaults');
        const plain = await createMetric('diffsim', { model: join(TINY, 'sd15') });
        try {
          assert.is(await plain.score(IMAGE_A, IMAGE_B), expected, 'diffsim: createMetric without options');
        } finally {
          await plain.close();
        }
        const r = runCli(['score', IMAGE_A, IMAGE_B, '--model', join(TINY, 'sd15'), '--json'], { timeout: 300_000 });
        assert.is(r.code, 0, r.stderr);
        const cli = JSON.parse(r.stdout.trim().split('\n').pop()!) as { score: number; step: number };
        assert.is(cli.score, expected, 'diffsim: `diffsim score` without options = the Node library');
        close(first.score!, cli.score, 'diffsim: the page vs `diffsim score`');
      }
      let mapNote = '';
      if (nodeMap) {
        const d = sameMap(first.map, nodeMap, c.metric);
        mapNote = `; map ${first.map!.gridWidth}×${first.map!.gridHeight} mean ${first.map!.mean.toFixed(6)} min ${first.map!.min.toFixed(6)} max ${first.map!.max.toFixed(6)} (vs Node: mean ${d.mean.toExponential(1)}, grid values up to ${d.grid.toExponential(1)}), ${first.mapMs!.toFixed(0)} ms`;
      } else {
        assert.is(first.map, undefined, `${c.metric}: no map`);
        assert.match(first.mapNote ?? '', new RegExp(`^${c.metric} has no attention map`), `${c.metric}: the page says there is no map`);
        assert.match(await page.textContent('#map-note') ?? '', /has no attention map/);
      }
      // The pre-download check found the largest buffer Node's check finds for the same files.
      const need = largestNeed(await bufferNeeds(c.metric, picked, { weights: first.limits!.weights, diffsim: { roundToF16: false }, images: [await loadImage(IMAGE_A), await loadImage(IMAGE_B)] }))!;
      assert.equal([first.limits!.largest!.tensor, first.limits!.largest!.bytes], [need.tensor, need.bytes], `${c.metric}: the largest buffer`);
      const models = first.settings!.models as Record<string, { spec: string; commit?: string }>;
      const role = Object.keys(models)[0]!;
      assert.is(models[role]!.spec, c.repo);
      assert.is(models[role]!.commit, REPOS[c.repo].commit, `${c.metric}: the settings name the commit`);
      // DiffSim-C comes after DiffSim-S: SD1.5 is in Cache Storage, only the IP-Adapter is new.
      const newRepo: keyof typeof REPOS = c.metric === 'diffsim-c' ? 'tiny/ip-adapter' : c.repo;
      if (c.metric === 'diffsim-c') assert.equal([models.ipAdapter?.spec, models.ipAdapter?.commit], [newRepo, REPOS[newRepo].commit], 'diffsim-c: the settings name the IP-Adapter and its commit');
      const files = Object.keys(hub.repos[newRepo]!.files);
      const planned = c.metric === 'diffsim-c' ? first.plan!.downloadBytes > 0 && first.plan!.downloadBytes < first.plan!.totalBytes : first.plan!.downloadBytes === first.plan!.totalBytes;
      assert.ok(first.plan && first.plan.files > 0 && planned, `${c.metric}: the page announced the download before starting (${JSON.stringify(first.plan)})`);
      // Whole-file downloads (the headers the check reads are Range requests), each file once.
      const downloads = hub.requestsFor('/resolve/').filter((r) => r.method === 'GET' && !r.headers.range);
      assert.ok(downloads.length > 0 && downloads.length <= files.length, `${c.metric}: ${downloads.length} file downloads (${files.length} files in the repo)`);
      assert.ok(downloads.every((r) => decodeURIComponent(r.url).startsWith(`/${newRepo}/`)), `${c.metric}: downloads only from ${newRepo}: ${downloads.map((r) => r.url).join(', ')}`);
      assert.is(new Set(downloads.map((r) => r.url)).size, downloads.length, `${c.metric}: no file downloaded twice`);
      console.log(`  ${c.metric}: load ${first.loadMs!.toFixed(0)} ms (${(first.plan!.totalBytes / 1e6).toFixed(2)} MB, ${first.plan!.files} files), score ${first.scoreMs!.toFixed(0)} ms; browser ${first.score} vs Node ${expected} (relative ${(Math.abs(first.score! - expected) / Math.abs(expected)).toExponential(1)})${mapNote}`);

      if (c.metric === 'diffsim') {
        mkdirSync(join(REPO_ROOT, 'docs'), { recursive: true });
        const shot = join(REPO_ROOT, 'docs', 'demo.png');
        await page.screenshot({ path: shot, fullPage: true });
        // The screenshot shows the map: the canvas's pixels are Node's picture, magnified.
        const pic = agreementPixels(nodeMap!, await loadImage(IMAGE_A), await loadImage(IMAGE_B));
        const box = (await page.locator('#map').boundingBox())!;
        const k = Number(await page.getAttribute('#map', 'data-scale'));
        assert.ok(k >= 1 && Math.abs(box.width - (await page.evaluate(() => (document.getElementById('map') as HTMLCanvasElement).width))) < 0.5, `the map canvas is drawn 1:1 (scale ${k}, box ${JSON.stringify(box)})`);
        const img = decodeImage(new Uint8Array(readFileSync(shot)), shot);
        const [x0, y0] = [Math.round(box.x), Math.round(box.y)];
        let worst = 0;
        let sum = 0;
        for (let y = 0; y < pic.height * k; y++) {
          for (let x = 0; x < pic.width * k; x++) {
            const s = ((y0 + y) * img.width + x0 + x) * 3;
            const p = (Math.floor(y / k) * pic.width + Math.floor(x / k)) * 4;
            for (let ch = 0; ch < 3; ch++) {
              const d = Math.abs(img.data[s + ch]! - pic.data[p + ch]!);
              worst = Math.max(worst, d);
              sum += d;
            }
          }
        }
        const meanDiff = sum / (pic.width * k * pic.height * k * 3);
        assert.ok(worst <= PIXEL_TOL && meanDiff < 0.05, `docs/demo.png: the map's pixels differ from Node's picture by up to ${worst} (mean ${meanDiff.toFixed(3)})`);
        console.log(`  docs/demo.png: the map canvas (${pic.width}×${pic.height} magnified ${k}×) matches Node's picture (largest channel difference ${worst}, mean ${meanDiff.toFixed(4)})`);
      }

      // A reload loads the models again, every file from Cache Storage.
      hub.clearLog();
      const again = await runPage(page, url, c.metric, 'load');
      assert.is(again.error, undefined, `${c.metric} after reload: ${again.error}`);
      assert.equal(hub.requestsFor('/resolve/').length + hub.requestsFor('/cdn/').length, 0, `${c.metric}: a reload downloads nothing again (requests: ${hub.requests.map((r) => `${r.method} ${r.url}`).join(', ')})`);
      assert.is(again.plan!.downloadBytes, 0, `${c.metric}: the page says nothing is left to download`);
      const done = again.progress.filter((p) => p.status === 'done');
      assert.ok(done.length > 0 && done.every((p) => p.cached), `${c.metric}: every file came from the cache`);
      console.log(`  ${c.metric} after reload: load ${again.loadMs!.toFixed(0)} ms from Cache Storage`);
    }

    // An adapter too small (the check's limits lowered by ?bufferLimit, in a fresh browser context:
    // an empty Cache Storage): the page names the buffer and downloads no weights.
    const LIMIT = 100_000;
    const context = await browser.newContext();
    try {
      const small = await context.newPage();
      small.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      hub.clearLog();
      const refused = await runPage(small, `${url}&bufferLimit=${LIMIT}`, 'diffsim', 'load');
      const over = limitViolations(await bufferNeeds('diffsim', picked, { weights: refused.limits!.weights, diffsim: { roundToF16: false }, images: [await loadImage(IMAGE_A), await loadImage(IMAGE_B)] }), { maxBufferSize: LIMIT, maxStorageBufferBindingSize: LIMIT })[0]!;
      assert.is(refused.status, 'error', 'the load is refused');
      assert.ok(refused.error?.startsWith('AdapterLimitError: diffsim does not fit this GPU: '), `the error: ${refused.error}`);
      assert.ok(refused.error!.includes(`"${over.need.tensor}" [${over.need.shape.join(', ')}]`) && refused.error!.includes(`(${over.need.bytes} bytes)`) && refused.error!.includes(`${over.limit} of 100.0 kB (${LIMIT} bytes)`), `the error names the buffer (${over.need.tensor}, ${over.need.bytes} bytes) and the limit: ${refused.error}`);
      assert.equal([refused.limits!.over!.tensor, refused.limits!.over!.bytes, refused.limits!.over!.value], [over.need.tensor, over.need.bytes, LIMIT]);
      assert.match((await small.textContent('#error')) ?? '', /does not fit this GPU/, 'the page shows the error');
      // Configs and safetensors headers were read; no weight file was fetched whole or cached.
      // (LFS files, the weights, are redirected to /cdn/.)
      const weightGets = hub.requests.filter((r) => r.method === 'GET' && (r.url.startsWith('/cdn/') || /\.safetensors$/.test(decodeURIComponent(r.url).split('?')[0]!)));
      assert.ok(weightGets.some((r) => r.url.startsWith('/cdn/')) && weightGets.every((r) => /^bytes=\d+-\d+$/.test(String(r.headers.range))), `only Range reads of the weights: ${weightGets.map((r) => `${r.url} ${r.headers.range ?? 'whole'}`).join(', ')}`);
      const ranged = weightGets.filter((r) => r.url.startsWith('/cdn/')).reduce((n, r) => { const [a, b] = String(r.headers.range).slice(6).split('-').map(Number); return n + b! - a! + 1; }, 0);
      // Exactly each file's 8-byte length and its JSON header, once.
      const headerBytes = ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors'].reduce((n, f) => n + 8 + Number(readFileSync(join(TINY, 'sd15', f)).readBigUInt64LE(0)), 0);
      assert.is(ranged, headerBytes, `the headers only: ${ranged} bytes read by Range, the headers are ${headerBytes}`);
      assert.ok(!refused.progress.some((p) => p.file.endsWith('.safetensors')), 'no weight download began');
      const cached = await small.evaluate(async () => (await (await caches.open('diffsim-hub')).keys()).map((r) => r.url));
      assert.ok(cached.length > 0 && !cached.some((u) => u.endsWith('.safetensors')), `Cache Storage holds configs only: ${cached.join(', ')}`);
      console.log(`  bufferLimit ${LIMIT}: refused before downloading (${weightGets.length} Range requests, ${ranged} bytes of headers read): ${refused.error}`);
    } finally {
      await context.close();
    }
  } finally {
    await browser.close();
    await hub.stop();
    await site.close();
  }
});

test.run();

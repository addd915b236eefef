// The demo page end to end in headless Chromium (Debian's /usr/bin/chromium through playwright-core;
// WebGPU on SwiftShader): the page is built with esbuild and served on 127.0.0.1, the tiny models
// come from a fake hub in the hub's layout (CORS as the hub answers other origins), two fixture
// images are scored and the score must equal the Node library's for the same inputs and settings.
// A reload must read every model file back from Cache Storage: no second download. The DiffSim
// page is saved as docs/demo.png.
//
// Tolerance: SwiftShader and lavapipe both compute in f32 but order reductions (matmul tiles,
// softmax and norm sums, subgroup operations) differently, so results differ in the last bits;
// over the few hundred accumulations of a tiny model's pass that stays below 1e-5 relative to the
// score (cosines near 1). The f16 rounding of DiffSim's score is turned off for the comparison
// (?diffsim={"roundToF16":false}), since one f32 ulp may flip an f16 rounding.
//
// Without /usr/bin/chromium (or $DIFFSIM_CHROMIUM) the suite fails, saying how to install it,
// unless DIFFSIM_SKIP_BROWSER=1.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createMetric, type MetricName } from '../src/diffsim/metric.js';
import { FakeHub, type FakeFile } from './hub-server.js';
import { FIXTURES, REPO_ROOT } from './helpers.js';

const CHROMIUM = process.env.DIFFSIM_CHROMIUM ?? '/usr/bin/chromium';
const SKIP = process.env.DIFFSIM_SKIP_BROWSER === '1';
const TINY = join(REPO_ROOT, 'weights', 'tiny');
const IMAGE_A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const IMAGE_B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const REL_TOL = 1e-5;
/** WebGPU in headless Chromium without a GPU: SwiftShader's Vulkan through Dawn. */
const CHROMIUM_ARGS = ['--no-sandbox', '--headless=new', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader'];

const REPOS = {
  'tiny/sd15': { dir: 'sd15', commit: '1111111111111111111111111111111111111111' },
  'tiny/clip': { dir: 'clip', commit: '2222222222222222222222222222222222222222' },
  'tiny/dinov2': { dir: 'dinov2', commit: '3333333333333333333333333333333333333333' },
} as const;

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
  await page.waitForFunction((e) => e.includes((window as unknown as { diffsimDemo: { status: string } }).diffsimDemo.status), ends, { timeout: 300_000, polling: 250 });
  return page.evaluate(() => (window as unknown as { diffsimDemo: DemoState }).diffsimDemo);
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
    const url = `${site.url}?endpoint=${encodeURIComponent(hub.url)}&sd=tiny/sd15&clip=tiny/clip&dino=tiny/dinov2&diffsim=${encodeURIComponent(JSON.stringify({ roundToF16: false }))}`;

    // DiffSim-S, an AAS metric and a feature baseline; CLIP AAS runs the code paths of both.
    const cases: { metric: MetricName; node: Parameters<typeof createMetric>[1]; repo: keyof typeof REPOS }[] = [
      { metric: 'diffsim', node: { model: join(TINY, 'sd15'), diffsim: { roundToF16: false } }, repo: 'tiny/sd15' },
      { metric: 'dino-aas', node: { dinoModel: join(TINY, 'dinov2') }, repo: 'tiny/dinov2' },
      { metric: 'clip', node: { clipModel: join(TINY, 'clip') }, repo: 'tiny/clip' },
    ];
    for (const c of cases) {
      const nodeMetric = await createMetric(c.metric, c.node);
      let expected: number;
      try {
        expected = await nodeMetric.score(IMAGE_A, IMAGE_B);
      } finally {
        await nodeMetric.close();
      }
      hub.clearLog();
      const first = await runPage(page, url, c.metric);
      assert.is(first.error, undefined, `${c.metric}: the page failed: ${first.error}\n${logs.join('\n')}`);
      close(first.score!, expected, `${c.metric} score`);
      const models = first.settings!.models as Record<string, { spec: string; commit?: string }>;
      const role = Object.keys(models)[0]!;
      assert.is(models[role]!.spec, c.repo);
      assert.is(models[role]!.commit, REPOS[c.repo].commit, `${c.metric}: the settings name the commit`);
      const files = Object.keys(hub.repos[c.repo]!.files);
      assert.ok(first.plan && first.plan.files > 0 && first.plan.downloadBytes === first.plan.totalBytes, `${c.metric}: the page announced the download before starting (${JSON.stringify(first.plan)})`);
      const downloads = hub.requestsFor('/resolve/').filter((r) => r.method === 'GET');
      assert.ok(downloads.length > 0 && downloads.length <= files.length, `${c.metric}: ${downloads.length} file downloads (${files.length} files in the repo)`);
      console.log(`  ${c.metric}: load ${first.loadMs!.toFixed(0)} ms (${(first.plan!.totalBytes / 1e6).toFixed(2)} MB, ${first.plan!.files} files), score ${first.scoreMs!.toFixed(0)} ms; browser ${first.score} vs Node ${expected}`);

      if (c.metric === 'diffsim') {
        mkdirSync(join(REPO_ROOT, 'docs'), { recursive: true });
        await page.screenshot({ path: join(REPO_ROOT, 'docs', 'demo.png'), fullPage: true });
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
  } finally {
    await browser.close();
    await hub.stop();
    await site.close();
  }
});

test.run();

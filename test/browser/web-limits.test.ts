// Slow suite: about 29 s of CPU on lavapipe (125 s wall on a shared 2-core machine).
// The browser page's pre-download check (web/limits.ts) on the tiny models: the buffers it
// predicts from configs and safetensors headers against the tensors the engine really creates
// (every Runtime.empty recorded while the metric loads, scores a pair and draws its map), the
// limit verdicts and their message, and the headers read from a hub by Range requests only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Runtime } from '../../src/gpu/runtime.js';
import { createMetric, type MetricName } from '../../src/diffsim/metric.js';
import type { DiffSimSettings } from '../../src/diffsim/settings.js';
import { agreementMap } from '../../src/apps/map.js';
import type { WeightPrecision } from '../../src/nn/weights.js';
import { HubModelFiles, PickedModelFiles, WebHubError } from '../../src/web/hub.js';
import type { ModelFiles } from '../../src/io/model-files.js';
import { AdapterLimitError, bufferNeeds, checkAdapterLimits, largestNeed, limitViolations, type BufferNeed } from '../../src/web/limits.js';
import { FakeHub, type FakeFile } from '../support/hub-server.js';
import { FIXTURES, REPO_ROOT, rejects, runtime } from '../support/helpers.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const SIZES = [{ width: 64, height: 64 }];

function walk(dir: string): { path: string; bytes: Uint8Array<ArrayBuffer> }[] {
  const out: { path: string; bytes: Uint8Array<ArrayBuffer> }[] = [];
  const go = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) go(p);
      else out.push({ path: relative(dir, p).split('\\').join('/'), bytes: new Uint8Array(readFileSync(p)) });
    }
  };
  go(dir);
  return out;
}

function picked(dir: string): ModelFiles {
  return new PickedModelFiles(dir, walk(join(TINY, dir)).map((f) => ({ path: f.path, file: new Blob([f.bytes]) })));
}

const FILES = { sd: picked('sd15'), ipAdapter: picked('ip-adapter'), clip: picked('clip'), dino: picked('dinov2') };

/** Every tensor the runtime creates while `fn` runs: shape, dtype, bytes. */
async function recording<T>(rt: Runtime, fn: () => Promise<T>): Promise<{ result: T; made: { shape: number[]; dtype: string; bytes: number }[] }> {
  const made: { shape: number[]; dtype: string; bytes: number }[] = [];
  const empty = rt.empty;
  rt.empty = (shape, dtype = 'f32') => {
    made.push({ shape: [...shape], dtype, bytes: shape.reduce((a, b) => a * b, 1) * (dtype === 'f16' ? 2 : 4) });
    return empty.call(rt, shape, dtype);
  };
  try {
    return { result: await fn(), made };
  } finally {
    rt.empty = empty;
  }
}

const largest = (xs: { bytes: number }[]) => xs.reduce((m, x) => Math.max(m, x.bytes), 0);

/** The metric loaded and run (score and map) on the tiny models, recorded; the predicted needs. */
async function measure(name: MetricName, weights: WeightPrecision, diffsim: Partial<DiffSimSettings> = {}) {
  const rt = await runtime();
  const needs = await bufferNeeds(name, FILES, { weights, diffsim, images: SIZES });
  const load = await recording(rt, () => createMetric(name, { runtime: rt, model: join(TINY, 'sd15'), ipAdapter: join(TINY, 'ip-adapter'), clipModel: join(TINY, 'clip'), dinoModel: join(TINY, 'dinov2'), weights, diffsim }));
  const metric = load.result;
  try {
    const run = await recording(rt, async () => {
      await metric.score(A, B);
      if (['diffsim', 'diffsim-c', 'clip-aas', 'dino-aas'].includes(name)) await agreementMap(metric, A, B);
    });
    return { needs, loaded: load.made, ran: run.made };
  } finally {
    await metric.close();
  }
}

const show = (n: BufferNeed | undefined) => (n ? `${n.kind} ${n.tensor} [${n.shape}] ${n.dtype} ${n.bytes}` : 'none');

test('the predicted largest weight and activation are the largest tensors the engine creates (every metric, f32 and f16 weights, two image sizes)', async () => {
  const cases: [MetricName, WeightPrecision, Partial<DiffSimSettings>][] = [
    ['diffsim', 'f32', {}],
    ['diffsim', 'auto', { imageSize: 128 }],
    ['diffsim-c', 'auto', {}],
    ['clip-aas', 'f32', {}],
    ['dino-aas', 'auto', {}],
    ['clip', 'f32', {}],
  ];
  for (const [name, weights, diffsim] of cases) {
    const label = `${name} (${weights}${diffsim.imageSize ? `, ${diffsim.imageSize} px` : ''})`;
    const { needs, loaded, ran } = await measure(name, weights, diffsim);
    const w = largestNeed(needs.filter((n) => n.kind === 'weight'));
    const a = largestNeed(needs.filter((n) => n.kind === 'activation'));
    assert.is(w?.bytes, largest(loaded), `${label}: largest weight ${show(w)} vs the load's largest tensor ${largest(loaded)}`);
    assert.is(a?.bytes, largest(ran), `${label}: largest activation ${show(a)} vs the pass's largest tensor ${largest(ran)}`);
    // The tensor itself, not only its size: a recorded tensor has the predicted shape and dtype.
    for (const n of [w!, a!]) assert.ok([...loaded, ...ran].some((m) => m.bytes === n.bytes && m.dtype === n.dtype && m.shape.join() === n.shape.join()), `${label}: ${show(n)} is made as predicted`);
  }
});

test('the U-Net part: the feed-forward projections and feature maps are predicted at each level, both CFG halves', async () => {
  const { needs, ran } = await measure('diffsim', 'f32');
  const ff = needs.find((n) => n.tensor === 'output of down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj');
  assert.equal(ff?.shape, [2, 64, 256], 'GEGLU projection at the 8×8 latent: [2, 64, 8·32]');
  const deep = needs.find((n) => n.tensor === 'input of down_blocks.2.resnets.0.conv1');
  assert.equal(deep?.shape, [2, 32, 2, 2], 'the third level runs at 2×2');
  for (const n of [ff!, deep!]) assert.ok(ran.some((m) => m.shape.join() === n.shape.join()), `${n.tensor} [${n.shape}] is made`);
  // Every tensor the pass makes fits under the largest prediction.
  assert.ok(largest(ran) <= largestNeed(needs)!.bytes);
});

test('limits: a need over maxBufferSize or (bound) over maxStorageBufferBindingSize is refused, largest first; equal to the limit fits', async () => {
  const need = (tensor: string, bytes: number, bound = true): BufferNeed => ({ kind: 'weight', tensor, where: 'x', shape: [bytes / 4], dtype: 'f32', bytes, bound });
  const needs = [need('a', 400), need('table', 800, false), need('b', 1200), need('c', 200)];
  assert.equal(limitViolations(needs, { maxBufferSize: 1200, maxStorageBufferBindingSize: 400 }).map((v) => [v.need.tensor, v.limit]), [['b', 'maxStorageBufferBindingSize']], 'the token table is split, so only maxBufferSize applies to it');
  assert.equal(limitViolations(needs, { maxBufferSize: 1000, maxStorageBufferBindingSize: 300 }).map((v) => [v.need.tensor, v.limit]), [['b', 'maxBufferSize'], ['a', 'maxStorageBufferBindingSize']]);
  assert.equal(limitViolations(needs, { maxBufferSize: 1200, maxStorageBufferBindingSize: 1200 }), []);

  const all = await bufferNeeds('dino-aas', FILES, { images: SIZES });
  const top = largestNeed(all)!;
  assert.is(top.tensor, 'input image');
  const ok = await checkAdapterLimits('dino-aas', FILES, { maxBufferSize: top.bytes, maxStorageBufferBindingSize: top.bytes }, { images: SIZES });
  assert.is(ok.largest.bytes, top.bytes, 'a buffer of exactly the limit fits');
  try {
    await checkAdapterLimits('dino-aas', FILES, { maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 100_000 }, { images: SIZES });
    assert.unreachable('refused');
  } catch (e) {
    assert.instance(e, AdapterLimitError);
    assert.is((e as Error).message, 'dino-aas does not fit this GPU: the activation "input image" [1, 3, 224, 224] f32 (DINOv2, 224×224 px), 602.1 kB (602112 bytes) is larger than the adapter\'s maxStorageBufferBindingSize of 100.0 kB (100000 bytes) (4 more buffers over the limits)');
  }
  await rejects(() => bufferNeeds('diffsim-c', { sd: FILES.sd }), /no model files given for the ipAdapter model/, 'diffsim-c needs the IP-Adapter');
});

test('hub files: the check reads configs whole and safetensors headers by Range (also from a server that ignores Range), with the same result as local files', async () => {
  const repo = (dir: string, commit: string) => ({ commit, files: Object.fromEntries(walk(join(TINY, dir)).map((f) => [f.path, { content: f.bytes, lfs: f.path.endsWith('.safetensors') } satisfies FakeFile])) });
  const hub = new FakeHub({ 'tiny/sd15': repo('sd15', '1'.repeat(40)), 'tiny/ip-adapter': repo('ip-adapter', '4'.repeat(40)) });
  await hub.start();
  try {
    for (const ignoreRange of [false, true]) {
      hub.ignoreRange = ignoreRange;
      const o = { endpoint: hub.url, cacheName: null };
      const files = {
        sd: await HubModelFiles.open('tiny/sd15', { components: ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler', 'feature_extractor'] }, o),
        ipAdapter: await HubModelFiles.open('tiny/ip-adapter', { include: ['models/ip-adapter-plus_sd15.safetensors'], components: ['models/image_encoder'] }, o),
      };
      hub.clearLog();
      const fromHub = await bufferNeeds('diffsim-c', files, { weights: 'auto' });
      const local = await bufferNeeds('diffsim-c', FILES, { weights: 'auto' });
      assert.equal(fromHub.map((n) => [n.tensor, n.shape, n.dtype]), local.map((n) => [n.tensor, n.shape, n.dtype]), `ignoreRange ${ignoreRange}: same needs`);
      const weightGets = hub.requests.filter((r) => r.method === 'GET' && r.url.split('?')[0]!.endsWith('.safetensors'));
      assert.ok(weightGets.length >= 8 && weightGets.every((r) => /^bytes=\d+-\d+$/.test(String(r.headers.range))), `Range reads only: ${weightGets.map((r) => `${r.url} ${r.headers.range}`).join(', ')}`);
    }
  } finally {
    await hub.stop();
  }
});

test('browser hub: sibling names from the revision API are checked before they become resolve URLs or Cache Storage keys', async () => {
  const sha = 'c'.repeat(40);
  for (const [bad, why] of [
    ['../../x/PWNED.json', /it has a '\.\.' segment/],
    ['/abs.json', /it is absolute/],
    ['unet\\..\\x.json', /backslash/],
    ['C:x.json', /drive letter/],
    ['a//config.json', /empty or '\.' segments/],
    [7, /it is not a string/],
  ] as const) {
    const urls: string[] = [];
    const fakeFetch = (async (input: RequestInfo | URL) => {
      urls.push(String(input));
      return new Response(JSON.stringify({ sha, siblings: [{ rfilename: 'config.json', size: 2 }, { rfilename: bad, size: 2 }] }), { headers: { 'content-type': 'application/json' } });
    }) as typeof fetch;
    try {
      await HubModelFiles.open('org/name', {}, { endpoint: 'https://hub.example', cacheName: null, fetch: fakeFetch });
      assert.unreachable(String(bad));
    } catch (e) {
      assert.instance(e, WebHubError, String(e));
      assert.match((e as Error).message, /^https:\/\/hub\.example\/api\/models\/org\/name\/revision\/main\?blobs=true: the "siblings" entry .* is not a relative file path inside the repository \(/);
      assert.match((e as Error).message, why);
    }
    assert.equal(urls, ['https://hub.example/api/models/org/name/revision/main?blobs=true'], 'nothing requested after the listing');
  }
});

test.run();

// One stream of load events: the Node hub cache and the browser hub (HubModelFiles, here on Node's
// fetch) emit the same statuses for the same file; the library prints nothing without a callback;
// the CLI shows loading on stderr only on a terminal or with --progress.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, FIXTURES, REPO_ROOT, runtime, nonEmptyLines } from '../support/helpers.js';
import { FakeHub, gitBlobSha1, text, type FakeFile } from '../support/hub-server.js';
import { createMetric } from '../../src/diffsim/metric.js';
import { resolveModel } from '../../src/hub/resolve.js';
import type { LoadEvent } from '../../src/io/events.js';
import { HubModelFiles } from '../../src/web/hub.js';

const REPO = 'tiny/dinov2';
const COMMIT = gitBlobSha1(text('tiny dinov2'));
const DIR = join(REPO_ROOT, 'weights', 'tiny', 'dinov2');
const FILES: Record<string, FakeFile> = Object.fromEntries(readdirSync(DIR).map((f) => [f, { content: new Uint8Array(readFileSync(join(DIR, f))), lfs: f.endsWith('.safetensors') }]));
const WEIGHTS = 'model.safetensors';
const SIZE = FILES[WEIGHTS]!.content.byteLength;
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');

const hub = new FakeHub({ [REPO]: { commit: COMMIT, files: FILES } });
const tmp = mkdtempSync(join(tmpdir(), 'diffsim-events-'));
let n = 0;
const freshCache = (): string => join(tmp, `cache-${n++}`);

test.before(async () => {
  await hub.start();
});

test.after(async () => {
  await hub.stop();
});

/** The statuses of one file's events, a run of `progress` as one. */
function statuses(events: readonly LoadEvent[], file: string): string[] {
  const out: string[] = [];
  for (const e of events) if ('file' in e && e.file === file && e.status !== 'weights' && out.at(-1) !== e.status) out.push(e.status);
  return out;
}

/** Everything written to this process's stdout and stderr while `fn` runs. */
async function captured(fn: () => Promise<unknown>): Promise<string> {
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  let wrote = '';
  const grab = ((chunk: string | Uint8Array) => {
    wrote += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stdout.write = grab;
  process.stderr.write = grab;
  try {
    await fn();
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return wrote;
}

test('the same statuses for the same file from createMetric (Node hub cache) and HubModelFiles (browser hub): initiate, download, progress…, done', async () => {
  const rt = await runtime();
  const node: LoadEvent[] = [];
  const metric = await createMetric('dino', { dinoModel: REPO, hub: { env: {}, cacheDir: freshCache(), endpoint: hub.url }, runtime: rt, onProgress: (e) => node.push(e) });
  await metric.close();
  const web: LoadEvent[] = [];
  const files = await HubModelFiles.open(REPO, { components: [''] }, { endpoint: hub.url, cacheName: null, onProgress: (e) => web.push(e) });
  await files.blob(WEIGHTS);

  assert.equal(statuses(node, WEIGHTS), ['initiate', 'download', 'progress', 'done'], 'Node');
  assert.equal(statuses(web, WEIGHTS), statuses(node, WEIGHTS), 'the browser hub as Node');
  for (const [label, events] of [['Node', node], ['browser', web]] as const) {
    const mine = events.filter((e) => 'file' in e && e.file === WEIGHTS && e.status !== 'weights');
    assert.ok(mine.every((e) => e.name === REPO), `${label}: named by the repo id`);
    const progress = mine.flatMap((e) => (e.status === 'progress' ? [e] : []));
    assert.ok(progress.every((e, i) => e.total === SIZE && (i === 0 || e.loaded >= progress[i - 1]!.loaded)), `${label}: bytes rise`);
    assert.is(progress.at(-1)!.loaded, SIZE, `${label}: to the size`);
    assert.is(progress.at(-1)!.progress, 100, `${label}: percent`);
    assert.ok(progress.every((e) => e.rate !== undefined && e.elapsed !== undefined), `${label}: rate and elapsed time`);
    const done = mine.at(-1)!;
    assert.ok(done.status === 'done' && done.total === SIZE && !done.cached, `${label}: done, the size, not cached`);
  }
  // The metric layer adds the role to the hub's events, names the weights as the download did, and
  // says when the model is ready.
  assert.ok(node.every((e) => e.role === 'dino'), 'every event of the metric has the role');
  const weights = node.flatMap((e) => (e.status === 'weights' ? [e] : []));
  assert.ok(weights.length > 1 && weights.every((e) => e.name === REPO && e.file === WEIGHTS), 'weights named as the download');
  const ready = node.at(-1)!;
  assert.ok(ready.status === 'ready' && ready.name === REPO && ready.commit === COMMIT && ready.path?.endsWith(COMMIT), `ready: ${JSON.stringify(ready)}`);
  // From the cache: initiate, done (cached), in both.
  const again: LoadEvent[] = [];
  const second = await createMetric('dino', { dinoModel: `${REPO}@${COMMIT}`, hub: { env: {}, cacheDir: join(tmp, `cache-${n - 1}`), endpoint: hub.url }, runtime: rt, onProgress: (e) => again.push(e) });
  await second.close();
  assert.equal(statuses(again, WEIGHTS), ['initiate', 'done']);
  assert.ok(again.some((e) => e.status === 'done' && e.file === WEIGHTS && e.cached), 'cached');
});

test('the library writes nothing to stdout or stderr while it downloads and loads without a callback', async () => {
  const rt = await runtime();
  const wrote = await captured(async () => {
    await resolveModel(REPO, { env: {}, cacheDir: freshCache(), endpoint: hub.url });
    const metric = await createMetric('dino', { dinoModel: REPO, hub: { env: {}, cacheDir: freshCache(), endpoint: hub.url }, runtime: rt });
    await metric.close();
  });
  assert.is(wrote, '');
  assert.ok(hub.requestsFor('/cdn/').length >= 2, 'the weights were downloaded (twice)');
});

/** The built command, run without blocking this process (the fake hub answers it). */
function cli(args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill(), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: nonEmptyLines(stderr) });
    });
  });
}

test('the CLI: silent on stderr off a terminal; --progress prints one line per downloaded file and per loaded model', async () => {
  const env = (cache: string) => ({ HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '0', HF_TOKEN: '', HF_HOME: join(tmp, 'home') });
  const args = ['score', A, B, '--metric', 'dino', '--dino-model', REPO];
  const quiet = await cli(args, env(freshCache()));
  assert.is(quiet.code, 0, quiet.stderr);
  assert.match(quiet.stdout, /^\S+\n$/, 'the score alone on stdout');
  assert.is(quiet.stderr, '', 'nothing on stderr');

  const loud = await cli([...args, '--progress'], env(freshCache()));
  assert.is(loud.code, 0, loud.stderr);
  assert.is(loud.stdout, quiet.stdout, 'the same score');
  const lines = loud.stderr.split('\n');
  assert.ok(!loud.stderr.includes('\r') && !loud.stderr.includes('\x1b'), 'plain lines, nothing redrawn');
  assert.equal(lines.filter((l) => l.startsWith(`${REPO}: `)).map((l) => l.split(' ')[1]).sort(), Object.keys(FILES).sort(), 'one line per downloaded file');
  assert.ok(lines.some((l) => new RegExp(`^${REPO}: ${WEIGHTS} 237 kB in \\d+ s`).test(l)), loud.stderr);
  assert.ok(lines.at(-1)!.startsWith(`dino: ${REPO} ready (`), loud.stderr);
  assert.is(lines.length, Object.keys(FILES).length + 1, loud.stderr);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeHub, bytes, gitBlobSha1, sha256Hex, text, type FakeFile } from '../support/hub-server.js';
import { scanLikePython, snapshotLinks, writePythonCache } from '../support/hub-layout.js';
import {
  CACHED_NO_EXIST,
  HubError,
  hubCacheDir,
  hubSettings,
  filterRepoPaths,
  parseDatasetSpec,
  parseModelSpec,
  readTreeCache,
  resolveDataset,
  resolveModel,
  resolveModelFile,
  selectRepoFiles,
  snapshotDownload,
  tryToLoadFromCache,
  type DownloadOptions,
  type LoadEvent,
} from '../../src/hub/index.js';
import { LoadDisplay } from '../../src/cli/progress.js';
import { blobWriter } from '../../src/hub/download.js';
import { MemoryModelFiles, openWeights } from '../../src/io/model-files.js';
import { SafetensorsError } from '../../src/io/safetensors.js';

const REPO = 'org/tiny-sd';
const COMMIT = gitBlobSha1(text('commit 1'));
const index = { metadata: { total_size: 0 }, weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' } };
const FILES: Record<string, FakeFile> = {
  '.gitattributes': { content: text('*.safetensors filter=lfs diff=lfs merge=lfs -text\n') },
  'README.md': { content: text('# tiny\n') },
  'model_index.json': { content: text('{"_class_name": "StableDiffusionPipeline"}\n') },
  'v1-5-pruned.ckpt': { content: bytes(40_000, 1), lfs: true },
  'v1-5-pruned.safetensors': { content: bytes(40_000, 2), lfs: true },
  'unet/config.json': { content: text('{"sample_size": 8}\n'), weakEtag: true },
  'unet/diffusion_pytorch_model.safetensors': { content: bytes(300_000, 3), lfs: true },
  'unet/diffusion_pytorch_model.fp16.safetensors': { content: bytes(150_000, 4), lfs: true },
  'unet/diffusion_pytorch_model.bin': { content: bytes(30_000, 5), lfs: true },
  'unet/diffusion_pytorch_model.fp16.bin': { content: bytes(30_000, 6), lfs: true },
  'text_encoder/config.json': { content: text('{"hidden_size": 4}\n') },
  'text_encoder/model.safetensors.index.json': { content: text(JSON.stringify(index)) },
  'text_encoder/model-00001-of-00002.safetensors': { content: bytes(20_000, 7), lfs: true },
  'text_encoder/model-00002-of-00002.safetensors': { content: bytes(20_000, 8), lfs: true },
  'text_encoder/pytorch_model.bin': { content: bytes(30_000, 9), lfs: true },
  'tokenizer/vocab.json': { content: text('{"a": 0}\n') },
  'tokenizer/merges.txt': { content: text('#version: 0.2\n') },
  'scheduler/scheduler_config.json': { content: text('{"num_train_timesteps": 1000}\n') },
  'flax_model.msgpack': { content: bytes(10_000, 10), lfs: true },
};
const PRIVATE = 'org/private';
const PRIVATE_COMMIT = gitBlobSha1(text('private commit'));
const GATED = 'org/gated';
const SELECT = { components: ['', 'unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'] };

const DATASET = 'org/style-bench';
const DS_COMMIT = gitBlobSha1(text('dataset commit 1'));
const DS_FILES: Record<string, FakeFile> = {
  '.gitattributes': { content: text('*.png filter=lfs diff=lfs merge=lfs -text\n') },
  'README.md': { content: text('# style bench\n') },
  'notes.txt': { content: text('a file, not a folder\n') },
  'images/a.png': { content: bytes(30_000, 21), lfs: true },
  'images/b.png': { content: bytes(20_000, 22), lfs: true },
  'images/sub/c.png': { content: bytes(10_000, 23), lfs: true },
  'images/labels.json': { content: text('{"a": 0, "b": 1}\n') },
  'images-extra/d.png': { content: bytes(5_000, 24), lfs: true },
  'odd [v1]/x.json': { content: text('{"odd": true}\n') },
  'odd v/y.json': { content: text('{"odd": false}\n') },
};
/** A dataset with the same id as the model REPO: another repo. */
const SAME_ID_FILES: Record<string, FakeFile> = { 'data.json': { content: text('{"dataset": true}\n') } };
const SAME_ID_COMMIT = gitBlobSha1(text('same id dataset commit'));

const hub = new FakeHub(
  {
    [REPO]: { commit: COMMIT, files: FILES },
    [PRIVATE]: { commit: PRIVATE_COMMIT, token: 'hf_secret', files: { 'config.json': { content: text('{"private": true}') }, 'model.safetensors': { content: bytes(5000, 77), lfs: true } } },
    [GATED]: { commit: PRIVATE_COMMIT, token: 'hf_gate', gated: true, files: { 'config.json': { content: text('{}') } } },
  },
  {
    [DATASET]: { commit: DS_COMMIT, files: DS_FILES },
    [REPO]: { commit: SAME_ID_COMMIT, files: SAME_ID_FILES },
  },
);

const tmp = mkdtempSync(join(tmpdir(), 'diffsim-hub-'));
let n = 0;
function freshCache(): string {
  const d = join(tmp, `cache-${n++}`);
  mkdirSync(d);
  return d;
}

/** Options isolated from the environment of the machine running the tests. */
function opts(cacheDir: string, extra: DownloadOptions = {}): DownloadOptions {
  return { env: {}, cacheDir, endpoint: hub.url, retryDelayMs: 5, ...extra };
}

function storageOf(cacheDir: string, repoId = REPO, repoType: 'model' | 'dataset' = 'model'): string {
  return join(cacheDir, [`${repoType}s`, ...repoId.split('/')].join('--'));
}

function dsEtagOf(path: string): string {
  const f = DS_FILES[path]!;
  return f.lfs ? sha256Hex(f.content) : gitBlobSha1(f.content);
}

function etagOf(path: string): string {
  const f = FILES[path]!;
  return f.lfs ? sha256Hex(f.content) : gitBlobSha1(f.content);
}

async function hubError(fn: () => Promise<unknown>, label: string): Promise<HubError> {
  try {
    await fn();
  } catch (e) {
    assert.instance(e, HubError, `${label}: a HubError (${(e as Error).message})`);
    return e as HubError;
  }
  assert.unreachable(`${label}: expected a HubError`);
  throw new Error('unreachable');
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

test.before(async () => {
  await hub.start();
});

test.after(async () => {
  await hub.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('first download fills exactly the huggingface_hub layout: blobs by ETag, relative symlinks, refs/main, trees, CACHEDIR.TAG', async () => {
  const cache = freshCache();
  hub.clearLog();
  const folder = await snapshotDownload(REPO, { ...opts(cache), select: SELECT });
  const storage = storageOf(cache);
  assert.is(folder, join(storage, 'snapshots', COMMIT));
  const expected = [
    'model_index.json',
    'scheduler/scheduler_config.json',
    'text_encoder/config.json',
    'text_encoder/model-00001-of-00002.safetensors',
    'text_encoder/model-00002-of-00002.safetensors',
    'text_encoder/model.safetensors.index.json',
    'tokenizer/merges.txt',
    'tokenizer/vocab.json',
    'unet/config.json',
    'unet/diffusion_pytorch_model.safetensors',
  ];
  const links = snapshotLinks(folder);
  assert.equal([...links.keys()].sort(), expected, 'snapshot holds exactly the selected files, all symlinks');
  for (const p of expected) {
    const depth = p.split('/').length - 1;
    assert.is(links.get(p), `${'../'.repeat(depth + 2)}blobs/${etagOf(p)}`, `${p}: relative link to blobs/<etag>`);
    assert.ok(same(readFileSync(join(folder, p)), FILES[p]!.content), `${p}: content`);
  }
  // LFS blobs are named by sha256, regular files by git blob sha1 (the weak W/"…" ETag normalised).
  assert.ok(existsSync(join(storage, 'blobs', sha256Hex(FILES['unet/diffusion_pytorch_model.safetensors']!.content))));
  assert.ok(existsSync(join(storage, 'blobs', gitBlobSha1(FILES['unet/config.json']!.content))));
  assert.equal(readdirSync(join(storage, 'blobs')).sort(), expected.map(etagOf).sort(), 'one blob per file, no .incomplete left');
  assert.is(readFileSync(join(storage, 'refs', 'main'), 'utf8'), COMMIT, 'refs/main holds the commit, no newline');
  assert.match(readFileSync(join(cache, 'CACHEDIR.TAG'), 'utf8'), /^Signature: 8a477f597d28d172789f06886806bc55\n/);
  const tree = await readTreeCache(storage, COMMIT);
  assert.ok(tree, 'trees/<commit>.json written');
  assert.is(tree!.size, Object.keys(FILES).length, 'every file of the commit in the tree cache');
  assert.is(tree!.get('unet/diffusion_pytorch_model.safetensors')!.lfs_sha256, etagOf('unet/diffusion_pytorch_model.safetensors'));
  const treeJson = JSON.parse(readFileSync(join(storage, 'trees', `${COMMIT}.json`), 'utf8')) as { format_version: number };
  assert.is(treeJson.format_version, 1);
  assert.ok(existsSync(join(cache, '.locks', 'models--org--tiny-sd')), 'locks under .locks/models--org--name');
  // What Python's scan_cache_dir checks.
  const scan = scanLikePython(cache);
  assert.equal(scan.warnings, [], 'no corruption warnings');
  assert.equal(scan.incomplete, []);
  const rev = scan.repos.get(REPO)!.revisions.get(COMMIT)!;
  assert.equal([...rev.refs], ['main']);
  assert.is(rev.files.size, expected.length);
  // LFS bodies came through the redirect to /cdn/; the HEAD was answered by the 302 itself.
  assert.is(hub.requestsFor('/cdn/').length, 3, 'the three LFS files fetched from the redirect target');
  const heads = hub.requests.filter((r) => r.method === 'HEAD');
  assert.ok(heads.every((r) => r.url.includes('/resolve/')), 'HEADs only on resolve/');
});

test('second call: snapshot by branch makes one request (the revision API), by commit none; a file by branch one HEAD, by commit none', async () => {
  const cache = freshCache();
  await snapshotDownload(REPO, { ...opts(cache), select: SELECT });
  hub.clearLog();
  const again = await snapshotDownload(REPO, { ...opts(cache), select: SELECT });
  assert.is(again, join(storageOf(cache), 'snapshots', COMMIT));
  assert.equal(hub.requests.map((r) => `${r.method} ${r.url}`), [`GET /api/models/${REPO}/revision/main`], 'only the revision look-up, as huggingface_hub');
  hub.clearLog();
  await snapshotDownload(REPO, { ...opts(cache), select: SELECT, revision: COMMIT });
  assert.equal(hub.requests, [], 'a cached commit costs nothing');
  hub.clearLog();
  const file = await resolveModelFile(REPO, 'unet/config.json', opts(cache));
  assert.equal(hub.requests.map((r) => r.method), ['HEAD'], 'a branch: one HEAD, like hf_hub_download');
  assert.is(file, join(storageOf(cache), 'snapshots', COMMIT, 'unet', 'config.json'));
  hub.clearLog();
  await resolveModelFile(REPO, 'unet/config.json', opts(cache, { revision: COMMIT }));
  assert.equal(hub.requests, [], 'a commit: no request');
});

test('offline (HF_HUB_OFFLINE=1) uses the cache with the server stopped; a failed connection falls back to the cache too', async () => {
  const local = new FakeHub({ [REPO]: { commit: COMMIT, files: FILES } });
  const endpoint = await local.start();
  const cache = freshCache();
  await snapshotDownload(REPO, { ...opts(cache), endpoint, select: SELECT });
  await local.stop();
  const env = { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint };
  const folder = await snapshotDownload(REPO, { env, select: SELECT });
  assert.is(folder, join(storageOf(cache), 'snapshots', COMMIT));
  const file = await resolveModelFile(REPO, 'unet/diffusion_pytorch_model.safetensors', { env });
  assert.ok(same(readFileSync(file), FILES['unet/diffusion_pytorch_model.safetensors']!.content));
  assert.is(await resolveModel(REPO, { env, select: SELECT }), folder);
  // Offline means no request at all, even with a hub that answers.
  hub.clearLog();
  const online = { ...opts(cache), env: { HF_HUB_OFFLINE: '1' }, select: SELECT };
  assert.is(await snapshotDownload(REPO, online), folder);
  assert.is(await resolveModelFile(REPO, 'unet/config.json', { ...opts(cache), env: { HF_HUB_OFFLINE: 'true' } }), join(folder, 'unet', 'config.json'));
  assert.equal(hub.requests, [], 'HF_HUB_OFFLINE: nothing sent');
  // Not offline, but nothing listens: the same answers from the cache.
  const down = { env: { HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint } };
  assert.is(await snapshotDownload(REPO, { ...down, select: SELECT }), folder);
  assert.is(await resolveModelFile(REPO, 'unet/config.json', down), join(folder, 'unet', 'config.json'));
  // Offline, a selection the cache cannot satisfy is reported, not returned half done.
  const e = await hubError(() => snapshotDownload(REPO, { env, select: { ...SELECT, variant: 'fp16' } }), 'fp16 not cached');
  assert.is(e.code, 'incomplete');
  assert.match(e.message, /unet\/diffusion_pytorch_model\.fp16\.safetensors/);
});

test('offline with an empty cache fails with one clear line naming the repo and the file, and the fix', async () => {
  const cache = freshCache();
  const env = { HF_HUB_OFFLINE: 'yes', HF_HUB_CACHE: cache };
  const e = await hubError(() => resolveModelFile(REPO, 'unet/config.json', { env }), 'offline file');
  assert.is(e.code, 'offline');
  assert.not.match(e.message, /\n/, 'one line');
  assert.match(e.message, /^org\/tiny-sd: "unet\/config\.json" is not in the Hugging Face cache/);
  assert.match(e.message, /HF_HUB_OFFLINE=0/);
  assert.match(e.message, /local folder/);
  assert.is(e.repoId, REPO);
  assert.is(e.path, 'unet/config.json');
  const s = await hubError(() => resolveModel(REPO, { env }), 'offline snapshot');
  assert.is(s.code, 'offline');
  assert.not.match(s.message, /\n/);
  assert.match(s.message, /^org\/tiny-sd: .*HF_HUB_OFFLINE=0.*local folder/);
  // Connection refused, nothing cached: one line as well, naming repo and file.
  const dead = new FakeHub({});
  const endpoint = await dead.start();
  await dead.stop();
  const c = await hubError(() => resolveModelFile(REPO, 'unet/config.json', { env: { HF_HUB_CACHE: cache }, endpoint }), 'refused');
  assert.is(c.code, 'network');
  assert.not.match(c.message, /\n/);
  assert.match(c.message, /^org\/tiny-sd: "unet\/config\.json" is not in the Hugging Face cache .* cannot be reached \(ECONNREFUSED\)/);
});

test('a transfer cut midway resumes with a Range request in the same call', async () => {
  const cache = freshCache();
  const path = 'unet/diffusion_pytorch_model.safetensors';
  const sha = etagOf(path);
  hub.cutAfter.set(sha, 100_000);
  hub.clearLog();
  const file = await resolveModelFile(REPO, path, opts(cache));
  assert.ok(same(readFileSync(file), FILES[path]!.content), 'complete and correct');
  const gets = hub.requestsFor(`/cdn/${sha}`);
  assert.is(gets.length, 2, 'one cut GET, one resumed GET');
  assert.is(gets[0]!.headers.range, undefined);
  assert.match(String(gets[1]!.headers.range), /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(String(gets[1]!.headers.range))![0]) >= 65_536, 'resumed from what was received, not from 0');
  assert.not.ok(existsSync(join(storageOf(cache), 'blobs', `${sha}.incomplete`)));
});

test('an interrupted download keeps blobs/<etag>.incomplete and the next call resumes it with Range: bytes=N-', async () => {
  const cache = freshCache();
  const path = 'unet/diffusion_pytorch_model.safetensors';
  const sha = etagOf(path);
  hub.cutAfter.set(sha, 120_000);
  const e = await hubError(() => resolveModelFile(REPO, path, opts(cache, { retries: 0 })), 'cut, no retries');
  assert.is(e.code, 'network');
  assert.match(e.message, /broke off at \d+ of 300000 bytes/);
  const incomplete = join(storageOf(cache), 'blobs', `${sha}.incomplete`);
  const had = lstatSync(incomplete).size;
  assert.ok(had > 0 && had < 300_000, `partial file kept (${had} bytes)`);
  assert.not.ok(existsSync(join(storageOf(cache), 'blobs', sha)), 'nothing under the final name');
  assert.not.ok(existsSync(join(storageOf(cache), 'snapshots', COMMIT, 'unet', 'diffusion_pytorch_model.safetensors')), 'no pointer to a partial file');
  hub.clearLog();
  const file = await resolveModelFile(REPO, path, opts(cache));
  const gets = hub.requestsFor(`/cdn/${sha}`);
  assert.is(gets.length, 1);
  assert.is(gets[0]!.headers.range, `bytes=${had}-`);
  assert.ok(same(readFileSync(file), FILES[path]!.content), 'resumed file is correct (sha256 over both parts)');
  // A server that ignores Range: the partial file is restarted, not appended to.
  const cache2 = freshCache();
  hub.cutAfter.set(sha, 50_000);
  await hubError(() => resolveModelFile(REPO, path, opts(cache2, { retries: 0 })), 'cut again');
  hub.ignoreRange = true;
  try {
    const again = await resolveModelFile(REPO, path, opts(cache2));
    assert.ok(same(readFileSync(again), FILES[path]!.content), 'restarted from byte 0 when the Range was ignored');
  } finally {
    hub.ignoreRange = false;
  }
});

test('a corrupted LFS body fails the sha256 check and leaves no file under the final name', async () => {
  const cache = freshCache();
  const path = 'unet/diffusion_pytorch_model.fp16.safetensors';
  const sha = etagOf(path);
  hub.corrupt.add(`${REPO}:${path}`);
  try {
    const e = await hubError(() => resolveModelFile(REPO, path, opts(cache)), 'corrupt');
    assert.is(e.code, 'checksum');
    assert.match(e.message, /org\/tiny-sd: "unet\/diffusion_pytorch_model\.fp16\.safetensors" failed its sha256 check/);
    assert.not.match(e.message, /\n/);
  } finally {
    hub.corrupt.clear();
  }
  const blobs = join(storageOf(cache), 'blobs');
  assert.equal(readdirSync(blobs), [], 'neither the blob nor its .incomplete');
  assert.not.ok(existsSync(join(storageOf(cache), 'snapshots', COMMIT, 'unet', 'diffusion_pytorch_model.fp16.safetensors')));
  assert.is(await tryToLoadFromCache(REPO, path, 'main', { cacheDir: cache, env: {} }), null);
  const ok = await resolveModelFile(REPO, path, opts(cache));
  assert.is(sha256Hex(readFileSync(ok)), sha, 'a clean second attempt succeeds');
});

test('HF_ENDPOINT and HF_TOKEN are honoured (also the token file and the explicit options)', async () => {
  const cache = freshCache();
  hub.clearLog();
  const file = await resolveModelFile(PRIVATE, 'config.json', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret', HF_HUB_CACHE: cache } });
  assert.is(readFileSync(file, 'utf8'), '{"private": true}');
  assert.ok(hub.requests.length > 0, 'HF_ENDPOINT used');
  assert.ok(hub.requests.every((r) => r.headers.authorization === 'Bearer hf_secret'), 'every request carries the token');
  // The token goes to the hub, and to a redirect target on the same host, but not to a CDN elsewhere.
  hub.clearLog();
  await resolveModelFile(PRIVATE, 'model.safetensors', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret', HF_HUB_CACHE: cache } });
  assert.is(hub.requestsFor('/cdn/')[0]!.headers.authorization, 'Bearer hf_secret', 'same host: kept');
  hub.cdnHost = 'localhost';
  try {
    hub.clearLog();
    await resolveModelFile(PRIVATE, 'model.safetensors', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret' }, cacheDir: freshCache() });
    assert.is(hub.requestsFor('/resolve/')[0]!.headers.authorization, 'Bearer hf_secret');
    assert.is(hub.requestsFor('/cdn/').length, 1);
    assert.is(hub.requestsFor('/cdn/')[0]!.headers.authorization, undefined, 'another host: dropped');
  } finally {
    hub.cdnHost = '127.0.0.1';
  }
  // $HF_HOME/token (what `hf auth login` writes), with its trailing newline.
  const home = join(tmp, 'hf-home');
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'token'), 'hf_secret\n');
  const s = hubSettings({ env: { HF_HOME: home } });
  assert.is(s.token, 'hf_secret');
  assert.is(s.cacheDir, join(home, 'hub'));
  const viaFile = await resolveModelFile(PRIVATE, 'config.json', { env: { HF_HOME: home, HF_ENDPOINT: hub.url }, revision: PRIVATE_COMMIT });
  assert.is(realpathSync(viaFile), realpathSync(join(home, 'hub', 'models--org--private', 'blobs', gitBlobSha1(text('{"private": true}')))));
  // The options object wins over the environment.
  hub.clearLog();
  const e = await hubError(() => resolveModelFile(PRIVATE, 'config.json', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret' }, cacheDir: freshCache(), token: 'hf_wrong' }), 'explicit token');
  assert.is(hub.requests[0]!.headers.authorization, 'Bearer hf_wrong');
  assert.is(e.code, 'repo-not-found');
  assert.is(hubSettings({ env: { HF_ENDPOINT: 'http://a.example/' }, endpoint: 'http://b.example' }).endpoint, 'http://b.example');
  assert.is(hubSettings({ env: { HF_ENDPOINT: 'http://a.example/' } }).endpoint, 'http://a.example', 'trailing slash stripped');
  assert.is(hubSettings({ env: { HF_TOKEN: 'x' }, token: false }).token, undefined);
});

test('401 and 404 errors name the repository and the file; 404 is cached as .no_exist', async () => {
  const cache = freshCache();
  const missingRepo = await hubError(() => resolveModelFile('org/nope', 'config.json', opts(cache)), 'missing repo');
  assert.is(missingRepo.code, 'repo-not-found');
  assert.is(missingRepo.status, 401);
  assert.match(missingRepo.message, /^org\/nope: repository not found .*no token was sent \(set HF_TOKEN.*"config\.json"/);
  const noToken = await hubError(() => resolveModelFile(PRIVATE, 'config.json', opts(cache)), 'private, no token');
  assert.is(noToken.code, 'repo-not-found');
  assert.match(noToken.message, /org\/private.*"config\.json"/);
  const gated = await hubError(() => resolveModelFile(GATED, 'config.json', opts(cache)), 'gated');
  assert.is(gated.code, 'gated');
  assert.is(gated.status, 403);
  assert.match(gated.message, new RegExp(`^org/gated: gated repository; accept its conditions at ${hub.url}/org/gated.*"config\\.json"`));
  const missingFile = await hubError(() => resolveModelFile(REPO, 'unet/missing.json', opts(cache)), 'missing file');
  assert.is(missingFile.code, 'entry-not-found');
  assert.is(missingFile.message, 'org/tiny-sd: no file "unet/missing.json" at revision "main" (HTTP 404)');
  for (const e of [missingRepo, noToken, gated, missingFile]) assert.not.match(e.message, /\n/);
  const storage = storageOf(cache);
  assert.ok(existsSync(join(storage, '.no_exist', COMMIT, 'unet', 'missing.json')), '.no_exist/<commit>/<path> marker');
  assert.is(readFileSync(join(storage, 'refs', 'main'), 'utf8'), COMMIT);
  assert.is(await tryToLoadFromCache(REPO, 'unet/missing.json', 'main', { cacheDir: cache, env: {} }), CACHED_NO_EXIST);
  assert.equal(scanLikePython(cache).warnings, [], 'a ref without files still has its snapshot folder');
  hub.clearLog();
  const known = await hubError(() => resolveModelFile(REPO, 'unet/missing.json', opts(cache, { revision: COMMIT })), 'known missing');
  assert.is(known.code, 'entry-not-found');
  assert.equal(hub.requests, [], 'known missing at a commit: no request');
  const rev = await hubError(() => snapshotDownload(REPO, { ...opts(cache), revision: 'v9' }), 'missing revision');
  assert.is(rev.code, 'revision-not-found');
  assert.match(rev.message, /^org\/tiny-sd: no revision "v9"/);
});

test('only the needed files are fetched: safetensors only, fp16 when asked and published, shards through the index, never the .ckpt', async () => {
  const cache = freshCache();
  hub.clearLog();
  const folder = await snapshotDownload(REPO, { ...opts(cache), select: { ...SELECT, variant: 'fp16' } });
  const got = [...snapshotLinks(folder).keys()].sort();
  assert.ok(got.includes('unet/diffusion_pytorch_model.fp16.safetensors'), 'fp16 variant taken');
  assert.not.ok(got.includes('unet/diffusion_pytorch_model.safetensors'), 'full-precision file skipped when fp16 is published');
  assert.ok(got.includes('text_encoder/model-00001-of-00002.safetensors') && got.includes('text_encoder/model-00002-of-00002.safetensors'), 'shards of the index (no fp16 there: the plain one)');
  const fetched = hub.requests.filter((r) => r.url.includes('/resolve/')).map((r) => decodeURIComponent(r.url));
  for (const bad of ['.ckpt', '.bin', '.msgpack', 'README.md', '.gitattributes', 'v1-5-pruned.safetensors', 'diffusion_pytorch_model.safetensors']) {
    assert.not.ok(fetched.some((u) => u.endsWith(bad) || u.endsWith(`/${bad}`)), `${bad} never requested`);
  }
  assert.is(hub.requestsFor('.ckpt').length, 0, 'the .ckpt is never requested');
  // The selection rules on their own.
  const files = Object.keys(FILES);
  assert.equal(selectRepoFiles(files, { components: ['unet'] }), ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors']);
  assert.equal(selectRepoFiles(files, { components: ['unet'], variant: 'fp16' }), ['unet/config.json', 'unet/diffusion_pytorch_model.fp16.safetensors']);
  assert.equal(selectRepoFiles(files, { components: ['text_encoder'], variant: 'fp16' }), ['text_encoder/config.json', 'text_encoder/model.safetensors.index.json']);
  assert.equal(selectRepoFiles(['config.json', 'model.safetensors', 'pytorch_model.bin', 'tf_model.h5', 'flax_model.msgpack', 'README.md', 'preprocessor_config.json'], { components: [''] }), ['config.json', 'model.safetensors', 'preprocessor_config.json']);
  assert.equal(selectRepoFiles(['x/model.fp16.safetensors', 'x/config.json'], { components: ['x'] }), ['x/config.json', 'x/model.fp16.safetensors'], 'only a variant published: taken');
  assert.equal(selectRepoFiles(['a/w.safetensors.index.fp16.json', 'a/w.fp16-00001-of-00002.safetensors', 'a/w.safetensors'], { components: ['a'], variant: 'fp16' }), ['a/w.safetensors.index.fp16.json'], 'a variant index');
  assert.equal(
    selectRepoFiles(['models/ip-adapter_sd15.safetensors', 'models/ip-adapter-plus_sd15.safetensors', 'models/ip-adapter-plus_sd15.bin', 'models/image_encoder/config.json', 'models/image_encoder/model.safetensors', 'models/image_encoder/pytorch_model.bin'], {
      include: ['models/ip-adapter-plus_sd15.safetensors'],
      components: ['models/image_encoder'],
    }),
    ['models/image_encoder/config.json', 'models/image_encoder/model.safetensors', 'models/ip-adapter-plus_sd15.safetensors'],
  );
  // Default (no components): every folder, and a pipeline root gives its configs, not its checkpoints.
  assert.not.ok(selectRepoFiles(files).some((f) => f.startsWith('v1-5-pruned')));
});

test('a cache laid out exactly as Python writes it is used offline: refs/main, symlinked snapshot, .no_exist marker', async () => {
  const cache = freshCache();
  const commit = gitBlobSha1(text('python commit'));
  const cfg = text('{"hidden_size": 384}');
  const weights = bytes(5000, 42);
  const nested = text('{"crop_size": 224}');
  writePythonCache(
    cache,
    'facebook/dinov2-small',
    commit,
    [
      { path: 'config.json', content: cfg, etag: gitBlobSha1(cfg) },
      { path: 'model.safetensors', content: weights, etag: sha256Hex(weights) },
      { path: 'sub/dir/preprocessor_config.json', content: nested, etag: gitBlobSha1(nested) },
    ],
    { revision: 'main', noExist: ['model.safetensors.index.json'] },
  );
  assert.equal(scanLikePython(cache).warnings, [], 'the hand-built cache is valid for scan_cache_dir');
  const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
  const snap = join(storageOf(cache, 'facebook/dinov2-small'), 'snapshots', commit);
  assert.is(await tryToLoadFromCache('facebook/dinov2-small', 'config.json', undefined, { env }), join(snap, 'config.json'));
  assert.is(await tryToLoadFromCache('facebook/dinov2-small', 'sub/dir/preprocessor_config.json', 'main', { env }), join(snap, 'sub', 'dir', 'preprocessor_config.json'));
  assert.is(await tryToLoadFromCache('facebook/dinov2-small', 'model.safetensors.index.json', 'main', { env }), CACHED_NO_EXIST);
  assert.is(await tryToLoadFromCache('facebook/dinov2-small', 'tokenizer.json', 'main', { env }), null);
  assert.is(await tryToLoadFromCache('facebook/dinov2-small', 'config.json', 'v2', { env }), null, 'an unknown revision is not guessed');
  assert.is(await tryToLoadFromCache('facebook/other', 'config.json', 'main', { env }), null);
  const w = await resolveModelFile('facebook/dinov2-small', 'model.safetensors', { env });
  assert.ok(same(readFileSync(w), weights));
  const missing = await hubError(() => resolveModelFile('facebook/dinov2-small', 'model.safetensors.index.json', { env }), '.no_exist');
  assert.is(missing.code, 'entry-not-found');
  assert.is(await resolveModel('facebook/dinov2-small', { env }), snap, 'the default selection for DINOv2 is satisfied');
  assert.is(await snapshotDownload('facebook/dinov2-small', { env, revision: commit }), snap);
  // On systems without symlinks huggingface_hub copies the files into the snapshot.
  const copies = freshCache();
  writePythonCache(copies, 'openai/clip-vit-base-patch32', commit, [{ path: 'config.json', content: cfg, etag: gitBlobSha1(cfg) }], { revision: 'main', copies: true });
  const copied = await resolveModelFile('openai/clip-vit-base-patch32', 'config.json', { env: { HF_HUB_CACHE: copies, HF_HUB_OFFLINE: '1' } });
  assert.not.ok(lstatSync(copied).isSymbolicLink());
  assert.ok(same(readFileSync(copied), cfg));
});

test('an empty lock file left by Python is taken over; a lock held by a live process is waited for', async () => {
  const cache = freshCache();
  const path = 'unet/config.json';
  const etag = etagOf(path);
  const lock = join(cache, '.locks', 'models--org--tiny-sd', `${etag}.lock`);
  mkdirSync(join(cache, '.locks', 'models--org--tiny-sd'), { recursive: true });
  writeFileSync(lock, `${process.ppid} ${(await import('node:os')).hostname()} ${Date.now()}`);
  let done = false;
  const p = resolveModelFile(REPO, path, opts(cache)).then((f) => {
    done = true;
    return f;
  });
  await new Promise((r) => setTimeout(r, 600));
  assert.not.ok(done, 'waits while a live process holds the lock');
  assert.not.ok(existsSync(join(storageOf(cache), 'blobs', etag)));
  writeFileSync(lock, ''); // now it looks like a lock file Python's filelock leaves behind
  const f = await p;
  assert.ok(same(readFileSync(f), FILES[path]!.content));
  assert.not.ok(existsSync(lock), 'the lock is released');
});

test('two processes downloading the same file: one transfer, the other waits on the lock and uses the blob', async () => {
  const cache = freshCache();
  const path = 'unet/diffusion_pytorch_model.safetensors';
  const moduleUrl = new URL('../../src/hub/index.js', import.meta.url).href;
  const script = `const { resolveModelFile } = await import(${JSON.stringify(moduleUrl)});
const f = await resolveModelFile(${JSON.stringify(REPO)}, ${JSON.stringify(path)}, { env: {}, cacheDir: ${JSON.stringify(cache)}, endpoint: ${JSON.stringify(hub.url)} });
process.stdout.write(f);`;
  const run = (): Promise<{ code: number | null; out: string; err: string }> =>
    new Promise((done) => {
      const child = spawn('deno' in process.versions ? 'node' : process.execPath, ['--input-type=module', '-e', script], { cwd: dirname(fileURLToPath(import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => done({ code, out, err }));
    });
  hub.clearLog();
  hub.chunkDelayMs = 15;
  let results: { code: number | null; out: string; err: string }[];
  try {
    results = await Promise.all([run(), run()]);
  } finally {
    hub.chunkDelayMs = 0;
  }
  for (const r of results) assert.is(r.code, 0, r.err);
  assert.is(results[0]!.out, results[1]!.out, 'the same snapshot path');
  assert.ok(same(readFileSync(results[0]!.out), FILES[path]!.content));
  assert.is(hub.requestsFor(`/cdn/${etagOf(path)}`).length, 1, 'the bytes were transferred once');
  assert.equal(readdirSync(join(storageOf(cache), 'blobs')), [etagOf(path)], 'no .incomplete or stray files');
  assert.equal(readdirSync(join(cache, '.locks', 'models--org--tiny-sd')), [], 'lock released');
});

test('progress: initiate, download, progress with rate and ETA, done through the callback; the CLI display writes one line per downloaded file when not a TTY, nothing to stdout', async () => {
  const cache = freshCache();
  const events: LoadEvent[] = [];
  const file = 'unet/diffusion_pytorch_model.safetensors';
  await resolveModelFile(REPO, file, opts(cache, { onProgress: (e) => events.push({ ...e }) }));
  assert.equal(events.slice(0, 2).map((e) => e.status), ['initiate', 'download']);
  assert.ok(events.every((e) => e.status !== 'ready' && e.name === REPO && 'file' in e && e.file === file), 'every event names the repo and the file');
  const last = events.at(-1)!;
  assert.is(last.status, 'done');
  assert.equal(last.status === 'done' && [last.total, last.cached, last.resumedFrom], [300_000, undefined, 0]);
  const mid = events.flatMap((e) => (e.status === 'progress' ? [e] : []));
  assert.is(mid.length, events.length - 3, 'only progress between download and done');
  assert.ok(mid.length >= 1);
  assert.ok(mid.every((e, i) => i === 0 || e.loaded >= mid[i - 1]!.loaded), 'monotonic');
  assert.ok(mid.every((e) => e.total === 300_000 && Math.abs(e.progress - (100 * e.loaded) / 300_000) < 1e-9), 'progress in percent');
  assert.is(mid.at(-1)!.progress, 100);
  assert.ok(mid.some((e) => e.rate! > 0 && e.eta !== undefined), 'rate and ETA reported');
  // The same file again: cached, initiate then done.
  const again: LoadEvent[] = [];
  await resolveModelFile(REPO, file, opts(cache, { onProgress: (e) => again.push(e) }));
  assert.equal(again, [{ status: 'initiate', name: REPO, file }, { status: 'done', name: REPO, file, total: 300_000, cached: true }]);
  const lines: string[] = [];
  const report = new LoadDisplay({ isTTY: false, write: (t: string) => lines.push(t) });
  const stdout = process.stdout.write.bind(process.stdout);
  let wroteStdout = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    wroteStdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await snapshotDownload(REPO, { ...opts(freshCache()), select: { components: ['unet', 'tokenizer'] }, onProgress: report.onProgress });
  } finally {
    process.stdout.write = stdout;
  }
  report.end();
  assert.is(wroteStdout, '', 'nothing on stdout');
  assert.is(lines.length, 4, 'one line per finished file');
  assert.ok(lines.every((l) => l.endsWith('\n') && !l.includes('\r')));
  assert.ok(lines.some((l) => /^org\/tiny-sd: unet\/diffusion_pytorch_model\.safetensors 300 kB in \d+ s/.test(l)));
  const tty: string[] = [];
  const bar = new LoadDisplay({ isTTY: true, columns: 80, write: (t: string) => tty.push(t) });
  await resolveModelFile(REPO, file, opts(freshCache(), { onProgress: bar.onProgress }));
  bar.end();
  assert.ok(tty.some((t) => t.startsWith('\r\x1b[K') && / ETA |%/.test(t)), 'a redrawn bar on a terminal');
  assert.match(tty.join(''), /\r\x1b\[Korg\/tiny-sd: unet\/diffusion_pytorch_model\.safetensors 300 kB in [^\r]*\n$/, 'the bar cleared for the line of the finished file, nothing left drawn');
});

test('settings: cache folder, offline values and token precedence follow huggingface_hub', () => {
  assert.is(hubCacheDir({ env: { HF_HOME: '/x/hf' } }), '/x/hf/hub');
  assert.is(hubCacheDir({ env: { HF_HOME: '/x/hf', HUGGINGFACE_HUB_CACHE: '/legacy' } }), '/legacy');
  assert.is(hubCacheDir({ env: { HF_HUB_CACHE: '/new', HUGGINGFACE_HUB_CACHE: '/legacy' } }), '/new');
  assert.is(hubCacheDir({ env: { HF_HUB_CACHE: '/new' }, cacheDir: '/opt' }), '/opt');
  assert.is(hubCacheDir({ env: { XDG_CACHE_HOME: '/xdg' } }), '/xdg/huggingface/hub');
  assert.is(hubCacheDir({ env: { HOME: '/home/u' } }), '/home/u/.cache/huggingface/hub');
  assert.is(hubCacheDir({ env: { HOME: '/home/u', HF_HOME: '~/hf' } }), '/home/u/hf/hub');
  assert.is(hubCacheDir({ env: { ROOT: '/r', HF_HUB_CACHE: '$ROOT/c' } }), '/r/c');
  for (const v of ['1', 'true', 'YES', 'On']) assert.ok(hubSettings({ env: { HF_HUB_OFFLINE: v } }).offline, v);
  for (const v of ['0', 'false', 'no', '']) assert.not.ok(hubSettings({ env: { HF_HUB_OFFLINE: v } }).offline, v);
  assert.ok(hubSettings({ env: { TRANSFORMERS_OFFLINE: '1' } }).offline);
  assert.ok(hubSettings({ env: {}, offline: true }).offline);
  assert.is(hubSettings({ env: { HF_TOKEN: ' a \n', HUGGING_FACE_HUB_TOKEN: 'b' } }).token, 'a');
  assert.is(hubSettings({ env: { HUGGING_FACE_HUB_TOKEN: 'b', HF_HOME: '/nonexistent' } }).token, 'b');
  assert.is(hubSettings({ env: {} }).endpoint, 'https://huggingface.co');
});

test('patterns match like huggingface_hub (fnmatch: * crosses /, trailing / is a folder); model specs', async () => {
  const files = ['a.json', 'unet/config.json', 'unet/x/deep.json', 'vae/w.safetensors', '.hidden'];
  assert.equal(filterRepoPaths(files, '*.json'), ['a.json', 'unet/config.json', 'unet/x/deep.json']);
  assert.equal(filterRepoPaths(files, 'unet/'), ['unet/config.json', 'unet/x/deep.json']);
  assert.equal(filterRepoPaths(files, undefined, ['.*', 'unet/*']), ['a.json', 'vae/w.safetensors']);
  assert.equal(filterRepoPaths(files, ['?.json', 'vae/[uvw].safetensors']), ['a.json', 'vae/w.safetensors']);
  assert.equal(filterRepoPaths(files, '[!a].json'), []);
  const cache = freshCache();
  hub.clearLog();
  const folder = await snapshotDownload(REPO, { ...opts(cache), allowPatterns: ['tokenizer/', '*.json'], ignorePatterns: 'text_encoder/*' });
  assert.equal([...snapshotLinks(folder).keys()].sort(), ['model_index.json', 'scheduler/scheduler_config.json', 'tokenizer/merges.txt', 'tokenizer/vocab.json', 'unet/config.json']);
  assert.equal(parseModelSpec('org/name'), { repoId: 'org/name', revision: undefined });
  assert.equal(parseModelSpec('org/name@refs/pr/1'), { repoId: 'org/name', revision: 'refs/pr/1' });
  for (const bad of ['org/na--me', 'org/../x', '-org/x', 'a/b/c']) {
    const e = await hubError(async () => parseModelSpec(bad), bad);
    assert.is(e.code, 'invalid');
  }
  // resolveModel: an existing local path is used as is; a path that does not exist is not a repo id.
  const local = join(tmp, 'local-model');
  mkdirSync(local, { recursive: true });
  assert.is(await resolveModel(local, { env: {}, offline: true }), local);
  const e = await hubError(() => resolveModel('./no/such/folder', { env: {}, offline: true }), 'missing path');
  assert.is(e.code, 'invalid');
  assert.match(e.message, /no such file or folder/);
  // resolveModel on a hub id with a revision: the snapshot of that commit.
  const c = freshCache();
  assert.is(await resolveModel(`${REPO}@${COMMIT}`, { ...opts(c), select: { components: ['tokenizer'] } }), join(storageOf(c), 'snapshots', COMMIT));
});

test('a redirect without the metadata, on the hub host, is followed by the HEAD (as huggingface_hub >= 2 does); the GET goes where it ended', async () => {
  const cache = freshCache();
  const path = 'unet/diffusion_pytorch_model.fp16.safetensors';
  hub.bareRedirects = true;
  hub.clearLog();
  try {
    const f = await resolveModelFile(REPO, path, opts(cache));
    assert.is(sha256Hex(readFileSync(f)), etagOf(path));
  } finally {
    hub.bareRedirects = false;
  }
  assert.equal(
    hub.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`),
    [`HEAD /${REPO}/resolve/main/${path}`, `HEAD /cdn/${etagOf(path)}`, `GET /cdn/${etagOf(path)}`],
  );
  assert.ok(existsSync(join(storageOf(cache), 'blobs', etagOf(path))), 'blob named by the ETag of the final answer');
});

test('HF_HUB_DISABLE_SYMLINKS: snapshot files are real files; Python reads them the same way', async () => {
  const cache = freshCache();
  const folder = await snapshotDownload(REPO, { ...opts(cache, { env: { HF_HUB_DISABLE_SYMLINKS: '1' } }), select: { components: ['unet'] } });
  for (const p of ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors']) {
    const f = join(folder, p);
    assert.not.ok(lstatSync(f).isSymbolicLink(), `${p} is a copy`);
    assert.ok(same(readFileSync(f), FILES[p]!.content));
  }
  assert.equal(scanLikePython(cache).warnings, []);
  hub.clearLog();
  await snapshotDownload(REPO, { ...opts(cache), select: { components: ['unet'] }, revision: COMMIT });
  assert.equal(hub.requests, [], 'copies count as cached');
});

test('a dataset (hf://datasets/org/name) lands in datasets--org--name as huggingface_hub lays it out, through the dataset routes only', async () => {
  const cache = freshCache();
  const lines: string[] = [];
  hub.clearLog();
  const folder = await resolveDataset(`hf://datasets/${DATASET}`, { ...opts(cache), onProgress: new LoadDisplay({ isTTY: false, write: (t: string) => lines.push(t) }).onProgress });
  const storage = storageOf(cache, DATASET, 'dataset');
  assert.is(folder, join(storage, 'snapshots', DS_COMMIT));
  const all = Object.keys(DS_FILES).sort();
  const links = snapshotLinks(folder);
  assert.equal([...links.keys()].sort(), all, 'every file of the dataset, all symlinks');
  for (const p of all) {
    assert.is(links.get(p), `${'../'.repeat(p.split('/').length + 1)}blobs/${dsEtagOf(p)}`, `${p}: relative link to blobs/<etag>`);
    assert.ok(same(readFileSync(join(folder, p)), DS_FILES[p]!.content), `${p}: content`);
  }
  assert.equal(readdirSync(join(storage, 'blobs')).sort(), all.map(dsEtagOf).sort(), 'one blob per file (LFS by sha256), no .incomplete');
  assert.is(readFileSync(join(storage, 'refs', 'main'), 'utf8'), DS_COMMIT, 'refs/main holds the commit');
  assert.ok((await readTreeCache(storage, DS_COMMIT))?.has('images/sub/c.png'), 'trees/<commit>.json');
  assert.ok(existsSync(join(cache, '.locks', 'datasets--org--style-bench')), 'locks under .locks/datasets--org--name');
  assert.not.ok(existsSync(storageOf(cache, DATASET)), 'no models--org--style-bench folder');
  const scan = scanLikePython(cache);
  assert.equal(scan.warnings, []);
  const repo = scan.repos.get(`datasets/${DATASET}`);
  assert.is(repo?.repoType, 'dataset');
  assert.equal([...repo!.revisions.get(DS_COMMIT)!.refs], ['main']);
  // The routes: dataset info and tree under /api/datasets/, files under /datasets/{id}/resolve/.
  const routes = hub.requests.map((r) => `${r.method} ${decodeURIComponent(r.url)}`);
  assert.is(routes[0], `GET /api/datasets/${DATASET}/revision/main`);
  assert.is(routes[1], `GET /api/datasets/${DATASET}/tree/${DS_COMMIT}?recursive=true`);
  assert.ok(routes.every((r) => r.startsWith(`GET /api/datasets/${DATASET}/`) || r.startsWith(`HEAD /datasets/${DATASET}/resolve/${DS_COMMIT}/`) || r.startsWith('GET /cdn/') || r.startsWith(`GET /datasets/${DATASET}/resolve/${DS_COMMIT}/`)), routes.join('\n'));
  assert.ok(routes.includes(`HEAD /datasets/${DATASET}/resolve/${DS_COMMIT}/odd [v1]/x.json`));
  assert.is(hub.requests.filter((r) => r.method === 'HEAD').length, all.length, 'one HEAD per file');
  // Progress on stderr names the dataset.
  assert.is(lines.length, all.length, 'one line per file');
  assert.ok(lines.every((l) => l.startsWith(`datasets/${DATASET}: `)), lines.join(''));
  // Again: one request by branch, none by commit, as for models.
  hub.clearLog();
  assert.is(await resolveDataset(`hf://datasets/${DATASET}`, opts(cache)), folder);
  assert.equal(hub.requests.map((r) => `${r.method} ${r.url}`), [`GET /api/datasets/${DATASET}/revision/main`]);
  hub.clearLog();
  assert.is(await resolveDataset(`hf://datasets/${DATASET}@${DS_COMMIT}`, opts(cache)), folder);
  assert.equal(hub.requests, []);
  // One file, and the cache look-up, with repoType 'dataset'.
  hub.clearLog();
  assert.is(await resolveModelFile(DATASET, 'images/labels.json', opts(cache, { repoType: 'dataset' })), join(folder, 'images', 'labels.json'));
  assert.equal(hub.requests.map((r) => `${r.method} ${r.url}`), [`HEAD /datasets/${DATASET}/resolve/main/images/labels.json`]);
  assert.is(await tryToLoadFromCache(DATASET, 'images/labels.json', 'main', { cacheDir: cache, env: {}, repoType: 'dataset' }), join(folder, 'images', 'labels.json'));
  assert.is(await tryToLoadFromCache(DATASET, 'images/labels.json', 'main', { cacheDir: cache, env: {} }), null, 'not a model repo');
  // A missing dataset names itself with its type.
  const missing = await hubError(() => resolveDataset('hf://datasets/org/nope', opts(cache)), 'missing dataset');
  assert.is(missing.code, 'repo-not-found');
  assert.match(missing.message, /^datasets\/org\/nope: repository not found/);
  const rev = await hubError(() => resolveDataset(`hf://datasets/${DATASET}@v9/images`, opts(cache)), 'missing revision');
  assert.is(rev.code, 'revision-not-found');
  assert.match(rev.message, /^datasets\/org\/style-bench: no revision "v9"/);
});

test('a model and a dataset with the same id are two repos: two cache folders, two sets of routes', async () => {
  const cache = freshCache();
  hub.clearLog();
  const ds = await snapshotDownload(REPO, { ...opts(cache), repoType: 'dataset' });
  assert.is(ds, join(storageOf(cache, REPO, 'dataset'), 'snapshots', SAME_ID_COMMIT));
  assert.equal([...snapshotLinks(ds).keys()], ['data.json']);
  assert.not.ok(existsSync(storageOf(cache, REPO)), 'the model cache folder is untouched');
  assert.ok(hub.requests.every((r) => !r.url.startsWith('/api/models/') && !r.url.startsWith(`/${REPO}/`)), 'no model route asked');
  const model = await resolveModelFile(REPO, 'unet/config.json', opts(cache));
  assert.is(model, join(storageOf(cache), 'snapshots', COMMIT, 'unet', 'config.json'));
  const e = await hubError(() => resolveModelFile(REPO, 'data.json', opts(cache)), 'dataset file asked of the model');
  assert.is(e.code, 'entry-not-found');
  assert.match(e.message, /^org\/tiny-sd: no file "data\.json"/);
  assert.equal(scanLikePython(cache).warnings, []);
  assert.equal([...scanLikePython(cache).repos.keys()].sort(), [`datasets/${REPO}`, REPO]);
  const bad = await hubError(() => snapshotDownload(REPO, { ...opts(cache), repoType: 'space' as never }), 'unknown repo type');
  assert.is(bad.code, 'invalid');
  assert.match(bad.message, /"space" is not a repo type .*"model" or "dataset"/);
});

test('hf://datasets/org/name/folder downloads only that folder and returns it; a missing folder or a file is an error naming both', async () => {
  const cache = freshCache();
  const snap = join(storageOf(cache, DATASET, 'dataset'), 'snapshots', DS_COMMIT);
  hub.clearLog();
  assert.is(await resolveDataset(`hf://datasets/${DATASET}/images`, opts(cache)), join(snap, 'images'));
  assert.equal([...snapshotLinks(snap).keys()].sort(), ['images/a.png', 'images/b.png', 'images/labels.json', 'images/sub/c.png'], 'the folder, its subfolders, nothing beside it (images-extra/ included)');
  const resolved = hub.requestsFor('/resolve/').map((r) => decodeURIComponent(r.url));
  assert.ok(resolved.every((u) => u.includes(`/resolve/${DS_COMMIT}/images/`)), resolved.join('\n'));
  // A revision, a trailing slash, a folder deeper down, and glob characters taken literally.
  assert.is(await resolveDataset(`hf://datasets/${DATASET}@${DS_COMMIT}/images/sub/`, opts(cache)), join(snap, 'images', 'sub'));
  assert.is(await resolveDataset(`hf://datasets/${DATASET}@main/odd [v1]`, opts(cache)), join(snap, 'odd [v1]'));
  assert.ok(existsSync(join(snap, 'odd [v1]', 'x.json')));
  assert.not.ok(existsSync(join(snap, 'odd v')), '"[v1]" is not a character class');
  const nope = await hubError(() => resolveDataset(`hf://datasets/${DATASET}/nope`, opts(cache)), 'no such folder');
  assert.is(nope.code, 'entry-not-found');
  assert.is(nope.message, `datasets/${DATASET}: "nope" is not a folder of the dataset (hf://datasets/${DATASET}/nope)`);
  assert.is(nope.path, 'nope');
  const file = await hubError(() => resolveDataset(`hf://datasets/${DATASET}/notes.txt`, opts(cache)), 'a file');
  assert.is(file.code, 'entry-not-found');
  assert.match(file.message, /^datasets\/org\/style-bench: "notes\.txt" is a file, expected a folder/);
  assert.not.ok(existsSync(join(snap, 'notes.txt')), 'not downloaded either');
  const conflict = await hubError(() => resolveDataset(`hf://datasets/${DATASET}@main/images`, { ...opts(cache), revision: 'v2' }), 'two revisions');
  assert.is(conflict.code, 'invalid');
  assert.match(conflict.message, /revision "main" is not the revision "v2"/);
});

test('offline: a cached dataset (or folder of it) is used with no request; what is not cached fails with one line naming the dataset and what is missing', async () => {
  const cache = freshCache();
  const snap = join(storageOf(cache, DATASET, 'dataset'), 'snapshots', DS_COMMIT);
  await resolveDataset(`hf://datasets/${DATASET}/images`, opts(cache));
  hub.clearLog();
  const env = { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url };
  const off = { env };
  assert.is(await resolveDataset(`hf://datasets/${DATASET}/images`, off), join(snap, 'images'));
  assert.is(await resolveDataset(`hf://datasets/${DATASET}/images/sub`, off), join(snap, 'images', 'sub'));
  assert.is(await resolveModelFile(DATASET, 'images/a.png', { ...off, repoType: 'dataset' }), join(snap, 'images', 'a.png'));
  assert.equal(hub.requests, [], 'HF_HUB_OFFLINE: nothing sent');
  // The whole dataset was never downloaded: the cached file list says what is missing.
  const whole = await hubError(() => resolveDataset(`hf://datasets/${DATASET}`, off), 'whole dataset offline');
  assert.is(whole.code, 'incomplete', whole.message);
  assert.not.match(whole.message, /\n/);
  assert.match(whole.message, /^datasets\/org\/style-bench: "\.gitattributes", "README\.md", "images-extra\/d\.png" and 3 more are not in the Hugging Face cache .*HF_HUB_OFFLINE=0/);
  const nope = await hubError(() => resolveDataset(`hf://datasets/${DATASET}/nope`, off), 'missing folder offline');
  assert.is(nope.code, 'entry-not-found', 'known from the cached file list');
  // Nothing cached for that dataset (a model of the same id does not count).
  const empty = freshCache();
  await snapshotDownload(REPO, { ...opts(empty), select: { components: ['tokenizer'] } });
  const env2 = { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: empty };
  const e = await hubError(() => resolveDataset(`hf://datasets/${REPO}/data`, { env: env2 }), 'offline, not cached');
  assert.is(e.code, 'offline');
  assert.is(e.repoId, REPO);
  assert.not.match(e.message, /\n/);
  assert.match(e.message, /^datasets\/org\/tiny-sd: the snapshot is not in the Hugging Face cache \(.*\) and offline mode is on \(HF_HUB_OFFLINE=1\); set HF_HUB_OFFLINE=0 to download, or pass a local folder$/);
  const f = await hubError(() => resolveModelFile(REPO, 'data.json', { env: env2, repoType: 'dataset' }), 'offline file');
  assert.is(f.code, 'offline');
  assert.match(f.message, /^datasets\/org\/tiny-sd: "data\.json" is not in the Hugging Face cache/);
  assert.is(f.path, 'data.json');
  // A dataset cache written as Python writes it, without a file list: a folder it lacks is reported as not cached.
  const py = freshCache();
  const png = bytes(3000, 31);
  writePythonCache(py, DATASET, DS_COMMIT, [{ path: 'images/a.png', content: png, etag: sha256Hex(png) }], { revision: 'main', repoType: 'dataset' });
  assert.equal(scanLikePython(py).warnings, []);
  const pyEnv = { env: { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: py } };
  assert.is(await resolveDataset(`hf://datasets/${DATASET}/images`, pyEnv), join(storageOf(py, DATASET, 'dataset'), 'snapshots', DS_COMMIT, 'images'));
  const other = await hubError(() => resolveDataset(`hf://datasets/${DATASET}/other`, pyEnv), 'folder not cached, no file list');
  assert.is(other.code, 'offline');
  assert.match(other.message, /^datasets\/org\/style-bench: the folder "other" is not in the Hugging Face cache .*HF_HUB_OFFLINE=0/);
});

test('hf:// dataset URIs: the parts as huggingface_hub parses them; malformed ones fail naming the URI and the expected form; other strings are local paths', async () => {
  const ok: [string, { repoId: string; revision: string | undefined; subfolder: string }][] = [
    ['hf://datasets/yiren98/Sref', { repoId: 'yiren98/Sref', revision: undefined, subfolder: '' }],
    ['hf://datasets/yiren98/IPref/', { repoId: 'yiren98/IPref', revision: undefined, subfolder: '' }],
    ['hf://datasets/org/name@v1.0/a/b', { repoId: 'org/name', revision: 'v1.0', subfolder: 'a/b' }],
    ['hf://datasets/org/name@refs/pr/3/train', { repoId: 'org/name', revision: 'refs/pr/3', subfolder: 'train' }],
    ['hf://datasets/org/name@refs/convert/parquet', { repoId: 'org/name', revision: 'refs/convert/parquet', subfolder: '' }],
    ['hf://datasets/org/name@feature%2Fx/data', { repoId: 'org/name', revision: 'feature/x', subfolder: 'data' }],
    ['hf://datasets/org/name/dir/file@1', { repoId: 'org/name', revision: undefined, subfolder: 'dir/file@1' }],
  ];
  for (const [spec, want] of ok) assert.equal(parseDatasetSpec(spec), want, spec);
  const bad: [string, RegExp][] = [
    ['hf://', /nothing after hf:\/\//],
    ['hf://org/name', /it names the model repository org\/name; a dataset is hf:\/\/datasets\/org\/name/],
    ['hf://models/org/name', /it names the model repository org\/name/],
    ['hf://datasets', /no repository id after "datasets"/],
    ['hf://datasets/', /no repository id/],
    ['hf://datasets/org', /the repository id must be org\/name, got "org"/],
    ['hf://datasets/@main', /no repository id before "@"/],
    ['hf://dataset/org/name', /the type prefix is plural: "datasets\/", not "dataset\/"/],
    ['hf://spaces/org/app', /spaces are not supported here/],
    ['hf://datasets/org/name@', /an empty revision after "@"/],
    ['hf://datasets/org/na--me', /is not a Hugging Face repo id/],
    ['hf://datasets/org/name/a//b', /"a\/\/b" is not a relative file path/],
    ['hf://datasets/org/name/a/../../x', /is not a relative file path/],
    ['hf://datasets/org/name@a/../b/c', /: "\.\.\/b\/c" is not a relative file path inside the repository/],
    ['hf://datasets/org/name@refs%2F..', /: "refs\/\.\." is not a revision/],
  ];
  for (const [spec, why] of bad) {
    const e = await hubError(() => resolveDataset(spec, { env: {}, offline: true }), spec);
    assert.is(e.code, 'invalid', spec);
    assert.ok(e.message.startsWith(`${spec}: not a Hugging Face dataset URI: `), e.message);
    assert.match(e.message, why, spec);
    assert.ok(e.message.endsWith('(expected hf://datasets/org/name[@revision][/folder])'), e.message);
    assert.not.match(e.message, /\n/);
  }
  // Not hf://: a local path, returned as it is, nothing asked (the bare datasets/org/name included).
  hub.clearLog();
  for (const local of ['datasets/org/name', './images', '/abs/images', 'hf:/datasets/org/name', 'C:\\data']) {
    assert.is(await resolveDataset(local, { ...opts(freshCache()) }), local);
  }
  assert.equal(hub.requests, []);
});

// Hostile answers: a hub, or a mirror or proxy behind HF_ENDPOINT, whose headers and listings carry
// paths where names belong. Each test's cache sits in a folder of its own, so that anything written
// outside the cache shows up beside it.
const HOSTILE = 'org/hostile';
const HOSTILE_COMMIT = gitBlobSha1(text('hostile commit'));
const HOSTILE_FILES: Record<string, FakeFile> = {
  'config.json': { content: text('{"hostile": true}\n') },
  'weights.safetensors': { content: bytes(70_000, 31), lfs: true },
};

function hostileRepo(extra: Record<string, FakeFile> = {}): void {
  hub.repos[HOSTILE] = { commit: HOSTILE_COMMIT, files: { ...HOSTILE_FILES, ...extra } };
  hub.resolveHeaders.clear();
  hub.extraTree.clear();
  hub.extraSiblings.clear();
  hub.shaOverride.clear();
  hub.intercept = undefined;
}

/** A cache folder alone in a folder of its own: `outside()` lists what appeared beside it. */
function isolatedCache(): { cache: string; root: string; outside: () => string[] } {
  const root = join(tmp, `isolated-${n++}`);
  const cache = join(root, 'cache');
  mkdirSync(cache, { recursive: true });
  return { cache, root, outside: () => readdirSync(root).filter((x) => x !== 'cache') };
}

test('a hostile ETag or commit from the HEAD never becomes a path: refused naming the header, nothing written outside the cache', async () => {
  const lfs = 'weights.safetensors';
  const sha = sha256Hex(HOSTILE_FILES[lfs]!.content);
  const cases: [string, Record<string, string | null>, RegExp][] = [
    // The reported case: X-Linked-Etag climbing out of blobs/ (here to the folder beside the cache).
    [lfs, { 'x-linked-etag': '"../../../x/PWNED"' }, /the X-Linked-Etag header of the answer to the HEAD for "weights\.safetensors" \(http:\/\/127\.0\.0\.1:\d+\/org\/hostile\/resolve\/main\/weights\.safetensors\) is "\.\.\/\.\.\/\.\.\/x\/PWNED", not the sha256 of an LFS file/],
    [lfs, { 'x-linked-etag': 'W/"../../../../tmp/x/PWNED"' }, /X-Linked-Etag header .* is "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/x\/PWNED", not the sha256/],
    // An LFS file whose ETag is not its sha256 cannot be checked: refused, not trusted.
    [lfs, { 'x-linked-etag': `"${gitBlobSha1(HOSTILE_FILES[lfs]!.content)}"` }, /X-Linked-Etag header .* is "[0-9a-f]{40}", not the sha256 of an LFS file \(expected 64 lowercase hex digits\); the file is not downloaded/],
    [lfs, { 'x-linked-etag': `"${sha.toUpperCase()}"` }, /not the sha256 of an LFS file/],
    [lfs, { 'x-linked-etag': null }, /X-Linked-Etag|ETag header .* not the sha256 of an LFS file/],
    [lfs, { 'x-repo-commit': '../../../x' }, /the X-Repo-Commit header of the answer to the HEAD for "weights\.safetensors" .* is "\.\.\/\.\.\/\.\.\/x", not a commit hash \(expected 40 lowercase hex digits\)/],
    ['config.json', { etag: '"../../../x/PWNED"' }, /the ETag header of the answer to the HEAD for "config\.json" .* is "\.\.\/\.\.\/\.\.\/x\/PWNED", not an ETag usable as a blob name in the cache/],
    ['config.json', { etag: '"..\\\\..\\\\x"' }, /ETag header .* not an ETag usable as a blob name/],
    ['config.json', { etag: '".."' }, /ETag header .* is "\.\.", not an ETag usable/],
    ['config.json', { etag: `"${'a'.repeat(40)}.incomplete"` }, /ETag header .* not an ETag usable/],
    ['config.json', { 'x-repo-commit': 'main' }, /X-Repo-Commit header .* is "main", not a commit hash/],
  ];
  for (const [path, headers, why] of cases) {
    hostileRepo();
    hub.resolveHeaders.set(`${HOSTILE}:${path}`, headers);
    const { cache, outside } = isolatedCache();
    const label = `${path} ${JSON.stringify(headers)}`;
    const e = await hubError(() => resolveModelFile(HOSTILE, path, opts(cache)), label);
    assert.is(e.code, 'protocol', label);
    assert.match(e.message, why, `${label}: ${e.message}`);
    assert.ok(e.message.startsWith('org/hostile: '), e.message);
    assert.not.match(e.message, /\n/);
    assert.equal(outside(), [], `${label}: nothing beside the cache`);
    const blobs = join(storageOf(cache, HOSTILE), 'blobs');
    assert.equal(existsSync(blobs) ? readdirSync(blobs) : [], [], `${label}: no blob, no .incomplete`);
    assert.not.ok(existsSync(join(cache, '.locks')), `${label}: no lock taken`);
  }
  // The same repo with honest headers downloads.
  hostileRepo();
  const { cache } = isolatedCache();
  assert.is(sha256Hex(readFileSync(await resolveModelFile(HOSTILE, lfs, opts(cache)))), sha);
});

test('an LFS file of the tree listing whose HEAD gives another ETag is refused, not downloaded unchecked', async () => {
  hostileRepo();
  // A mirror answering the HEAD of an LFS file directly (no redirect, no X-Linked-*), with a git ETag.
  hub.intercept = (req, res, u) => {
    if (req.method !== 'HEAD' || !u.pathname.endsWith('/org/hostile/resolve/' + HOSTILE_COMMIT + '/weights.safetensors')) return false;
    res.writeHead(200, { 'x-repo-commit': HOSTILE_COMMIT, etag: `"${gitBlobSha1(text('other'))}"`, 'content-length': '70000' });
    res.end();
    return true;
  };
  const { cache, outside } = isolatedCache();
  try {
    const e = await hubError(() => snapshotDownload(HOSTILE, opts(cache)), 'lfs etag');
    assert.is(e.code, 'protocol');
    assert.match(e.message, new RegExp(`org/hostile: the HEAD for "weights\\.safetensors" at ${HOSTILE_COMMIT} gave the ETag "[0-9a-f]{40}", but the tree listing gives the file's LFS sha256 as "${sha256Hex(HOSTILE_FILES['weights.safetensors']!.content)}"; the file is not downloaded`));
    assert.equal(outside(), []);
    assert.not.ok(existsSync(join(storageOf(cache, HOSTILE), 'snapshots', HOSTILE_COMMIT, 'weights.safetensors')));
  } finally {
    hub.intercept = undefined;
  }
});

test('file names from listings (tree, siblings), the revision sha and shard names never leave the repo: refused naming the listing or index', async () => {
  const treeCases: [unknown, RegExp][] = [
    [{ type: 'file', path: '../../../x/PWNED.json', size: 1, oid: 'a'.repeat(40) }, /"\.\.\/\.\.\/\.\.\/x\/PWNED\.json" is not a relative file path inside the repository \(it has a '\.\.' segment\)/],
    [{ type: 'file', path: '/etc/PWNED.json', size: 1, oid: 'a'.repeat(40) }, /"\/etc\/PWNED\.json" is not a relative file path .*\(it is absolute\)/],
    [{ type: 'file', path: 'unet\\..\\..\\PWNED.json', size: 1, oid: 'a'.repeat(40) }, /\(it contains a backslash/],
    [{ type: 'file', path: 'C:PWNED.json', size: 1, oid: 'a'.repeat(40) }, /\(it starts with a drive letter\)/],
    [{ type: 'file', path: 'a\u0000.json', size: 1, oid: 'a'.repeat(40) }, /\(it contains a NUL or another control character\)/],
    [{ type: 'file', path: 'a//b.json', size: 1, oid: 'a'.repeat(40) }, /\(it has empty or '\.' segments\)/],
    [{ type: 'file', path: 'b.safetensors', size: 1, oid: 'a'.repeat(40), lfs: { oid: '../x', size: 1 } }, /the LFS oid of "b\.safetensors" is "\.\.\/x", not a sha256/],
  ];
  for (const [entry, why] of treeCases) {
    hostileRepo();
    hub.extraTree.set(HOSTILE, [entry]);
    const { cache, outside } = isolatedCache();
    const e = await hubError(() => snapshotDownload(HOSTILE, opts(cache)), JSON.stringify(entry));
    assert.is(e.code, 'protocol');
    assert.match(e.message, /^org\/hostile: the snapshot is not in the Hugging Face cache \(.*\) and the hub answered: the tree listing http:\/\/127\.0\.0\.1:\d+\/api\/models\/org\/hostile\/tree\/[0-9a-f]{40}\?recursive=true/, e.message);
    assert.match(e.message, why, e.message);
    assert.equal(outside(), []);
    assert.not.ok(existsSync(join(storageOf(cache, HOSTILE), 'blobs')), 'nothing downloaded from a hostile listing');
  }
  hostileRepo();
  hub.extraSiblings.set(HOSTILE, ['../../../x/PWNED.json']);
  let e = await hubError(() => snapshotDownload(HOSTILE, opts(isolatedCache().cache)), 'siblings');
  assert.match(e.message, /the hub answered: a "siblings" entry of the repo info http:.*\/api\/models\/org\/hostile\/revision\/main: "\.\.\/\.\.\/\.\.\/x\/PWNED\.json" is not a relative file path/);
  hostileRepo();
  hub.shaOverride.set(HOSTILE, '../../../x');
  e = await hubError(() => snapshotDownload(HOSTILE, opts(isolatedCache().cache)), 'sha');
  assert.match(e.message, /the hub answered: the "sha" of the repo info for revision "main" \(http:.*\) is "\.\.\/\.\.\/\.\.\/x", not a commit hash/);

  // A shard index naming a shard outside its folder: refused before any shard is fetched.
  for (const shard of ['../../../../x/PWNED.safetensors', '/etc/PWNED.safetensors', '..\\PWNED.safetensors']) {
    const idx = { metadata: {}, weight_map: { 'w': shard } };
    hostileRepo({ 'unet/model.safetensors.index.json': { content: text(JSON.stringify(idx)) } });
    const { cache, outside } = isolatedCache();
    e = await hubError(() => snapshotDownload(HOSTILE, opts(cache, { select: { components: ['unet'] } } as DownloadOptions)), shard);
    assert.is(e.code, 'protocol');
    assert.match(e.message, /unet\/model\.safetensors\.index\.json: weight_map\["w"\] is ".*", not a shard file in the index's folder \(/, e.message);
    assert.equal(outside(), []);
  }
  hostileRepo();
  // The loader's side: openWeights on any model files refuses the same names.
  for (const shard of ['../x.safetensors', 'sub/../../x.safetensors', '/x.safetensors', '..\\x.safetensors', 'x\u0000.safetensors', 'C:x.safetensors']) {
    const files = new MemoryModelFiles('m', { 'unet/model.safetensors.index.json': JSON.stringify({ weight_map: { w: shard } }) });
    try {
      await openWeights(files, 'unet/model.safetensors.index.json');
      assert.unreachable(shard);
    } catch (err) {
      assert.instance(err, SafetensorsError, `${shard}: ${(err as Error).message}`);
      assert.match((err as Error).message, /m\/unet\/model\.safetensors\.index\.json: weight_map\["w"\] = ".*" is not a shard file name in this folder \(/);
    }
  }
});

test('cache files are read with the same care: a refs/ file or a trees/ listing naming paths outside the repo is refused, naming the file', async () => {
  hostileRepo();
  const { cache, outside } = isolatedCache();
  await snapshotDownload(HOSTILE, opts(cache));
  const storage = storageOf(cache, HOSTILE);
  writeFileSync(join(storage, 'refs', 'main'), '../../../x');
  let e = await hubError(() => snapshotDownload(HOSTILE, opts(cache, { offline: true })), 'ref');
  assert.is(e.code, 'filesystem');
  assert.match(e.message, /the cache file .*refs[/\\]main is "\.\.\/\.\.\/\.\.\/x", not a commit hash/);
  e = await hubError(() => resolveModelFile(HOSTILE, 'config.json', opts(cache, { offline: true })), 'ref, one file');
  assert.is(e.code, 'filesystem');
  writeFileSync(join(storage, 'refs', 'main'), HOSTILE_COMMIT);
  const tree = join(storage, 'trees', `${HOSTILE_COMMIT}.json`);
  writeFileSync(tree, JSON.stringify({ format_version: 1, files: { '../../../x/PWNED.json': { size: 1, blob_id: 'a'.repeat(40) } } }));
  e = await hubError(() => snapshotDownload(HOSTILE, opts(cache, { offline: true })), 'tree');
  assert.is(e.code, 'filesystem');
  assert.match(e.message, /the cache file .*\.json lists a file: "\.\.\/\.\.\/\.\.\/x\/PWNED\.json" is not a relative file path/);
  assert.equal(outside(), []);
});

test('a full disk fails at once, not retried as a broken connection: "no space left in <cache>" (EDQUOT, EROFS alike), the partial download deleted', async () => {
  const path = 'unet/diffusion_pytorch_model.safetensors';
  const sha = etagOf(path);
  const write = blobWriter.write;
  const reasons: [string, string][] = [
    ['ENOSPC', 'no space left'],
    ['EDQUOT', 'disk quota exceeded'],
    ['EROFS', 'read-only file system'],
  ];
  try {
    for (const [code, reason] of reasons) {
      const cache = freshCache();
      let written = 0;
      blobWriter.write = async (fh, chunk) => {
        if (written > 100_000) throw Object.assign(new Error(`${code}: simulated, write`), { code, errno: -28, syscall: 'write' });
        written += chunk.byteLength;
        return fh.write(chunk);
      };
      hub.clearLog();
      const started = Date.now();
      const e = await hubError(() => resolveModelFile(REPO, path, opts(cache, { retryDelayMs: 2000 })), code);
      assert.is(e.code, 'filesystem', code);
      assert.ok(e.message.startsWith(`org/tiny-sd: cannot download "${path}": ${reason} in ${cache} (${code} on `), e.message);
      assert.match(e.message, /; the partial download was deleted; /);
      assert.not.match(e.message, /broke off|resume|\n/);
      assert.ok(Date.now() - started < 2000, `${code}: no pause for a retry`);
      assert.is(hub.requestsFor(`/cdn/${sha}`).length, 1, `${code}: one GET, no retry`);
      assert.equal(readdirSync(join(storageOf(cache), 'blobs')), [], `${code}: neither the blob nor its .incomplete`);
      assert.not.ok(existsSync(join(storageOf(cache), 'snapshots', COMMIT, 'unet', 'diffusion_pytorch_model.safetensors')));
      assert.equal(readdirSync(join(cache, '.locks', 'models--org--tiny-sd')), [], `${code}: the lock released`);
    }
  } finally {
    blobWriter.write = write;
  }
  // Space again: the same call downloads.
  const cache = freshCache();
  assert.is(sha256Hex(readFileSync(await resolveModelFile(REPO, path, opts(cache)))), sha);
});

test('a redirect loop ends with "too many redirects" and the last URL, on the HEAD and on the download', async () => {
  hostileRepo();
  hub.intercept = (req, res, u) => {
    if (req.method === 'HEAD' && u.pathname.endsWith('/resolve/main/config.json')) {
      res.writeHead(302, { location: u.pathname });
      res.end();
      return true;
    }
    if (u.pathname === '/cdn/loop') {
      res.writeHead(302, { location: '/cdn/loop' });
      res.end();
      return true;
    }
    return false;
  };
  try {
    hub.clearLog();
    let e = await hubError(() => resolveModelFile(HOSTILE, 'config.json', opts(freshCache())), 'HEAD loop');
    assert.is(e.code, 'protocol');
    assert.match(e.message, /^org\/hostile: "config\.json" is not in the Hugging Face cache \(.*\) and the hub answered: too many redirects \(more than 10\) on the HEAD for "config\.json"; the last one, from http:\/\/127\.0\.0\.1:\d+\/org\/hostile\/resolve\/main\/config\.json, went to http:\/\/127\.0\.0\.1:\d+\/org\/hostile\/resolve\/main\/config\.json/);
    assert.not.match(e.message, /X-Repo-Commit/);
    assert.is(hub.requestsFor('/org/hostile/resolve/main/config.json').length, 11);
    // The GET of an LFS file from a CDN that redirects to itself.
    hub.resolveHeaders.set(`${HOSTILE}:weights.safetensors`, { location: `${hub.url.replace('127.0.0.1', 'localhost')}/cdn/loop` });
    hub.clearLog();
    e = await hubError(() => resolveModelFile(HOSTILE, 'weights.safetensors', opts(freshCache())), 'GET loop');
    assert.is(e.code, 'protocol');
    assert.match(e.message, /too many redirects from http:\/\/localhost:\d+\/cdn\/loop for "weights\.safetensors"/);
    assert.is(hub.requests.filter((r) => r.url === '/cdn/loop').length, 21, 'one fetch (20 redirects), not retried');
  } finally {
    hostileRepo();
  }
});

test.run();

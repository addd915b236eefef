import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeHub, bytes, gitBlobSha1, sha256Hex, text, type FakeFile } from './hub-server.js';
import { scanLikePython, snapshotLinks, writePythonCache } from './hub-layout.js';
import {
  CACHED_NO_EXIST,
  HubError,
  hubCacheDir,
  hubSettings,
  filterRepoPaths,
  parseModelSpec,
  readTreeCache,
  resolveModel,
  resolveModelFile,
  selectRepoFiles,
  snapshotDownload,
  stderrProgress,
  tryToLoadFromCache,
  type DownloadOptions,
  type DownloadProgress,
} from '../src/hub/index.js';

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

const hub = new FakeHub({
  [REPO]: { commit: COMMIT, files: FILES },
  [PRIVATE]: { commit: PRIVATE_COMMIT, token: 'hf_secret', files: { 'config.json': { content: text('{"private": true}') }, 'model.safetensors': { content: bytes(5000, 77), lfs: true } } },
  [GATED]: { commit: PRIVATE_COMMIT, token: 'hf_gate', gated: true, files: { 'config.json': { content: text('{}') } } },
});

const tmp = mkdtempSync(join(tmpdir(), 'diffsim-hub-'));
let n = 0;
function freshCache(): string {
  const d = join(tmp, `cache-${n++}`);
  mkdirSync(d);
  return d;
}

/** Options isolated from the environment of the machine running the tests. */
function opts(cacheDir: string, extra: DownloadOptions = {}): DownloadOptions {
  return { env: {}, cacheDir, endpoint: hub.url, onProgress: false, retryDelayMs: 5, ...extra };
}

function storageOf(cacheDir: string, repoId = REPO): string {
  return join(cacheDir, ['models', ...repoId.split('/')].join('--'));
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
  const folder = await snapshotDownload(REPO, { env, onProgress: false, select: SELECT });
  assert.is(folder, join(storageOf(cache), 'snapshots', COMMIT));
  const file = await resolveModelFile(REPO, 'unet/diffusion_pytorch_model.safetensors', { env, onProgress: false });
  assert.ok(same(readFileSync(file), FILES['unet/diffusion_pytorch_model.safetensors']!.content));
  assert.is(await resolveModel(REPO, { env, onProgress: false, select: SELECT }), folder);
  // Offline means no request at all, even with a hub that answers.
  hub.clearLog();
  const online = { ...opts(cache), env: { HF_HUB_OFFLINE: '1' }, select: SELECT };
  assert.is(await snapshotDownload(REPO, online), folder);
  assert.is(await resolveModelFile(REPO, 'unet/config.json', { ...opts(cache), env: { HF_HUB_OFFLINE: 'true' } }), join(folder, 'unet', 'config.json'));
  assert.equal(hub.requests, [], 'HF_HUB_OFFLINE: nothing sent');
  // Not offline, but nothing listens: the same answers from the cache.
  const down = { env: { HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint }, onProgress: false as const };
  assert.is(await snapshotDownload(REPO, { ...down, select: SELECT }), folder);
  assert.is(await resolveModelFile(REPO, 'unet/config.json', down), join(folder, 'unet', 'config.json'));
  // Offline, a selection the cache cannot satisfy is reported, not returned half done.
  const e = await hubError(() => snapshotDownload(REPO, { env, onProgress: false, select: { ...SELECT, variant: 'fp16' } }), 'fp16 not cached');
  assert.is(e.code, 'incomplete');
  assert.match(e.message, /unet\/diffusion_pytorch_model\.fp16\.safetensors/);
});

test('offline with an empty cache fails with one clear line naming the repo and the file, and the fix', async () => {
  const cache = freshCache();
  const env = { HF_HUB_OFFLINE: 'yes', HF_HUB_CACHE: cache };
  const e = await hubError(() => resolveModelFile(REPO, 'unet/config.json', { env, onProgress: false }), 'offline file');
  assert.is(e.code, 'offline');
  assert.not.match(e.message, /\n/, 'one line');
  assert.match(e.message, /^org\/tiny-sd: "unet\/config\.json" is not in the Hugging Face cache/);
  assert.match(e.message, /HF_HUB_OFFLINE=0/);
  assert.match(e.message, /local folder/);
  assert.is(e.repoId, REPO);
  assert.is(e.path, 'unet/config.json');
  const s = await hubError(() => resolveModel(REPO, { env, onProgress: false }), 'offline snapshot');
  assert.is(s.code, 'offline');
  assert.not.match(s.message, /\n/);
  assert.match(s.message, /^org\/tiny-sd: .*HF_HUB_OFFLINE=0.*local folder/);
  // Connection refused, nothing cached: one line as well, naming repo and file.
  const dead = new FakeHub({});
  const endpoint = await dead.start();
  await dead.stop();
  const c = await hubError(() => resolveModelFile(REPO, 'unet/config.json', { env: { HF_HUB_CACHE: cache }, endpoint, onProgress: false }), 'refused');
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
  const file = await resolveModelFile(PRIVATE, 'config.json', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret', HF_HUB_CACHE: cache }, onProgress: false });
  assert.is(readFileSync(file, 'utf8'), '{"private": true}');
  assert.ok(hub.requests.length > 0, 'HF_ENDPOINT used');
  assert.ok(hub.requests.every((r) => r.headers.authorization === 'Bearer hf_secret'), 'every request carries the token');
  // The token goes to the hub, and to a redirect target on the same host, but not to a CDN elsewhere.
  hub.clearLog();
  await resolveModelFile(PRIVATE, 'model.safetensors', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret', HF_HUB_CACHE: cache }, onProgress: false });
  assert.is(hub.requestsFor('/cdn/')[0]!.headers.authorization, 'Bearer hf_secret', 'same host: kept');
  hub.cdnHost = 'localhost';
  try {
    hub.clearLog();
    await resolveModelFile(PRIVATE, 'model.safetensors', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret' }, cacheDir: freshCache(), onProgress: false });
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
  const viaFile = await resolveModelFile(PRIVATE, 'config.json', { env: { HF_HOME: home, HF_ENDPOINT: hub.url }, onProgress: false, revision: PRIVATE_COMMIT });
  assert.is(realpathSync(viaFile), realpathSync(join(home, 'hub', 'models--org--private', 'blobs', gitBlobSha1(text('{"private": true}')))));
  // The options object wins over the environment.
  hub.clearLog();
  const e = await hubError(() => resolveModelFile(PRIVATE, 'config.json', { env: { HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret' }, cacheDir: freshCache(), token: 'hf_wrong', onProgress: false }), 'explicit token');
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
  const w = await resolveModelFile('facebook/dinov2-small', 'model.safetensors', { env, onProgress: false });
  assert.ok(same(readFileSync(w), weights));
  const missing = await hubError(() => resolveModelFile('facebook/dinov2-small', 'model.safetensors.index.json', { env, onProgress: false }), '.no_exist');
  assert.is(missing.code, 'entry-not-found');
  assert.is(await resolveModel('facebook/dinov2-small', { env, onProgress: false }), snap, 'the default selection for DINOv2 is satisfied');
  assert.is(await snapshotDownload('facebook/dinov2-small', { env, onProgress: false, revision: commit }), snap);
  // On systems without symlinks huggingface_hub copies the files into the snapshot.
  const copies = freshCache();
  writePythonCache(copies, 'openai/clip-vit-base-patch32', commit, [{ path: 'config.json', content: cfg, etag: gitBlobSha1(cfg) }], { revision: 'main', copies: true });
  const copied = await resolveModelFile('openai/clip-vit-base-patch32', 'config.json', { env: { HF_HUB_CACHE: copies, HF_HUB_OFFLINE: '1' }, onProgress: false });
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
  const moduleUrl = new URL('../src/hub/index.js', import.meta.url).href;
  const script = `const { resolveModelFile } = await import(${JSON.stringify(moduleUrl)});
const f = await resolveModelFile(${JSON.stringify(REPO)}, ${JSON.stringify(path)}, { env: {}, cacheDir: ${JSON.stringify(cache)}, endpoint: ${JSON.stringify(hub.url)}, onProgress: false });
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

test('progress: rate and ETA through the callback; the default reporter writes one line per file to stderr when not a TTY, nothing to stdout', async () => {
  const cache = freshCache();
  const events: DownloadProgress[] = [];
  await resolveModelFile(REPO, 'unet/diffusion_pytorch_model.safetensors', opts(cache, { onProgress: (p) => events.push({ ...p }) }));
  assert.is(events[0]!.phase, 'start');
  assert.is(events.at(-1)!.phase, 'done');
  assert.is(events.at(-1)!.loaded, 300_000);
  assert.is(events.at(-1)!.total, 300_000);
  const mid = events.filter((e) => e.phase === 'progress');
  assert.ok(mid.length >= 1);
  assert.ok(mid.every((e, i) => i === 0 || e.loaded >= mid[i - 1]!.loaded), 'monotonic');
  assert.ok(mid.some((e) => e.rate > 0 && e.etaSeconds !== null), 'rate and ETA reported');
  const lines: string[] = [];
  const report = stderrProgress({ isTTY: false, write: (t: string) => lines.push(t) });
  const stdout = process.stdout.write.bind(process.stdout);
  let wroteStdout = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    wroteStdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await snapshotDownload(REPO, { ...opts(freshCache()), select: { components: ['unet', 'tokenizer'] }, onProgress: report });
  } finally {
    process.stdout.write = stdout;
  }
  assert.is(wroteStdout, '', 'nothing on stdout');
  assert.is(lines.length, 4, 'one line per finished file');
  assert.ok(lines.every((l) => l.endsWith('\n') && !l.includes('\r')));
  assert.ok(lines.some((l) => /^org\/tiny-sd: unet\/diffusion_pytorch_model\.safetensors 300 kB in \d+ s/.test(l)));
  const tty: string[] = [];
  const bar = stderrProgress({ isTTY: true, columns: 80, write: (t: string) => tty.push(t) });
  await resolveModelFile(REPO, 'unet/diffusion_pytorch_model.safetensors', opts(freshCache(), { onProgress: bar }));
  assert.ok(tty.some((t) => t.startsWith('\r\x1b[K') && / ETA |%/.test(t)), 'a redrawn bar on a terminal');
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

test.run();

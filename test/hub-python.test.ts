// Interoperability with Python's huggingface_hub, both ways, against the fake hub. Runs when a
// Python with huggingface_hub is found: $HUB_TEST_PYTHON, else `python3`. Otherwise it registers no
// test and says so on stderr.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHub, bytes, gitBlobSha1, sha256Hex, text, type FakeFile } from './hub-server.js';
import { CACHED_NO_EXIST, readTreeCache, resolveModelFile, snapshotDownload, tryToLoadFromCache } from '../src/hub/index.js';

const PYTHON = process.env.HUB_TEST_PYTHON ?? 'python3';
const probe = spawnSync(PYTHON, ['-c', 'import huggingface_hub; print(huggingface_hub.__version__)'], { encoding: 'utf8' });
const version = probe.status === 0 ? probe.stdout.trim() : undefined;

const REPO = 'org/py-interop';
const COMMIT = gitBlobSha1(text('interop commit'));
const FILES: Record<string, FakeFile> = {
  'model_index.json': { content: text('{"_class_name": "StableDiffusionPipeline"}\n') },
  'unet/config.json': { content: text('{"sample_size": 8}\n') },
  'unet/diffusion_pytorch_model.safetensors': { content: bytes(120_000, 11), lfs: true },
  'unet/diffusion_pytorch_model.bin': { content: bytes(10_000, 12), lfs: true },
  'tokenizer/vocab.json': { content: text('{"a": 0}\n') },
};
const SELECTED = ['model_index.json', 'tokenizer/vocab.json', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors'];

const hub = new FakeHub({ [REPO]: { commit: COMMIT, files: FILES } });
hub.cdnHost = 'localhost';
const tmp = mkdtempSync(join(tmpdir(), 'diffsim-hub-py-'));
if (!version) rmSync(tmp, { recursive: true, force: true });

/** Runs a Python snippet (asynchronously: the fake hub answers from this process) and parses the
 *  JSON it prints last. */
async function python(code: string, args: string[], env: Record<string, string> = {}): Promise<unknown> {
  const home = join(tmp, 'hf-home');
  mkdirSync(home, { recursive: true });
  const child = spawn(PYTHON, ['-c', code, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: tmp, HF_HOME: home, HF_ENDPOINT: hub.url, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HUB_DISABLE_XET: '1', NO_PROXY: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const status = await new Promise<number | null>((r) => child.on('close', r));
  if (status !== 0) throw new Error(`python exited with ${status}: ${err.slice(-2000)}`);
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const SCAN = `
import json, sys
from huggingface_hub import scan_cache_dir, try_to_load_from_cache, snapshot_download, hf_hub_download
from huggingface_hub.file_download import _CACHED_NO_EXIST
cache, repo = sys.argv[1], sys.argv[2]
info = scan_cache_dir(cache)
out = {"warnings": [str(w) for w in info.warnings], "incomplete": len(info.incomplete_files) if hasattr(info, "incomplete_files") else 0, "repos": {}}
for r in info.repos:
    out["repos"][r.repo_id] = {rev.commit_hash: {"refs": sorted(rev.refs), "files": sorted(str(f.file_path.relative_to(rev.snapshot_path)) for f in rev.files)} for rev in r.revisions}
def tri(p):
    v = try_to_load_from_cache(repo, p, cache_dir=cache)
    return v if isinstance(v, str) else ("NO_EXIST" if v is _CACHED_NO_EXIST else None)
out["try"] = {p: tri(p) for p in sys.argv[3:]}
out["snapshot_offline"] = snapshot_download(repo, cache_dir=cache, local_files_only=True, allow_patterns=["unet/*.safetensors", "*.json"])
out["file_offline"] = hf_hub_download(repo, "unet/diffusion_pytorch_model.safetensors", cache_dir=cache, local_files_only=True)
print(json.dumps(out))
`;

const ONLINE = `
import json, sys
from huggingface_hub import snapshot_download, hf_hub_download
cache, repo = sys.argv[1], sys.argv[2]
a = hf_hub_download(repo, "unet/diffusion_pytorch_model.safetensors", cache_dir=cache)
b = snapshot_download(repo, cache_dir=cache, allow_patterns=sys.argv[3:])
print(json.dumps({"file": a, "snapshot": b}))
`;

const FILL = `
import json, sys
from huggingface_hub import snapshot_download, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
cache, repo = sys.argv[1], sys.argv[2]
folder = snapshot_download(repo, cache_dir=cache, allow_patterns=sys.argv[3:])
try:
    hf_hub_download(repo, "unet/missing.json", cache_dir=cache)
    missing = "found?"
except EntryNotFoundError:
    missing = "EntryNotFound"
print(json.dumps({"folder": folder, "missing": missing}))
`;

if (!version) {
  process.stderr.write(`hub-python: no Python with huggingface_hub (${PYTHON}); set HUB_TEST_PYTHON to run the interoperability tests\n`);
} else {
  test.before(async () => {
    await hub.start();
  });
  test.after(async () => {
    await hub.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test(`a cache filled by this module is recognised by huggingface_hub ${version}: scan_cache_dir, try_to_load_from_cache, offline and online downloads`, async () => {
    const cache = join(tmp, 'ours');
    mkdirSync(cache);
    const o = { env: {}, cacheDir: cache, endpoint: hub.url, onProgress: false as const };
    const folder = await snapshotDownload(REPO, { ...o, select: { components: ['', 'unet', 'tokenizer'] } });
    await resolveModelFile(REPO, 'unet/missing.json', o).catch(() => undefined);
    const r = (await python(SCAN, [cache, REPO, 'unet/config.json', 'unet/missing.json', 'unet/diffusion_pytorch_model.bin'])) as {
      warnings: string[];
      incomplete: number;
      repos: Record<string, Record<string, { refs: string[]; files: string[] }>>;
      try: Record<string, string | null>;
      snapshot_offline: string;
      file_offline: string;
    };
    assert.equal(r.warnings, [], 'scan_cache_dir: no corruption');
    assert.is(r.incomplete, 0);
    assert.equal(r.repos[REPO], { [COMMIT]: { refs: ['main'], files: SELECTED } });
    assert.is(r.try['unet/config.json'], join(folder, 'unet', 'config.json'));
    assert.is(r.try['unet/missing.json'], 'NO_EXIST');
    assert.is(r.try['unet/diffusion_pytorch_model.bin'], null);
    assert.is(r.snapshot_offline, folder, 'snapshot_download(local_files_only) accepts the snapshot (and our trees/ file)');
    assert.is(r.file_offline, join(folder, 'unet', 'diffusion_pytorch_model.safetensors'));
    hub.clearLog();
    const online = (await python(ONLINE, [cache, REPO, ...SELECTED])) as { file: string; snapshot: string };
    assert.is(online.snapshot, folder);
    assert.equal(
      hub.requests.map((q) => `${q.method} ${decodeURIComponent(q.url.split('?')[0]!)}`),
      [`HEAD /${REPO}/resolve/main/unet/diffusion_pytorch_model.safetensors`, `GET /api/models/${REPO}/revision/main`],
      'Python downloads nothing again: one HEAD, one revision look-up, the file list read from our trees/<commit>.json',
    );
  });

  test(`a cache filled by huggingface_hub ${version} is used by this module offline, and online without downloading again`, async () => {
    const cache = join(tmp, 'python');
    mkdirSync(cache);
    const r = (await python(FILL, [cache, REPO, ...SELECTED])) as { folder: string; missing: string };
    assert.is(r.missing, 'EntryNotFound');
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    const o = { env, onProgress: false as const };
    assert.is(await snapshotDownload(REPO, { ...o, select: { components: ['', 'unet', 'tokenizer'] } }), r.folder);
    const w = await resolveModelFile(REPO, 'unet/diffusion_pytorch_model.safetensors', o);
    assert.is(sha256Hex(readFileSync(w)), sha256Hex(FILES['unet/diffusion_pytorch_model.safetensors']!.content));
    assert.is(await tryToLoadFromCache(REPO, 'unet/missing.json', 'main', { env }), CACHED_NO_EXIST);
    const tree = await readTreeCache(join(cache, 'models--org--py-interop'), COMMIT);
    assert.ok(tree, "Python's trees/<commit>.json is readable");
    assert.is(tree!.get('unet/diffusion_pytorch_model.safetensors')?.lfs_sha256, sha256Hex(FILES['unet/diffusion_pytorch_model.safetensors']!.content));
    hub.clearLog();
    await snapshotDownload(REPO, { env: {}, cacheDir: cache, endpoint: hub.url, onProgress: false, select: { components: ['', 'unet', 'tokenizer'] } });
    assert.equal(hub.requests.map((q) => `${q.method} ${q.url}`), [`GET /api/models/${REPO}/revision/main`], 'only the revision look-up');
  });
}

test.run();

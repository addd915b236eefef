// Interoperability with Python's huggingface_hub, both ways, against the fake hub. Runs when a
// Python with huggingface_hub is found: $HUB_TEST_PYTHON, else `python3`. Otherwise it registers no
// test and says so on stderr.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHub, bytes, gitBlobSha1, sha256Hex, text, type FakeFile } from '../support/hub-server.js';
import { CACHED_NO_EXIST, parseDatasetSpec, readTreeCache, resolveDataset, resolveModelFile, snapshotDownload, tryToLoadFromCache } from '../../src/hub/index.js';

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

const DATASET = 'org/py-bench';
const DS_COMMIT = gitBlobSha1(text('interop dataset commit'));
const DS_FILES: Record<string, FakeFile> = {
  'README.md': { content: text('# bench\n') },
  'images/a.png': { content: bytes(40_000, 13), lfs: true },
  'images/sub/b.png': { content: bytes(9_000, 14), lfs: true },
  'prompts.json': { content: text('["a cat"]\n') },
};
const DS_ALL = Object.keys(DS_FILES).sort();

const hub = new FakeHub({ [REPO]: { commit: COMMIT, files: FILES } }, { [DATASET]: { commit: DS_COMMIT, files: DS_FILES } });
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

const SCAN_DATASET = `
import json, sys
from huggingface_hub import scan_cache_dir, try_to_load_from_cache, snapshot_download
cache, repo = sys.argv[1], sys.argv[2]
info = scan_cache_dir(cache)
out = {"warnings": [str(w) for w in info.warnings], "repos": []}
for r in info.repos:
    out["repos"].append({"id": r.repo_id, "type": r.repo_type, "revisions": {rev.commit_hash: {"refs": sorted(rev.refs), "files": sorted(str(f.file_path.relative_to(rev.snapshot_path)) for f in rev.files)} for rev in r.revisions}})
out["try"] = {p: try_to_load_from_cache(repo, p, cache_dir=cache, repo_type="dataset") for p in sys.argv[3:]}
out["try_as_model"] = try_to_load_from_cache(repo, sys.argv[3], cache_dir=cache)
out["snapshot_offline"] = snapshot_download(repo, repo_type="dataset", cache_dir=cache, local_files_only=True)
print(json.dumps(out))
`;

const ONLINE_DATASET = `
import json, sys
from huggingface_hub import snapshot_download
cache, repo = sys.argv[1], sys.argv[2]
print(json.dumps({"snapshot": snapshot_download(repo, repo_type="dataset", cache_dir=cache)}))
`;

const FILL_DATASET = `
import json, sys
from huggingface_hub import snapshot_download
cache, repo = sys.argv[1], sys.argv[2]
print(json.dumps({"folder": snapshot_download(repo, repo_type="dataset", cache_dir=cache)}))
`;

const PARSE_URIS = `
import json, sys
try:
    from huggingface_hub.utils._hf_uris import parse_hf_uri
except ImportError:
    print(json.dumps(None))
    sys.exit(0)
out = {}
for uri in sys.argv[1:]:
    try:
        u = parse_hf_uri(uri)
        out[uri] = {"type": u.type, "id": u.id, "revision": u.revision, "path": u.path_in_repo}
    except Exception as e:
        out[uri] = {"error": type(e).__name__}
print(json.dumps(out))
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
    const o = { env: {}, cacheDir: cache, endpoint: hub.url };
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
    const o = { env };
    assert.is(await snapshotDownload(REPO, { ...o, select: { components: ['', 'unet', 'tokenizer'] } }), r.folder);
    const w = await resolveModelFile(REPO, 'unet/diffusion_pytorch_model.safetensors', o);
    assert.is(sha256Hex(readFileSync(w)), sha256Hex(FILES['unet/diffusion_pytorch_model.safetensors']!.content));
    assert.is(await tryToLoadFromCache(REPO, 'unet/missing.json', 'main', { env }), CACHED_NO_EXIST);
    const tree = await readTreeCache(join(cache, 'models--org--py-interop'), COMMIT);
    assert.ok(tree, "Python's trees/<commit>.json is readable");
    assert.is(tree!.get('unet/diffusion_pytorch_model.safetensors')?.lfs_sha256, sha256Hex(FILES['unet/diffusion_pytorch_model.safetensors']!.content));
    hub.clearLog();
    await snapshotDownload(REPO, { env: {}, cacheDir: cache, endpoint: hub.url, select: { components: ['', 'unet', 'tokenizer'] } });
    assert.equal(hub.requests.map((q) => `${q.method} ${q.url}`), [`GET /api/models/${REPO}/revision/main`], 'only the revision look-up');
  });
  test(`a dataset cache filled by this module is recognised by huggingface_hub ${version}: scan_cache_dir (repo_type dataset), try_to_load_from_cache(repo_type="dataset"), snapshot_download`, async () => {
    const cache = join(tmp, 'ours-dataset');
    mkdirSync(cache);
    const folder = await resolveDataset(`hf://datasets/${DATASET}`, { env: {}, cacheDir: cache, endpoint: hub.url });
    const r = (await python(SCAN_DATASET, [cache, DATASET, 'images/a.png', 'images/sub/b.png', 'missing.json'])) as {
      warnings: string[];
      repos: { id: string; type: string; revisions: Record<string, { refs: string[]; files: string[] }> }[];
      try: Record<string, string | null>;
      try_as_model: string | null;
      snapshot_offline: string;
    };
    assert.equal(r.warnings, [], 'scan_cache_dir: no corruption');
    assert.equal(r.repos, [{ id: DATASET, type: 'dataset', revisions: { [DS_COMMIT]: { refs: ['main'], files: DS_ALL } } }]);
    assert.is(r.try['images/a.png'], join(folder, 'images', 'a.png'));
    assert.is(r.try['images/sub/b.png'], join(folder, 'images', 'sub', 'b.png'));
    assert.is(r.try['missing.json'], null);
    assert.is(r.try_as_model, null, 'not in the model cache');
    assert.is(r.snapshot_offline, folder);
    hub.clearLog();
    const online = (await python(ONLINE_DATASET, [cache, DATASET])) as { snapshot: string };
    assert.is(online.snapshot, folder);
    assert.equal(
      hub.requests.map((q) => `${q.method} ${q.url.split('?')[0]}`),
      [`GET /api/datasets/${DATASET}/revision/main`],
      'Python downloads nothing again: the revision look-up, the file list from our trees/<commit>.json',
    );
  });

  test(`a dataset cache filled by huggingface_hub ${version} snapshot_download(repo_type="dataset") is used by this module offline`, async () => {
    const cache = join(tmp, 'python-dataset');
    mkdirSync(cache);
    hub.clearLog();
    const r = (await python(FILL_DATASET, [cache, DATASET])) as { folder: string };
    assert.is(hub.requests[0] && `${hub.requests[0].method} ${hub.requests[0].url.split('?')[0]}`, `GET /api/datasets/${DATASET}/revision/main`, 'Python asked the dataset route');
    assert.is(r.folder, join(cache, 'datasets--org--py-bench', 'snapshots', DS_COMMIT));
    hub.clearLog();
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    const o = { env };
    assert.is(await resolveDataset(`hf://datasets/${DATASET}`, o), r.folder);
    assert.is(await resolveDataset(`hf://datasets/${DATASET}@main/images`, o), join(r.folder, 'images'));
    assert.is(await resolveDataset(`hf://datasets/${DATASET}@${DS_COMMIT}/images/sub`, o), join(r.folder, 'images', 'sub'));
    const a = await resolveModelFile(DATASET, 'images/a.png', { ...o, repoType: 'dataset' });
    assert.is(sha256Hex(readFileSync(a)), sha256Hex(DS_FILES['images/a.png']!.content));
    assert.is(await tryToLoadFromCache(DATASET, 'prompts.json', 'main', { env, repoType: 'dataset' }), join(r.folder, 'prompts.json'));
    assert.ok((await readTreeCache(join(cache, 'datasets--org--py-bench'), DS_COMMIT))?.has('images/sub/b.png'), "Python's trees/<commit>.json is readable");
    assert.equal(hub.requests, [], 'offline: nothing sent');
  });

  test(`hf:// URIs split into repo, revision and folder as huggingface_hub ${version} parse_hf_uri splits them`, async () => {
    const uris = ['hf://datasets/yiren98/Sref', 'hf://datasets/org/name@v1/a/b', 'hf://datasets/org/name@refs/pr/3/train', 'hf://datasets/org/name@refs/convert/parquet', 'hf://datasets/org/name@feature%2Fx/data', 'hf://datasets/org/name/dir/file@1', 'hf://datasets/org/name/', 'hf://datasets/org', 'hf://dataset/org/name', 'hf://datasets/org/name@', 'hf://datasets/org/na--me'];
    const py = (await python(PARSE_URIS, uris)) as Record<string, { type?: string; id?: string; revision?: string | null; path?: string; error?: string }> | null;
    if (py === null) {
      process.stderr.write(`hub-python: huggingface_hub ${version} has no parse_hf_uri; URI parsing not compared\n`);
      return;
    }
    for (const uri of uris) {
      const want = py[uri]!;
      let got: { type?: string; id?: string; revision?: string | null; path?: string; error?: string };
      try {
        const d = parseDatasetSpec(uri);
        got = { type: 'dataset', id: d.repoId, revision: d.revision ?? null, path: d.subfolder };
      } catch {
        got = { error: 'HfUriError' };
      }
      assert.equal(got, want.error ? { error: 'HfUriError' } : want, uri);
    }
  });

}

test.run();

// Lazy-loading benchmark: writes a synthetic safetensors file with the SD1.5 U-Net's tensor names
// and shapes (F32 ≈ 3.4 GB, or F16 with --f16), streaming it to disk, then loads it tensor by
// tensor (positioned reads) and reports the time and the peak resident memory. With --upload each
// tensor is also uploaded to the GPU (on a software adapter GPU memory is host memory and counts in
// RSS; on a real GPU it does not).
//
//   node build/bench/load.js [--f16] [--upload] [--dir DIR] [--keep]

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, SAFETENSORS_DTYPES } from '../src/io/safetensors.js';
import { Runtime } from '../src/gpu/runtime.js';

const here = dirname(fileURLToPath(import.meta.url));
const manifestPath = join(here, '..', '..', 'test', 'fixtures', 'manifests', 'sd15-unet.json');

function parse(argv: string[]) {
  const a = { f16: false, upload: false, dir: '', keep: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--f16') a.f16 = true;
    else if (argv[i] === '--upload') a.upload = true;
    else if (argv[i] === '--keep') a.keep = true;
    else if (argv[i] === '--dir') a.dir = argv[++i]!;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return a;
}

/** Streams a safetensors file to disk in 16 MiB chunks (never the whole file in memory). */
function writeSynthetic(path: string, tensors: [string, number[]][], dtype: 'F32' | 'F16'): number {
  const item = SAFETENSORS_DTYPES[dtype];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', description: 'synthetic SD1.5 U-Net layout' } };
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * item;
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(path, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeSync(fd, len);
  writeSync(fd, json);
  const chunk = new Float32Array(4 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = Math.sin(i) * 0.05;
  const chunkBytes = new Uint8Array(chunk.buffer);
  let left = offset;
  while (left > 0) {
    const n = Math.min(left, chunkBytes.byteLength);
    writeSync(fd, chunkBytes, 0, n);
    left -= n;
  }
  closeSync(fd);
  return 8 + Buffer.byteLength(json) + offset;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { tensors: Record<string, { shape: number[] }> };
  const tensors = Object.entries(manifest.tensors).map(([n, t]) => [n, t.shape] as [string, number[]]);
  const dir = args.dir || mkdtempSync(join(tmpdir(), 'diffsim-load-'));
  const path = join(dir, `unet-synthetic-${args.f16 ? 'f16' : 'f32'}.safetensors`);
  let t0 = performance.now();
  const size = writeSynthetic(path, tensors, args.f16 ? 'F16' : 'F32');
  console.log(`wrote ${path}: ${(size / 1e9).toFixed(2)} GB, ${tensors.length} tensors in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const rt = args.upload ? await Runtime.create() : null;
  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  t0 = performance.now();
  const file = await SafetensorsFile.open(path);
  const openMs = performance.now() - t0;
  let bytesRead = 0;
  let checksum = 0;
  const uploaded = [];
  for (const name of file.names()) {
    const { shape, data } = await file.readFloat32(name);
    bytesRead += file.info(name).end - file.info(name).begin;
    checksum += data[data.length - 1] ?? 0;
    if (rt) uploaded.push(rt.upload(data, shape));
    const rss = process.memoryUsage().rss;
    if (rss > peakRss) peakRss = rss;
  }
  if (rt) await rt.sync();
  const loadMs = performance.now() - t0;
  await file.close();
  const report = {
    file: path,
    bytes: size,
    tensors: tensors.length,
    dtype: args.f16 ? 'F16 (converted to f32 on read)' : 'F32',
    upload: args.upload ? rt!.adapterInfo.description : false,
    headerOpenMs: Number(openMs.toFixed(2)),
    loadSeconds: Number((loadMs / 1000).toFixed(2)),
    readGBps: Number((bytesRead / (loadMs * 1e6)).toFixed(2)),
    rssBeforeMB: Math.round(rssBefore / 2 ** 20),
    peakRssMB: Math.round(peakRss / 2 ** 20),
    maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    gpuAllocatedMB: rt ? Math.round(rt.memory().allocatedBytes / 2 ** 20) : 0,
    checksum,
  };
  console.log(JSON.stringify(report, null, 2));
  for (const t of uploaded) t.dispose();
  await rt?.close();
  if (!args.keep) rmSync(args.dir ? path : dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(`load bench: ${(e as Error).message}`);
  process.exit(1);
});

#!/usr/bin/env bash
# Ours (bench/diffsim.ts on the local WebGPU adapter, e.g. Mesa lavapipe on the CPU) against PyTorch
# on the CPU (bench/torch_diffsim.py --device cpu, fp32), on the same shapes, back to back, for each
# size (default 64 and 256). Writes bench/results/cpu-peer-<adapter>.json with both runs and the
# ratios (ours / PyTorch, per stage) and prints the Markdown table for bench/README.md.
#
#   bash bench/cpu-peer.sh [SIZE ...]        (environment: ITERS=1, PYTHON=/usr/bin/python3,
#                                             THREADS=$(nproc) for PyTorch, OUT=bench/results)
#
# The PyTorch side needs Debian's python3-torch (installed here with apt-get when `import torch`
# fails) and diffusers 0.29.2 in .torchdeps (bench/torch-deps.sh, run when .torchdeps is absent).
# PyTorch gets as many threads as lavapipe has (both default to every core; Debian's torch
# otherwise starts with one). On a shared machine the absolute times are noisy: the two sides run
# back to back per size, and the ratios are what to compare.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(64 256)
ITERS=${ITERS:-1}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-bench/results}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "cpu-peer: installing Debian's python3-torch" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends python3-torch >&2
fi
[ -d .torchdeps/python/diffusers ] || bash bench/torch-deps.sh >&2
[ -f build/bench/diffsim.js ] || node node_modules/typescript/bin/tsc -p tsconfig.test.json

for s in "${sizes[@]}"; do
  echo "== ${s}²: PyTorch CPU fp32 ($THREADS threads)" >&2
  OMP_NUM_THREADS=$THREADS "$PY" bench/torch_diffsim.py --device cpu --size "$s" --iters "$ITERS" --dtypes fp32 --stub-missing --out "$tmp/torch-$s.json" >&2
  echo "== ${s}²: ours" >&2
  node build/bench/diffsim.js --size "$s" --iters "$ITERS" --no-full --torch-json "$tmp/torch-$s.json" --out "$tmp/ours-$s" 2>&1 | grep -v '^Warning' >&2
done

node --input-type=module - "$tmp" "$OUT" "$THREADS" "${sizes[@]}" <<'EOF'
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const [tmp, out, threads, ...sizes] = process.argv.slice(2);
const rows = [];
const runs = {};
let adapter = 'adapter';
for (const s of sizes) {
  const dir = join(tmp, `ours-${s}`);
  const file = readdirSync(dir).find((f) => f.startsWith('diffsim-') && f.endsWith('.json'));
  const ours = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const torch = JSON.parse(readFileSync(join(tmp, `torch-${s}.json`), 'utf8'));
  adapter = ours.adapter;
  const t = torch.fp32;
  const stages = {};
  for (const name of ['text', 'vae', 'unetStop', 'aas', 'pair']) {
    const o = name === 'pair' ? ours.pairMs : ours.stages[name]?.ms;
    const p = name === 'pair' ? t.pair_ms : t.stages?.[name];
    if (o === undefined || p === undefined) continue;
    stages[name] = { oursMs: o, torchMs: p, ratio: o / p };
    rows.push(`| ${s}² | ${name} | ${o.toFixed(1)} | ${p.toFixed(1)} | ${(o / p).toFixed(1)}× |`);
  }
  runs[s] = { stages, ours, torch };
}
const slug = adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').split('-')[0];
mkdirSync(out, { recursive: true });
const file = join(out, `cpu-peer-${slug}.json`);
writeFileSync(file, `${JSON.stringify({ adapter, torchThreads: Number(threads), date: new Date().toISOString(), note: 'ratio = ours / PyTorch CPU fp32 on the same shapes, run back to back per size', sizes: runs }, null, 2)}\n`);
console.log(`| size | stage | ours (${adapter.split(':')[0]}) ms | PyTorch CPU fp32 (${threads} threads) ms | ours / PyTorch |`);
console.log('|---|---|--:|--:|--:|');
for (const r of rows) console.log(r);
console.error(`wrote ${file}`);
EOF

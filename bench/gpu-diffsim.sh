#!/usr/bin/env bash
# One prepared run on a lent GPU (under 10 minutes; results under $OUT): adapter info, parity of the
# reference fixtures on the GPU, bench/torch_diffsim.py in fp32 and fp16, bench/diffsim.ts at 512²
# with f32 weights; then with Dawn's f16-on-NVIDIA toggles (features printed first: do shader-f16
# and the f16 subgroup matrices appear?): the subgroup-matrix kernels against their references
# (test/kernels/kernels-subgroup, native and emulated) and the f16-activation kernels (test/kernels/kernels-f16-*),
# f16 weights on the SIMT kernels and on tensor cores, then with f16 activations too, the fast path's score and 2AFC agreement with the f32 path (bench/fast-path.ts), and the
# side-by-side table.
#
# Prepare here (no GPU time):
#   npm run build && npx tsc -p tsconfig.test.json          # dist/ and build/
#   bash ../shared/gpu/bundle.sh                            # .gpu/: node, Vulkan loader, node_modules
#   bash bench/torch-deps.sh                                # .torchdeps/: diffusers 0.29.2 and its pure-Python deps
# then one device call with carry [".gpu", "dist", "build", ".torchdeps"] and the command
#   bash bench/gpu-diffsim.sh
set -uo pipefail
# A node_modules symlink of a local worktree arrives dangling: let the bundle unpack its own.
if [ -L node_modules ] && [ ! -e node_modules ]; then rm -f node_modules; fi
source .gpu/enter.sh || exit 1
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,memory.total --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
node dist/cli/main.js info --json > "$OUT/info.json" 2>&1; head -c 800 "$OUT/info.json"; echo
echo "== parity"
timeout 60 node dist/cli/main.js parity --fixtures test/fixtures 2>&1 | grep -v '^Warning' > "$OUT/parity.log"; tail -3 "$OUT/parity.log"
echo "== torch (fp32, fp16)"
PY=${PYTHON:-python3}
timeout ${TORCH_TIMEOUT:-180} "$PY" bench/torch_diffsim.py --size 512 --iters 5 --stub-missing --out "$OUT/torch-diffsim.json" 2>&1 | tee "$OUT/torch.log" | tail -20
bench() { # name, extra env assignments…, then arguments
  local name=$1; shift
  echo "== ours: $name"
  timeout ${OURS_TIMEOUT:-90} env "$@" --size 512 --iters 3 --torch-json "$OUT/torch-diffsim.json" --out "$OUT/$name" 2>&1 | grep -v '^Warning' | tee "$OUT/$name.log" | tail -24
}
bench f32 node build/bench/diffsim.js --weights f32
echo "== Dawn toggles allow_unsafe_apis,vulkan_enable_f16_on_nvidia"
export DIFFSIM_DAWN_TOGGLES=allow_unsafe_apis,vulkan_enable_f16_on_nvidia
node dist/cli/main.js info 2>&1 | grep -v '^Warning' | tee "$OUT/info-toggles.txt" | grep -i -E 'adapter|feature|f16|subgroup|tensor' | head -12
echo "== subgroup-matrix and f16-activation kernels vs references"
timeout 90 node node_modules/uvu/bin.js build/test 'kernels-(subgroup|f16-[a-z]+).test.js$' 2>&1 | grep -v '^Warning' > "$OUT/kernels-subgroup.log"; grep -E 'Total|Passed|Skipped|FAIL|error' "$OUT/kernels-subgroup.log" | head -12
bench f16 node build/bench/diffsim.js --weights f16 --tensor-cores off
bench f16-tc node build/bench/diffsim.js --weights f16 --tensor-cores auto
bench f16-tc-f16act node build/bench/diffsim.js --weights f16 --activations f16 --tensor-cores auto
echo "== fast path vs f32 path (scores, 2AFC decisions)"
timeout 90 node build/bench/fast-path.js --size 512 --images 6 --fast on --out "$OUT/fast-path" 2>&1 | grep -v '^Warning' | tee "$OUT/fast-path.log" | tail -8
unset DIFFSIM_DAWN_TOGGLES
echo "== side by side (pair ms at 512²)"
node -e '
const fs = require("fs"), path = require("path");
const out = process.argv[1];
const rows = [];
for (const name of ["f32", "f16", "f16-tc", "f16-tc-f16act"]) {
  const dir = path.join(out, name);
  if (!fs.existsSync(dir)) continue;
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith("diffsim-") && f.endsWith(".json"))) {
    const r = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    rows.push(`| ours, ${name} | ${r.pairMs.toFixed(1)} | ${r.dispatchesPerPair} | ${r.jsMsPerPair.toFixed(1)} | ${(r.peakGpuBytes / 2 ** 20).toFixed(0)} | ${(r.achievedGflopsPerS / 1000).toFixed(1)} |`);
  }
}
const t = path.join(out, "torch-diffsim.json");
if (fs.existsSync(t)) {
  const j = JSON.parse(fs.readFileSync(t, "utf8"));
  for (const d of ["fp32", "fp16"]) if (j[d]) rows.push(`| torch ${d} (early stop; full U-Net ${j[d].pair_full_ms.toFixed(1)}) | ${j[d].pair_ms.toFixed(1)} | | | ${((j[d].peak_bytes ?? 0) / 2 ** 20).toFixed(0)} | |`);
}
console.log("| run | pair ms | dispatches | JS ms | peak MiB | TFLOP/s |\n|---|---|---|---|---|---|\n" + rows.join("\n"));
' "$OUT" | tee "$OUT/side-by-side.md"

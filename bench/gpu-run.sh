#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see README "Benchmarks"): adapter info, kernel tests on the
# real GPU, the kernel benchmark with tfjs-webgpu as peer, and a GEMM tile sweep. Results go to $OUT.
set -uo pipefail
source .gpu/enter.sh || exit 1
export DIFFSIM_DAWN_TOGGLES=${DIFFSIM_DAWN_TOGGLES:-allow_unsafe_apis}
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.limit --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
node dist/cli/main.js info --json > "$OUT/info.json" 2>&1; head -c 600 "$OUT/info.json"; echo
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout 150 node node_modules/uvu/bin.js build/test 'kernels-.*\.test\.js$' 2>&1 | grep -v '^Warning' | tail -15 | tee "$OUT/tests.log"
fi
timeout ${BENCH_TIMEOUT:-200} node build/bench/kernels.js --out "$OUT" 2>&1 | grep -v '^Warning' | tee "$OUT/bench.log"
for t in ${TILES:-medium large}; do
  DIFFSIM_GEMM_TILE=$t timeout 60 node build/bench/kernels.js --no-peer --only 'x' --out "$OUT/tile-$t" 2>&1 | grep -E 'matmul|linear|conv' | sed "s/^/[$t] /"
done

#!/usr/bin/env bash
# One prepared run on a lent GPU: parity of every supported fixture on the GPU, then the full-size
# SD1.5 benchmark (U-Net 64×64 latent batch 2, full and stopped at the DiffSim layer; text encoder;
# VAE encoder at 512²). Results go to $OUT.
set -uo pipefail
source .gpu/enter.sh || exit 1
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
timeout 120 node dist/cli/main.js parity --fixtures test/fixtures 2>&1 | grep -v '^Warning' > "$OUT/parity.log"; tail -6 "$OUT/parity.log"
timeout ${SD_TIMEOUT:-300} node build/bench/sd15.js --latent 64 --batch 2 --iters 10 --out "$OUT" 2>&1 | grep -v '^Warning'

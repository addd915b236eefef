#!/usr/bin/env bash
# Prepares .torchdeps/ (kept out of git) for bench/torch_diffsim.py on a machine that has PyTorch but
# no network: diffusers 0.29.2 (the version of the reference fixtures) and huggingface_hub 0.25.2
# (the last that still has what 0.29.2 imports) as plain source trees exported from git mirrors, and
# Debian 12's pure-Python packages that they import at load time (requests, filelock, tqdm, yaml, …),
# unpacked with their metadata (diffusers checks the versions of requests and filelock at import).
# torch_diffsim.py puts .torchdeps/python first and .torchdeps/deb/… last on sys.path, so packages
# the machine already has win over the Debian ones.
#
#   bash bench/torch-deps.sh [DIFFUSERS_GIT_DIR] [HUB_GIT_DIR]
# (defaults: the mirrors under /work/.mirror). Then carry ".torchdeps" to the GPU machine.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
diffusers=${1:-/work/.mirror/huggingface+diffusers/repo}
hub=${2:-/work/.mirror/huggingface+huggingface_hub/repo}
DIFFUSERS_REF=v0.29.2 # commit c586aadef6bb66d355fa40a2b95a0bea8a6fe79c
HUB_REF=v0.25.2       # commit 5eef17964897652da99ec829df6354be18c59a07
rm -rf .torchdeps && mkdir -p .torchdeps/python .torchdeps/deb/pkgs
git --git-dir="$diffusers" archive "$DIFFUSERS_REF" src/diffusers | tar -x -C .torchdeps/python --strip-components=1
git --git-dir="$hub" archive "$HUB_REF" src/huggingface_hub | tar -x -C .torchdeps/python --strip-components=1
echo "diffusers $DIFFUSERS_REF ($(git --git-dir="$diffusers" rev-parse "$DIFFUSERS_REF^{commit}"))" > .torchdeps/VERSIONS
echo "huggingface_hub $HUB_REF ($(git --git-dir="$hub" rev-parse "$HUB_REF^{commit}"))" >> .torchdeps/VERSIONS
# Pure-Python dependencies (architecture-independent .debs; PyYAML falls back to pure Python
# without its C extension). safetensors, regex and Pillow are compiled: the machine has them or
# torch_diffsim.py --stub-missing stands in for them (imported by diffusers, unused by from_config).
pkgs="python3-requests python3-urllib3 python3-idna python3-certifi python3-chardet python3-charset-normalizer
python3-filelock python3-tqdm python3-yaml python3-packaging python3-fsspec python3-typing-extensions
python3-importlib-metadata python3-zipp"
lists=$(mktemp -d); mkdir -p "$lists/partial"
o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
apt-get $o update -qq >/dev/null 2>&1 || true
# shellcheck disable=SC2086
(cd .torchdeps/deb/pkgs && apt-get $o download $pkgs >/dev/null 2>&1) || { echo "torch-deps: could not download the Debian packages"; exit 1; }
rm -rf "$lists"
for f in .torchdeps/deb/pkgs/*.deb; do dpkg -x "$f" .torchdeps/deb/root; done
rm -rf .torchdeps/deb/pkgs
# Compiled modules of Debian's python (its own version) would not load elsewhere: keep pure Python only.
find .torchdeps/deb/root -name '*.so' -delete
cat .torchdeps/VERSIONS
du -sh .torchdeps

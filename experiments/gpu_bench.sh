#!/usr/bin/env bash
# The GPU figure of the simulator in one run (< 5 minutes on one H200): run from the repository root on a GPU
# machine with numpy, scipy and numba-cuda (no sbi / pyro / arviz needed).  Writes gpu_bench.log under $OUT
# (the device tool's output folder) or the current folder.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
export DICSBI_CACHE="${DICSBI_CACHE:-$out/kernel-cache}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
PYTHONPATH=. timeout 290 python experiments/gpu_bench.py "$@" 2>&1 | tee "$out/gpu_bench.log"

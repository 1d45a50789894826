#!/usr/bin/env bash
# The batched sweep on CUDA and on the CPU with the same seeds: the largest gain difference and the speed
# ratio. Prints "no CUDA device" and exits 0 on a machine without one. Extra arguments go to the bench,
# e.g. scripts/gpu_check.sh --dataset digits --tasks 3 --epochs 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
exec "$PYTHON" -m explorer bench --gpu-check "$@"

#!/usr/bin/env bash
# The GPU path in one short run (well under 10 minutes on one NVIDIA GPU): training images/s
# fp32 vs bf16 for PreActResNet-18 and WRN-28-10, the cost of a PGD step over a bare forward,
# the worst-case suite's throughput, bf16 vs fp32 crafting on one model, and a few steps of each
# CIFAR-10 recipe, all on CIFAR-shaped synthetic data (scripts/gpu_check.py prints the ratios).
# On a machine without an NVIDIA GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to check"
  exit 0
fi
bash scripts/setup.sh  # the CUDA build of torch where a GPU is found
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export ROBUSTLAB_PROGRESS=0 WANDB_SILENT=true
# a hard stop below 10 minutes, whatever the machine
exec timeout 540 "${ROBUSTLAB_VENV:-.venv}/bin/python" scripts/gpu_check.py "$@"

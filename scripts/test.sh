#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, slow end-to-end tests included.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` for the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ROBUSTLAB_PROGRESS=${ROBUSTLAB_PROGRESS:-0}
export WANDB_SILENT=true
exec "${ROBUSTLAB_VENV:-.venv}/bin/python" -m pytest "$@"

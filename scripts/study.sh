#!/usr/bin/env bash
# The main job: set up (if needed), run the default robustness-accuracy trade-off study on the
# embedded digits data as a Hydra multirun, and write its report. Extra arguments are Hydra
# overrides, e.g. `scripts/study.sh hydra/launcher=joblib` or `scripts/study.sh seed=0,1,2`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_SILENT=true
start=$(date +%s)
"${ROBUSTLAB_VENV:-.venv}/bin/robustlab-train" experiment=tradeoff "$@"
echo "study: finished in $(( $(date +%s) - start )) s (the report path is printed above)"

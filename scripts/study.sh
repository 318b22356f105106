#!/usr/bin/env bash
# The main job: set up (if needed), run the default robustness-accuracy trade-off study on the
# embedded digits data as a Hydra multirun, and write its report. Jobs run two at a time with
# one torch thread each (the joblib launcher), which uses a 2-core machine better than one job
# with two threads; extra arguments are Hydra overrides and win, e.g. `scripts/study.sh
# hydra/launcher=basic threads=null` (one job at a time) or `scripts/study.sh seed=0,1,2`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_SILENT=true
jobs=${ROBUSTLAB_STUDY_JOBS:-2}
start=$(date +%s)
"${ROBUSTLAB_VENV:-.venv}/bin/robustlab-train" experiment=tradeoff \
  hydra/launcher=joblib "hydra.launcher.n_jobs=$jobs" threads=1 "$@"
echo "study: finished in $(( $(date +%s) - start )) s (the report path is printed above)"

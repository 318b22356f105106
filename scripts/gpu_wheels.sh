#!/usr/bin/env bash
# Download, where pip works, the wheels that scripts/gpu_check.sh installs on a GPU machine
# without network: robustlab's dependencies that the machine's image lacks, for CPython 3.12
# on manylinux x86-64, into .whl/ (git-ignored; ROBUSTLAB_WHEELS names another folder), under
# 60 MiB in all. Never torch, torchvision or anything CUDA: the machine keeps its own builds.
# Bring .whl/ into the checkout on the GPU machine, then run scripts/gpu_check.sh there.
#
#   bash scripts/gpu_wheels.sh                  # the GPU image (scripts/gpu_image_packages.txt)
#   bash scripts/gpu_wheels.sh --python PYTHON  # that interpreter and what it has installed
set -euo pipefail
cd "$(dirname "$0")/.."

# scripts/gpu_wheels.py reads pyproject.toml with tomllib (Python 3.11): the project's venv has
# it, a bare python3 may not
venv=${ROBUSTLAB_VENV:-.venv}
if [ -z "${PYTHON:-}" ] && [ -x "$venv/bin/python" ]; then PYTHON=$venv/bin/python; fi
py=${PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "gpu_wheels: $py is not Python 3.11 or newer: run bash scripts/setup.sh, or set PYTHON" >&2
  exit 1
fi
exec "$py" scripts/gpu_wheels.py --dest "${ROBUSTLAB_WHEELS:-.whl}" "$@"

#!/usr/bin/env bash
# Create the virtual environment and install robustlab with its test and docs tools.
#
# torch is installed first and deliberately: an already-installed torch is kept; without a
# GPU the CPU build is used (a local wheel if pip's find-links has one, else the CPU index),
# so a machine without CUDA never downloads several GB of CUDA wheels. Re-running is a no-op
# when pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ROBUSTLAB_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${ROBUSTLAB_TORCH_VERSION:-2.13.0}
CPU_INDEX=${ROBUSTLAB_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if [ ! -x "$VENV/bin/python" ]; then
  # reuse a torch that the base interpreter already has instead of installing another one
  if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
py="$VENV/bin/python"
stamp="$VENV/.robustlab-setup"
fingerprint=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] && "$py" -c "import robustlab, torch" >/dev/null 2>&1; then
  exit 0
fi

log="$VENV/setup.log"
# pip's own chatter goes to a log; it is shown only when an install fails
pip_install() {
  "$py" -m pip install --quiet --disable-pip-version-check "$@" >>"$log" 2>&1 || {
    tail -n 40 "$log" >&2
    echo "setup: pip install $* failed (full log: $log)" >&2
    exit 1
  }
}

if ! "$py" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing the CUDA build of torch==$TORCH_VERSION"
    pip_install "torch==$TORCH_VERSION"
  elif "$py" -m pip install --quiet --dry-run --no-index --no-deps "torch==$TORCH_VERSION" >/dev/null 2>&1; then
    echo "setup: no GPU, installing the local CPU wheel of torch==$TORCH_VERSION"
    pip_install --no-deps --no-index "torch==$TORCH_VERSION"
  else
    echo "setup: no GPU, installing the CPU build of torch==$TORCH_VERSION"
    pip_install "torch==$TORCH_VERSION" --index-url "$CPU_INDEX" --extra-index-url https://pypi.org/simple
  fi
fi

echo "setup: installing robustlab and its dependencies into $VENV"
# Pin the torch installed above: torchattacks pulls torchvision, and the newest torchvision
# would otherwise replace this torch with the matching (CUDA, several GB) release.
pin="$VENV/torch-pin.txt"
"$py" -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" >"$pin"
pip_install -e ".[dev]" --constraint "$pin"
# The docs extra is installed by its requirements, in a second step: torchattacks pins
# requests~=2.25.1 (it never imports requests) and mkdocs-material needs a newer requests, so
# one resolution of ".[dev,docs]" is impossible. pip then only warns about torchattacks' pin.
mapfile -t docs_requirements < <("$py" -c "import importlib.metadata as m
for r in m.requires('robustlab') or []:
    if 'extra == \"docs\"' in r:
        print(r.split(';')[0].strip())")
pip_install "${docs_requirements[@]}" --constraint "$pin"
"$py" -c "import robustlab, torch; print(f'setup: robustlab ready (torch {torch.__version__})')"
echo "$fingerprint" > "$stamp"

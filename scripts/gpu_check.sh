#!/usr/bin/env bash
# The GPU path in one short run (well under 10 minutes on one NVIDIA GPU): training images/s
# fp32 vs bf16 for PreActResNet-18 and WRN-28-10, the cost of a PGD step over a bare forward,
# the worst-case suite's throughput, bf16 vs fp32 crafting on one model, and a few steps of each
# CIFAR-10 recipe, all on CIFAR-shaped synthetic data (scripts/gpu_check.py prints the ratios).
# On a machine without an NVIDIA GPU it says so and exits 0.
#
# Set-up: with .whl/ in the checkout (made beforehand by scripts/gpu_wheels.sh where pip
# works), robustlab is installed offline into a venv that sees the machine's own torch, which
# is never replaced; without .whl/, scripts/setup.sh installs from the network. `--cpu-smoke`
# runs the same set-up and then the script's code on tiny sizes on the CPU, on any machine.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ROBUSTLAB_VENV:-.venv}
WHEELS=${ROBUSTLAB_WHEELS:-.whl}
PYTHON=${PYTHON:-python3}  # the machine's interpreter, the one that holds its torch
smoke=false
for arg in "$@"; do
  if [ "$arg" = --cpu-smoke ]; then smoke=true; fi
done

gpu=true
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then gpu=false; fi
if ! $smoke && ! $gpu; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to check"
  exit 0
fi

# The venv sees the machine's packages through a .pth file rather than --system-site-packages:
# the machine's python3 may itself be a venv (/opt/torch/.venv on the lent GPU machines), whose
# packages a venv made from it would not see. Its own packages come first on sys.path, and pip
# installs into it alone, so the machine's torch, numpy, ... stay as they are.
make_venv() {
  local made host purelib
  if ! made=$("$PYTHON" -m venv --without-pip "$VENV" 2>&1); then
    echo "gpu_check: $PYTHON could not make a venv at $VENV: $(tail -n 1 <<<"$made")" >&2
    exit 1
  fi
  host=$("$PYTHON" -c 'import site
print(site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else []))')
  purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  echo "import site; list(map(site.addsitedir, $host))" >"$purelib/_robustlab_machine.pth"
}

# Every wheel of the folder, without dependencies: scripts/gpu_wheels.sh resolved the set
# against the machine's packages, and torchattacks' stale pins (requests~=2.25.1) must not
# pull anything. robustlab itself is installed from this checkout (editable, as scripts/setup.sh
# does), where its Hydra configs live; its build backend is one of the wheels.
install_offline() {
  shopt -s nullglob
  local wheels=("$WHEELS"/*.whl) wheel
  if [ ${#wheels[@]} -eq 0 ]; then
    echo "gpu_check: $WHEELS/ holds no wheels: run bash scripts/gpu_wheels.sh where pip works" >&2
    exit 1
  fi
  for wheel in "${wheels[@]}"; do
    case ${wheel##*/} in
      torch-* | torchvision-* | torchaudio-* | triton-* | nvidia_* | cuda_*)
        echo "gpu_check: $wheel would replace the machine's CUDA stack: remove it" >&2
        exit 1 ;;
    esac
  done
  if [ ! -x "$VENV/bin/python" ]; then make_venv; fi
  local py=$VENV/bin/python log=$VENV/gpu_check_install.log
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
  # --no-compile: the check imports a small part of what is installed (W&B never runs in it)
  local offline=(-m pip install --no-index --no-deps --no-compile --find-links "$WHEELS")
  : >"$log"
  if ! "$py" "${offline[@]}" "${wheels[@]}" >>"$log" 2>&1 ||
    ! "$py" "${offline[@]}" -e . >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "gpu_check: the offline install from $WHEELS/ failed (full log: $log)" >&2
    exit 1
  fi
  # what the venv holds now, and what the wheels' metadata asks beyond the machine: known and
  # harmless for torchattacks' requests pin; anything else names a package the image lacks
  "$py" - <<'PY'
import importlib.metadata as metadata, re, subprocess, sys, sysconfig

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

ours = {canonical(d.metadata["Name"]): d.version
        for d in metadata.distributions(path=[sysconfig.get_path("purelib")])}
print(f"gpu_check: installed offline into {sys.prefix}:",
      ", ".join(f"{name} {version}" for name, version in sorted(ours.items())))
check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
for line in check.stdout.splitlines():
    if line.split() and canonical(line.split()[0]) in ours:
        print("gpu_check: note:", line)
PY
}

if [ -d "$WHEELS" ]; then
  install_offline
elif "$PYTHON" -c 'import socket; socket.create_connection(("pypi.org", 443), timeout=5)' \
  >/dev/null 2>&1; then
  bash scripts/setup.sh  # the CUDA build of torch where a GPU is found
else
  echo "gpu_check: no network and no $WHEELS/ here: run bash scripts/gpu_wheels.sh where pip" \
    "works, bring its $WHEELS/ into this checkout, and run this again" >&2
  exit 1
fi
py=$VENV/bin/python
if ! imported=$("$py" -c "import torch, hydra, robustlab.app.train, robustlab.attacks" 2>&1); then
  echo "gpu_check: robustlab does not import in $VENV: $(tail -n 1 <<<"$imported")" >&2
  exit 1
fi
"$py" -c "import torch; print(f'gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda})'
           f' from {torch.__path__[0]}')"
if $gpu; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
export ROBUSTLAB_PROGRESS=0 WANDB_SILENT=true
# a hard stop below 10 minutes for the whole run, set-up included, whatever the machine
left=$((570 - SECONDS))
exec timeout "$((left > 60 ? left : 60))" "$py" scripts/gpu_check.py "$@"

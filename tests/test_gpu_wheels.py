"""The GPU check's offline set-up, on the CPU: scripts/gpu_wheels.sh builds the wheels for a
stand-in of a lent GPU machine (a fresh venv holding only this torch and the scientific stack
that machine's image has), and scripts/gpu_check.sh --cpu-smoke installs robustlab from them
with the package index off and the network unusable, then runs the check's code.

Building the wheels downloads from the package index (about 35 MB for the stand-in; the GPU
image's set, checked against its 60 MiB limit, more); the install and the check never do.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# what the GPU image holds among robustlab's needs (scripts/gpu_image_packages.txt), with pip
# to install with; their own dependencies come along
IMAGE = (
    "torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "pandas",
    "safetensors", "tqdm", "pyyaml", "pytest", "filelock", "joblib", "requests", "packaging",
    "pip", "setuptools",
)  # fmt: skip


def with_dependencies(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` and everything they need, as installed here."""
    found, todo = {}, list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            found[name] = dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not here (torchvision is optional): the stand-in goes without it
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def stand_in_machine(root: Path) -> Path:
    """A venv whose site-packages links this interpreter's copies of the image's packages, and
    nothing else: no robustlab, Hydra, W&B... (links rather than installs: a second torch
    would cost a minute and a download). Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    for dist in with_dependencies(IMAGE):
        source = Path(dist.locate_file(""))
        for top in {file.parts[0] for file in dist.files or []} - {"..", "__pycache__"}:
            if not (purelib / top).exists():
                (purelib / top).symlink_to(source / top)
    return python


def without_network() -> list[str]:
    """A command prefix that cuts the network off where this machine allows it (else the
    proxies below make any download fail)."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        return ["unshare", "-n"]
    return []


def run(command: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_gpu_check_installs_offline_from_the_wheels(tmp_path: Path):
    machine = stand_in_machine(tmp_path / "machine")
    wheels = tmp_path / "wheels"
    env = dict(os.environ, ROBUSTLAB_WHEELS=str(wheels), PYTHON=sys.executable)
    built = run(["bash", "scripts/gpu_wheels.sh", "--python", str(machine)], env, 600)
    assert "MiB" in built.stdout, built.stdout
    names = {canonicalize_name(path.name.split("-")[0]) for path in wheels.glob("*.whl")}
    # what the machine lacks travels; what it has, and anything CUDA, never does
    assert {"hydra-core", "omegaconf", "torchattacks", "captum", "setuptools"} <= names, names
    assert not names & {"torch", "torchvision", "numpy", "scipy", "pandas", "triton"}, names
    assert not any(name.startswith("nvidia") for name in names), names

    # the GPU machine's conditions: no pip configuration, no index, no reachable network
    offline = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ROBUSTLAB_"))}
    venv = tmp_path / "venv"
    offline.update(
        ROBUSTLAB_VENV=str(venv), ROBUSTLAB_WHEELS=str(wheels), PYTHON=str(machine),
        PIP_CONFIG_FILE=os.devnull, http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9", ROBUSTLAB_PROGRESS="0", WANDB_SILENT="true",
    )  # fmt: skip
    checked = run([*without_network(), "bash", "scripts/gpu_check.sh", "--cpu-smoke"], offline, 600)
    out = checked.stdout
    assert "gpu_check: installed offline into" in out and "hydra-core" in out, out
    # the machine's torch, seen through the venv and never installed into it
    assert f"from {tmp_path / 'machine'}" in out, out
    assert not list(venv.glob("lib/python*/site-packages/torch")), "torch was installed"
    assert "robustlab GPU check on cpu" in out and "3-4." in out, out

    # the recipes' step runs robustlab-train from that venv: its Hydra configs are found
    composed = run(
        [str(venv / "bin" / "robustlab-train"), "experiment=cifar10_fast_at",
         f"data.root={tmp_path}", "--cfg", "job"],
        offline, 300,
    )  # fmt: skip
    assert "name: cifar10" in composed.stdout, composed.stdout


@pytest.mark.slow
def test_the_gpu_image_wheels_fit(tmp_path: Path):
    """The wheels for the GPU image itself: CPython 3.12 on manylinux x86-64, under 60 MiB."""
    env = dict(os.environ, ROBUSTLAB_WHEELS=str(tmp_path))
    built = run(["bash", "scripts/gpu_wheels.sh"], env, 600)
    assert "(limit 60 MiB)" in built.stdout, built.stdout
    for path in tmp_path.glob("*.whl"):
        tags = path.name.removesuffix(".whl").split("-")[-3:]
        assert tags[-1] == "any" or ("manylinux" in tags[-1] and "x86_64" in tags[-1]), path.name
        assert tags[0] in ("py3", "py2.py3", "cp312") or tags[1] == "abi3", path.name
    names = {canonicalize_name(path.name.split("-")[0]) for path in tmp_path.glob("*.whl")}
    assert {"hydra-core", "torchattacks", "wandb"} <= names, names
    assert not names & {"torch", "torchvision", "numpy", "triton"}, names


def test_gpu_check_says_what_to_do_without_wheels(tmp_path: Path):
    (tmp_path / "wheels").mkdir()
    env = dict(os.environ, ROBUSTLAB_WHEELS=str(tmp_path / "wheels"))
    env["ROBUSTLAB_VENV"] = str(tmp_path / "venv")
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--cpu-smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"gpu_check: {tmp_path / 'wheels'}/ holds no wheels: run bash scripts/gpu_wheels.sh "
        "where pip works"
    ]


def test_gpu_check_says_what_to_do_offline_without_wheels(tmp_path: Path):
    if not without_network():
        pytest.skip("this machine cannot cut a process off the network (unshare -n)")
    env = dict(os.environ, ROBUSTLAB_WHEELS=str(tmp_path / "wheels"))
    env["ROBUSTLAB_VENV"] = str(tmp_path / "venv")
    done = subprocess.run(
        [*without_network(), "bash", "scripts/gpu_check.sh", "--cpu-smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gpu_check: no network and no ") and "gpu_wheels.sh" in line, line

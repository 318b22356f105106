"""``robustlab-eval`` as users run it: sharded over two gloo processes under torchrun it writes
the one-process results.json and per-example record; killed with SIGKILL, the same command
continues from the state file to the uninterrupted results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from robustlab.app.builders import build_data, build_model, plain_config
from robustlab.data import dataset_info
from robustlab.training.checkpoint import save_weights
from tests.app_helpers import compose_tiny, run_console

SKIPPED = ("seconds", "timing_s", "job_dir", "world_size", "overrides", "device")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small CNN trained for a few seconds on digits, saved as robustlab-train saves it."""
    root = tmp_path_factory.mktemp("sharded")
    cfg = compose_tiny(root, "model=small_cnn", "data.max_train=null")
    bundle = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dataset_info("digits"), torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = bundle.train
    for step in range(120):
        rows = torch.arange(step * 64, step * 64 + 64) % len(labels)
        loss = torch.nn.functional.cross_entropy(model(images[rows]), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_weights(root / "model", model.eval(), {"config": plain_config(cfg)}).parent


def _args(checkpoint: Path, out: Path) -> list[str]:
    return [
        f"paths.checkpoint={checkpoint}", "experiment=tiny", "logger=none", "threads=1",
        "eval.eps=[0.02,0.05,0.1]", "eval.max_examples=40", f"hydra.run.dir={out}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(checkpoint, tmp_path_factory) -> Path:
    """One uninterrupted one-process evaluation."""
    out = tmp_path_factory.mktemp("one") / "run"
    done = run_console("robustlab-eval", *_args(checkpoint, out), cwd=out.parent, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}/{key}").items()}


def _same_results(a: Path, b: Path) -> None:
    first, second = (_flat(json.loads((d / "results.json").read_text())) for d in (a, b))
    keys = {k for k in first.keys() | second.keys() if not any(s in k for s in SKIPPED)}
    assert {k: first.get(k) for k in keys} == {k: second.get(k) for k in keys}
    record = "worst_case_examples.json"
    assert (a / record).read_text() == (b / record).read_text()


@pytest.mark.slow  # three evaluations in subprocesses: about 15 s on a quiet 2-core machine
def test_two_processes_write_the_one_process_results(checkpoint, reference, tmp_path):
    out = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--standalone", "--nproc-per-node=2", "--no-python"]
    command += [str(Path(sys.executable).parent / "robustlab-eval"), *_args(checkpoint, out)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "ROBUSTLAB_PROGRESS": "0"}
    done = subprocess.run(  # one thread per process, as the one-process reference runs
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    _same_results(reference, out)
    results = json.loads((out / "results.json").read_text())
    assert results["evaluation"]["world_size"] == 2
    assert sorted(p.name for p in out.glob("eval_state*")) == [
        "eval_state.rank0of2.safetensors",
        "eval_state.rank1of2.safetensors",
    ]


def _suite_started(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return '"suite"' in (handle.metadata() or {}).get("state", "")
    except Exception:  # not written yet
        return False


@pytest.mark.slow
def test_sigkill_then_the_same_command_resumes(checkpoint, reference, tmp_path):
    out = tmp_path / "run"
    script = Path(sys.executable).parent / "robustlab-eval"
    env = os.environ | {"ROBUSTLAB_PROGRESS": "0", "WANDB_SILENT": "true"}
    job = subprocess.Popen([str(script), *_args(checkpoint, out)], cwd=tmp_path, env=env)
    state = out / "eval_state.safetensors"
    deadline = time.monotonic() + 240
    while not _suite_started(state) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.poll() is None, "the evaluation ended before it could be killed"
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not (out / "results.json").exists()
    done = run_console("robustlab-eval", *_args(checkpoint, out), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [x for x in (done.stdout + done.stderr).splitlines() if "resuming the eval" in x]
    assert len(lines) == 1 and str(state) in lines[0] and "apgd_ce finished" in lines[0]
    _same_results(reference, out)

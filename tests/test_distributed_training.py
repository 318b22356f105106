"""DDP training under torchrun (gloo, two CPU processes): the one-process weights, rank 0 alone
writes, and one training per checkpoint identity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustlab.training.checkpoint_lock import checkpoint_lock, lock_path

pytestmark = pytest.mark.filterwarnings("ignore")

# a tiny, well-conditioned run: at lr 0.05 with momentum, one process on 1 vs 2 threads already
# differs by ~5e-2 after an epoch (ReLU masks flip on float rounding), so no equality is
# testable there. 257 examples in batches of 51: shards of 26 and 25 rows, and a last batch
# of 2 rows (1 + 1), so the loss weighting of uneven shards is exercised.
TINY = [
    "experiment=tiny",
    "detector=none",
    "logger=none",
    "eval.max_examples=8",
    "threads=1",
    "data.batch_size=51",
    "train.lr=0.005",
    "train.momentum=0",
]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROBUSTLAB_CHECKPOINTS=str(tmp_path / "checkpoints"),
        ROBUSTLAB_PROGRESS="0",
        WANDB_SILENT="true",
        OMP_NUM_THREADS="1",
        **extra,
    )
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(key, None)
    return env


def _train(tmp_path: Path, out: str, *overrides: str, processes: int = 1, **env: str):
    command = [sys.executable, "-m", "robustlab.app.train", *TINY, *overrides]
    command.append(f"hydra.run.dir={tmp_path / out}")
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command = [*launcher, f"--nproc-per-node={processes}", *command[1:]]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: int = 240) -> str:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-3000:]
    return output


def _results(tmp_path: Path, out: str) -> dict:
    return json.loads((tmp_path / out / "results.json").read_text())


def _weights(results: dict) -> dict[str, torch.Tensor]:
    return load_file(Path(results["checkpoint"]) / "model.safetensors")


def test_two_processes_train_the_one_process_weights(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    two = _train(tmp_path / "two", "out", processes=2)
    one = _train(tmp_path / "one", "out")
    _finish(one)
    _finish(two)
    single, double = _results(tmp_path / "one", "out"), _results(tmp_path / "two", "out")
    assert single["training_cost"]["world_size"] == 1
    assert double["training_cost"]["world_size"] == 2
    first, second = _weights(single), _weights(double)
    assert first.keys() == second.keys()
    worst = max(float((first[k].double() - second[k].double()).abs().max()) for k in first)
    assert worst < 1e-4, worst
    # the BatchNorm statistics were synchronised: one process's running statistics
    assert torch.allclose(first["stem.1.running_var"], second["stem.1.running_var"], atol=1e-5)


def test_pgd_at_on_two_processes_only_rank0_writes(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = _train(tmp_path, "out", "defense=pgd_at", processes=2, TMPDIR=str(scratch))
    _finish(proc)
    results = _results(tmp_path, "out")
    assert results["training_cost"]["world_size"] == 2
    # rank 1 ran its Hydra job in a temporary folder that it removed on exit
    assert not [p for p in scratch.iterdir() if p.name.startswith("robustlab-rank")]
    written = sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.iterdir())
    assert written == ["checkpoints", "out", "scratch"]
    (model_dir,) = [p for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()]
    assert (model_dir / "model.safetensors").exists()


def test_two_jobs_with_one_identity_train_once(tmp_path):
    jobs = [_train(tmp_path, name) for name in ("a", "b")]
    for job in jobs:
        _finish(job)
    results = [_results(tmp_path, name) for name in ("a", "b")]
    reused = sorted(r["training_cost"]["reused_checkpoint"] for r in results)
    assert reused == [False, True]
    assert results[0]["checkpoint"] == results[1]["checkpoint"]
    assert results[0]["clean_accuracy"] == results[1]["clean_accuracy"]
    assert results[0]["robust_accuracy"] == results[1]["robust_accuracy"]


HOLD = """
import sys, time
from robustlab.training.checkpoint_lock import checkpoint_lock
with checkpoint_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_lock_left_by_a_killed_job_does_not_block(tmp_path):
    directory = tmp_path / "checkpoints" / "digits-model"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        from filelock import FileLock, Timeout

        with pytest.raises(Timeout):  # held while the holder lives
            FileLock(lock_path(directory)).acquire(timeout=0.2)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with checkpoint_lock(directory, poll_seconds=0.1) as waited:
            assert waited is False  # the kernel released the dead holder's lock at once
    finally:
        holder.kill()
        holder.wait()

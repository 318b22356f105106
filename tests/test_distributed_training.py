"""DDP training under torchrun (gloo, two and three CPU processes): the one-process weights for
any batch split, rank 0 alone writes, one training per checkpoint identity, and a retrain that
is killed leaves the finished checkpoint it was replacing."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustlab.loading import load_checkpoint
from robustlab.training.checkpoint_lock import checkpoint_lock, lock_path
from robustlab.training.staging import staging_directory

pytestmark = pytest.mark.filterwarnings("ignore")

# a tiny, well-conditioned run: at lr 0.05 with momentum, one process on 1 vs 2 threads already
# differs by ~5e-2 after an epoch (ReLU masks flip on float rounding), so no equality is
# testable there. 257 examples in batches of 51: shards of 26 and 25 rows (17, 17 and 17 on
# three), and a last batch of 2 rows: 1 + 1 on two processes, 1 + 1 + none on three.
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


def test_two_and_three_processes_train_the_one_process_weights(tmp_path):
    runs = {}
    for processes in (1, 2, 3):
        (tmp_path / str(processes)).mkdir()
        runs[processes] = _train(tmp_path / str(processes), "out", processes=processes)
    for proc in runs.values():
        _finish(proc)
    results = {n: _results(tmp_path / str(n), "out") for n in runs}
    assert [results[n]["training_cost"]["world_size"] for n in runs] == [1, 2, 3]
    first = _weights(results[1])
    for processes in (2, 3):
        other = _weights(results[processes])
        assert first.keys() == other.keys()
        worst = max(float((first[k].double() - other[k].double()).abs().max()) for k in first)
        assert worst < 1e-4, (processes, worst)
        # the BatchNorm statistics were synchronised: one process's running statistics
        var = "stem.1.running_var"
        assert torch.allclose(first[var], other[var], atol=1e-5), processes


README_DDP = (
    "torchrun --standalone --nproc-per-node=2 --no-python robustlab-train experiment=tiny threads=1"
)


def test_the_readme_ddp_command_trains_a_last_batch_smaller_than_the_group(tmp_path):
    # experiment=tiny: 257 examples in batches of 64, so the last batch has 1 row for 2 ranks
    env = _env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = shlex.split(README_DDP)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (results_file,) = (tmp_path / "outputs").rglob("results.json")
    results = json.loads(results_file.read_text())
    assert results["training_cost"]["world_size"] == 2
    assert results["training_cost"]["reused_checkpoint"] is False
    assert load_checkpoint(results["checkpoint"]) is not None


def test_a_killed_retrain_leaves_the_finished_checkpoint(tmp_path):
    epochs = "train.epochs=3"
    _finish(_train(tmp_path, "first", epochs))
    first = _results(tmp_path, "first")
    directory = Path(first["checkpoint"])
    before = _weights(first)
    retrain = _train(tmp_path, "retrain", epochs, "reuse_checkpoints=false")
    partial = staging_directory(directory) / "state" / "last.json"
    deadline = time.monotonic() + 240
    while not partial.exists() and retrain.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    retrain.send_signal(signal.SIGKILL)  # an epoch of the retrain is done, two are not
    retrain.communicate(timeout=60)
    assert partial.exists(), "the retrain never finished its first epoch"
    # the finished checkpoint is untouched and loads as before, through the first results.json
    after = load_file(directory / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert load_checkpoint(tmp_path / "first") is not None
    # a later run reuses it, and drops the killed retrain's partial run
    _finish(_train(tmp_path, "again", epochs))
    assert _results(tmp_path, "again")["training_cost"]["reused_checkpoint"] is True
    assert not staging_directory(directory).exists()


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

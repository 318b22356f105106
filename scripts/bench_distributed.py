"""Benchmark robustlab on several processes against one: DDP training and sharded evaluation.

Three set-ups, all in one run, each through the commands users run:

- ``1p x 1t``: one process, one thread (``robustlab-train threads=1``);
- ``2p x 1t``: two processes, one thread each (``torchrun --standalone --nproc-per-node=2
  --no-python robustlab-train threads=1``; gloo on the CPU, nccl on CUDA);
- ``1p x 2t``: one process, two threads (``threads=2``).

Measured: (a) one epoch of PGD-AT training (``defense=pgd_at train.epochs=1``, the ``train``
time of results.json) on digits (8x8) and on mnist5k (28x28, 4,000 images), with the exact
BatchNorm sync (``train.sync_bn=true``, the default); (b) the standard worst-case suite on
digits' test set (``robustlab-eval`` on the model the first set-up trained, the ``evaluate``
time). Printed: the seconds and the speed-up of each set-up over the first, how much of the
evaluation's attack time the processes spent in parallel (the rest: start-up, gathering, one
shard finishing later than the other), and the equality checks: the largest weight difference
from the one-process model, and how many per-example records (broken eps, breaking attack)
differ. The load average of the machine is printed before and after: other jobs on the same
cores make every ratio lower.

    python scripts/bench_distributed.py                     # the real timing (quiet machine)
    python scripts/bench_distributed.py --no-eval           # the training epochs only
    python scripts/bench_distributed.py --tiny              # seconds: checks that it works
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from robustlab.loading import read_state_dict

BIN = Path(sys.executable).parent
SETUPS = {  # name: (processes, threads per process)
    "1p x 1t": (1, 1),
    "2p x 1t": (2, 1),
    "1p x 2t": (1, 2),
}


def command(entry: str, processes: int, threads: int, overrides: list[str]) -> list[str]:
    """The console command of one set-up."""
    prefix = [str(BIN / entry)]
    if processes > 1:
        launcher = [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={processes}"]
        prefix = [*launcher, "--no-python", str(BIN / entry)]
    return [*prefix, f"threads={threads}", "logger=none", *overrides]


def run(entry: str, setup: str, overrides: list[str], work: Path, data: str) -> dict:
    """Run one set-up's command in ``work``; its results.json."""
    processes, threads = SETUPS[setup]
    out = work / f"{entry}-{data}-{setup.replace(' ', '')}"
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "ROBUSTLAB_PROGRESS": "0",
        "ROBUSTLAB_CHECKPOINTS": str(out / "checkpoints"),  # every set-up trains its own
        "WANDB_SILENT": "true",
    }
    args = command(entry, processes, threads, [*overrides, f"hydra.run.dir={out}"])
    done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    results["_dir"] = str(out)
    return results


def weight_gap(a: dict, b: dict) -> float:
    """The largest absolute difference between two runs' trained weights."""
    first, second = (read_state_dict(Path(r["checkpoint"]) / "model.safetensors") for r in (a, b))
    return max(float((first[k].double() - second[k].double()).abs().max()) for k in first)


def record_gaps(a: dict, b: dict) -> tuple[int, int, int]:
    """(examples whose broken eps differ, whose breaking attack differs, examples)."""
    first, second = (
        json.loads((Path(r["_dir"]) / "worst_case_examples.json").read_text()) for r in (a, b)
    )
    eps = sum(x != y for x, y in zip(first["broken_eps"], second["broken_eps"], strict=True))
    by = sum(x != y for x, y in zip(first["broken_by"], second["broken_by"], strict=True))
    return eps, by, len(first["broken_eps"])


def parallel_share(results: dict) -> float:
    """The evaluation's attack seconds (summed over processes) per process over its wall time:
    1.0 when the processes attacked all the time; less is start-up, gathering or a straggler."""
    cost = results.get("worst_case", {}).get("attack_cost", {})
    attack = sum(c["seconds"] for c in cost.values())
    attack += sum(p["seconds"] for c in results["attack_cost"].values() for p in c.values())
    world = results.get("evaluation", {}).get("world_size", 1)
    return attack / world / max(results["timing_s"]["evaluate"], 1e-9)


def report_training(data: str, train: dict[str, dict]) -> None:
    """One table of PGD-AT epoch times on ``data``, with the weights' distance to 1p x 1t."""
    base = train["1p x 1t"]["timing_s"]["train"]
    print(f"PGD-AT epoch on {data}:")
    print(f"{'set-up':<9} {'train s':>8} {'speed-up':>8}  weights max |diff| from 1p x 1t")
    for setup in SETUPS:
        seconds = train[setup]["timing_s"]["train"]
        gap = weight_gap(train["1p x 1t"], train[setup]) if setup != "1p x 1t" else 0.0
        print(f"{setup:<9} {seconds:8.1f} {base / seconds:7.2f}x  {gap:.2e}")


def report_evaluation(evaluate: dict[str, dict]) -> None:
    """The sharded evaluation's table and its per-example equality with 1p x 1t."""
    base = evaluate["1p x 1t"]["timing_s"]["evaluate"]
    print("standard suite on digits:")
    print(f"{'set-up':<9} {'eval s':>8} {'speed-up':>8} {'parallel':>8}  records that differ")
    for setup in SETUPS:
        seconds = evaluate[setup]["timing_s"]["evaluate"]
        eps, by, n = record_gaps(evaluate["1p x 1t"], evaluate[setup])
        print(
            f"{setup:<9} {seconds:8.1f} {base / seconds:7.2f}x "
            f"{parallel_share(evaluate[setup]):8.2f}  broken eps {eps}/{n}, attack {by}/{n}"
        )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the same cores)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny settings: check that it runs")
    parser.add_argument("--model", default=None, help="default: resnet20 (--tiny: small_cnn)")
    parser.add_argument("--work", default=None, help="folder for the runs (default: temporary)")
    parser.add_argument("--data", nargs="+", default=["digits", "mnist5k"], help="training sets")
    parser.add_argument("--no-eval", action="store_true", help="time the training epochs only")
    args = parser.parse_args()
    model = args.model or ("small_cnn" if args.tiny else "resnet20")
    train_args = [f"model={model}", "defense=pgd_at", "train.epochs=1", "detector=none"]
    train_args += ["eval.suite=none", "eval.max_examples=16", "eval.large_eps=null"]
    eval_args = ["eval.suite=standard"]
    if args.tiny:
        train_args += ["data.max_train=160", "defense.steps=2"]
        eval_args = ["eval.suite=fast", "eval.max_examples=24", "eval.eps=[0.05,0.1]"]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-distributed-"))
    work.mkdir(parents=True, exist_ok=True)
    started = load_average()
    train = {
        data: {
            setup: run("robustlab-train", setup, [f"data={data}", *train_args], work, data)
            for setup in SETUPS
        }
        for data in args.data
    }
    evaluate = {}
    if not args.no_eval:
        trained = train["digits"] if "digits" in train else None
        if trained is None:
            trained = {"1p x 1t": run("robustlab-train", "1p x 1t", train_args, work, "digits")}
        checkpoint = f"paths.checkpoint={trained['1p x 1t']['checkpoint']}"
        evaluate = {
            setup: run("robustlab-eval", setup, [checkpoint, *eval_args], work, "digits")
            for setup in SETUPS
        }
    print(f"runs in {work}; torch {torch.__version__}; load average {started} -> {load_average()}")
    for data, runs in train.items():
        report_training(data, runs)
    if evaluate:
        report_evaluation(evaluate)


if __name__ == "__main__":
    main()

"""Calibrate the ``gradient_free_breaks`` check: its false alarms on the trade-off study's
undefended models and its alarms on the distilled ones (whose softmax gradients saturate).

For each model of the study (``experiment=tradeoff``: resnet20 and se_resnet20, 8 epochs on
digits; resnet20 by default), each seed and each suite it trains (or reuses, from
``paths.checkpoints``) the model the study trains, runs the worst-case suite on a stratified
test subset and counts, per eps, the examples Square broke that every gradient attack had
missed. It prints one row per run and, for several candidate rules, how many runs each would
flag; the rule the evaluation uses is
``WorstCaseResult.masking`` (at some eps, at least GRADIENT_FREE_MIN_COUNT breaks and
GRADIENT_FREE_MIN_SHARE of n).

    PYTHONPATH=$PWD .venv/bin/python scripts/calibrate_checks.py            # the defaults below
    PYTHONPATH=$PWD .venv/bin/python scripts/calibrate_checks.py --seeds 0 --n 20   # a smoke run

Defaults are smaller than the study so that it finishes within 15 minutes on a busy 2-core
machine: resnet20 only (``--models resnet20 se_resnet20`` adds the SE model), ``--n`` 50 test
examples per run (the study evaluates all 360), the distilled models under ``fast`` only
(``--distilled-suites standard fast``); two processes of one thread each.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from robustlab.app.builders import build_data, stage_inputs
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.schema import register_schemas
from robustlab.app.training_stage import train_stage
from robustlab.devices import resolve_device, seed_everything
from robustlab.evaluation import worst_case
from robustlab.evaluation.worst_case_result import GRADIENT_FREE_MIN_COUNT, GRADIENT_FREE_MIN_SHARE

# candidate rules: name -> flag(max Square-only breaks at one eps, n)
RULES = {
    "any break (the old rule)": lambda k, n: k >= 1,
    ">= 2": lambda k, n: k >= 2,
    f">= max({GRADIENT_FREE_MIN_COUNT}, {GRADIENT_FREE_MIN_SHARE:.0%} n) (used)": lambda k, n: (
        k >= max(GRADIENT_FREE_MIN_COUNT, GRADIENT_FREE_MIN_SHARE * n)
    ),
}


def study_config(model: str, defense: str, seed: int, n: int, checkpoints: str):
    """The trade-off study's config of one job, evaluated on ``n`` test examples."""
    register_schemas()
    GlobalHydra.instance().clear()
    overrides = [
        "experiment=tradeoff",
        f"model={model}",
        f"defense={defense}",
        f"seed={seed}",
        f"eval.max_examples={n}",
        "logger=none",
        "detector=none",
        "explain=none",
        f"paths.checkpoints={checkpoints}",
        "threads=1",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg


def measure(model: str, defense: str, seed: int, suites: list[str], args) -> list[dict]:
    """Train (or reuse) one study model and count Square's exclusive breaks under each suite."""
    cfg = study_config(model, defense, seed, args.n, args.checkpoints)
    seed_everything(seed)
    device = resolve_device(cfg.device, threads=1)
    bundle = build_data(cfg)
    trained = train_stage(cfg, bundle, device)
    inputs = stage_inputs(cfg, trained.model, bundle)
    rows = []
    for suite in suites:
        started = time.perf_counter()
        result = worst_case(trained.model, *inputs.test, list(cfg.eval.eps), suite=suite, seed=seed)
        breaks = result.gradient_free_breaks()
        rows.append(
            {
                "model": model,
                "defense": defense,
                "seed": seed,
                "suite": suite,
                "n": result.n,
                "square_breaks": breaks,
                "max_breaks": max(breaks.values(), default=0),
                "worst_case": dict(zip(breaks, result.accuracy, strict=True)),
                "masking": result.masking,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict]) -> None:
    """How many runs each candidate rule flags, undefended (false alarms) and distilled."""
    print("\nrule | undefended flagged (false alarms) | distilled flagged")
    for name, rule in RULES.items():
        counts = []
        for defense in ("none", "distillation"):
            runs = [r for r in rows if r["defense"] == defense]
            flagged = sum(rule(r["max_breaks"], r["n"]) for r in runs)
            counts.append(f"{flagged}/{len(runs)}")
        print(f"{name} | {counts[0]} | {counts[1]}")


def measure_pair(job: tuple[str, int, argparse.Namespace]) -> list[dict]:
    """One model and seed: undefended under both suites, distilled under ``--distilled-suites``."""
    model, seed, args = job
    torch.set_num_threads(1)
    rows = measure(model, "none", seed, ["standard", "fast"], args)
    return rows + measure(model, "distillation", seed, args.distilled_suites, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=50, help="test examples per run")
    parser.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    parser.add_argument("--distilled-suites", nargs="+", default=["fast"])
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    started, rows = time.perf_counter(), []
    jobs = [(model, seed, args) for seed in args.seeds for model in args.models]
    # one job per core, one thread each (as scripts/study.sh runs the study)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for found in pool.map(measure_pair, jobs):
            rows += found
    summary(rows)
    print(f"\ncalibrate_checks: {len(rows)} runs in {time.perf_counter() - started:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

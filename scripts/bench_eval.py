"""Benchmark robustlab's worst-case suite against the original AutoAttack and its torchattacks port.

Models (``scripts/bench_models.py``, trained once and cached under ``--checkpoint``): resnet20
on digits, undefended and PGD-trained (eps 0.1), and a small CNN on MNIST (the 1,000 test
images of ``mnist5k``), undefended and trained at eps 0.3 with PGD-AT and TRADES.

Per model, on the same images, each method over the model's eps grid:

- ``standard`` and ``reference``: robustlab's ``worst_case`` (the whole grid at once);
- ``autoattack``: the original AutoAttack (Croce & Hein's code, ``pyautoattack`` on PyPI,
  the dev extra), ``version="standard"`` (APGD-CE, APGD-T, FAB-T, Square), at each eps on
  its own; skipped with a note when it is not installed;
- ``torchattacks``: the same four attacks from torchattacks' ports, each on the survivors of
  the previous, at each eps on its own.

Printed: worst-case accuracy per eps side by side, time, each robustlab suite's excess over
each other method and time ratio, and robustlab's per-stage time and breaks. Times are process
CPU seconds on one thread (``torch.set_num_threads(1)``, ``time.process_time()``): the
methods run one after the other in one process, so other load on the machine does not change
their ratios.

    python scripts/bench_eval.py --checkpoint bench-models --models mnist5k/pgd_at

``--step-cost`` also times APGD's cost per step and the BN-folded copy's forward+backward.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F
import torchattacks
from bench_models import BENCH_MODELS, BenchModel, trained  # beside this script
from torch import nn

from robustlab.attacks import APGD
from robustlab.data import load_dataset
from robustlab.evaluation import worst_case
from robustlab.models.folding import fold_batchnorm
from robustlab.models.inference import model_context


def ported(model, images, labels, eps, batch_size) -> torch.Tensor:
    """AutoAttack's standard ensemble from torchattacks' ports at one eps: the robust rows."""
    attacks = [
        torchattacks.APGD(model, eps=eps, steps=100, loss="ce", seed=0),
        torchattacks.APGDT(model, eps=eps, steps=100, n_classes=10, seed=0),
        torchattacks.FAB(model, eps=eps, steps=100, multi_targeted=True, n_classes=10, seed=0),
        torchattacks.Square(model, eps=eps, n_queries=5000, seed=0),
    ]
    with torch.no_grad():
        alive = model(images).argmax(1) == labels
    for attack in attacks:
        index = alive.nonzero().squeeze(1)
        for start in range(0, len(index), batch_size):
            batch = index[start : start + batch_size]
            adv = attack(images[batch], labels[batch])
            with torch.no_grad():
                alive[batch] = model(adv).argmax(1) == labels[batch]
    return alive


def original(model, images, labels, eps, batch_size) -> torch.Tensor:
    """The original AutoAttack (``pyautoattack``), standard version, at one eps: the robust
    rows (its own prediction on its adversarial images)."""
    from pyautoattack import AutoAttack  # optional: the dev extra installs it

    attack = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0, device="cpu")
    _, predicted = attack.run_standard_evaluation(images, labels, batch_size=batch_size)
    return predicted.cpu() == labels


REFERENCES = {"autoattack": original, "torchattacks": ported}


def timed(fn):
    """(fn's value, the process CPU seconds it took)."""
    started = time.process_time()
    value = fn()
    return value, time.process_time() - started


def bare_passes(model, images, labels, passes: int) -> None:
    """``passes`` forward+backward passes to the input, weights frozen as in any attack."""
    with model_context(model, "eval"):
        for _ in range(passes):
            x = images.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(x), labels), x)


def median_ratio(numerator, denominator, repeats: int = 7) -> float:
    """Median of numerator's seconds over denominator's, timed alternately."""
    return statistics.median(timed(numerator)[1] / timed(denominator)[1] for _ in range(repeats))


def step_cost(spec: BenchModel, model: nn.Module, images, labels) -> None:
    """APGD's cost per step against a bare forward+backward, and the BN-folded copy's speed."""
    images, labels = images[:256], labels[:256]
    attack = APGD(model, eps=0.1, steps=50, early_stop=False)
    cost = median_ratio(
        lambda: attack(images, labels), lambda: bare_passes(model, images, labels, 51)
    )
    print(f"[{spec.name}] APGD cost per step / bare forward+backward = {cost:.3f}")
    folded = fold_batchnorm(model, images)
    crafting = fold_batchnorm(model, images, channels_last=True)  # the suite's copy on the CPU
    for label, (before, after) in {
        "model / BN-folded copy": (model, folded),
        "folded / channels-last": (folded, crafting),
    }.items():
        speedup = median_ratio(
            lambda net=before: bare_passes(net, images, labels, 50),
            lambda net=after: bare_passes(net, images, labels, 50),
        )
        print(f"[{spec.name}] bare forward+backward, {label} = {speedup:.3f}")


def run_reference(key: str, model, images, labels, grid) -> tuple[list[float], float]:
    """A reference's accuracy at each eps (every eps on its own) and its CPU seconds."""
    alive, total = [], 0.0
    for eps in grid:
        robust, seconds = timed(partial(REFERENCES[key], model, images, labels, eps, 256))
        alive.append(robust.cpu().float().mean().item())
        total += seconds
    return alive, total


def compare(spec: BenchModel, model: nn.Module, args: argparse.Namespace) -> None:
    images, labels = load_dataset(spec.dataset, split="test")
    n = args.n.get(spec.dataset, len(labels))
    images, labels = images[:n], labels[:n]
    grid = list(spec.grid)
    rows: dict[str, tuple[list[float], float]] = {}
    for suite in args.suites:
        result, seconds = timed(lambda s=suite: worst_case(model, images, labels, grid, suite=s))
        rows[suite] = (result.accuracy, seconds)
        print(f"[{spec.name}] {suite}: {result.accuracy} in {seconds:.1f} CPU-s", flush=True)
        for stage, c in result.attack_cost.items():
            print(
                f"[{spec.name}] {suite}   {stage}: {int(c.get('breaks', 0))} breaks, "
                f"{int(c['grad_evals'])} gradients, {int(c['forward_evals'])} forwards"
            )
        for stage, record in result.budget.items():
            print(f"[{spec.name}] {suite}   budget {stage}: {record}")
    for key in args.references:
        rows[key] = run_reference(key, model, images, labels, grid)
        print(f"[{spec.name}] {key}: {rows[key][0]} in {rows[key][1]:.1f} CPU-s", flush=True)
    print(f"\n[{spec.name}] n={n}  eps: " + "  ".join(f"{e:>6g}" for e in grid) + "   CPU-s")
    for key, (accuracy, seconds) in rows.items():
        cells = "  ".join(f"{a:6.3f}" for a in accuracy)
        print(f"[{spec.name}] {key:>12}: {cells}  {seconds:7.1f}")
    for suite in args.suites:
        for other, (accuracy, seconds) in rows.items():
            if other == suite:
                continue
            excess = max(a - r for a, r in zip(rows[suite][0], accuracy, strict=True))
            ratio = rows[suite][1] / max(seconds, 1e-9)
            print(f"[{spec.name}] {suite} vs {other}: max(ours - other) = {100 * excess:+.1f} pt, "
                  f"time ratio {ratio:.3f}")  # fmt: skip
    if args.step_cost:
        step_cost(spec, model, images, labels)
    print()


def available_references(names: list[str]) -> list[str]:
    """``names`` without the original AutoAttack when ``pyautoattack`` is not installed."""
    if "autoattack" in names and importlib.util.find_spec("pyautoattack") is None:
        print("pyautoattack is not installed (pip install -e '.[dev]'): torchattacks only")
        return [n for n in names if n != "autoattack"]
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(BENCH_MODELS), choices=BENCH_MODELS)
    parser.add_argument("--n-digits", type=int, default=359, help="test digits (359 = all)")
    parser.add_argument("--n-mnist", type=int, default=200, help="MNIST test images (of 1,000)")
    parser.add_argument("--suites", nargs="+", default=["sampled", "reference"])
    parser.add_argument("--checkpoint", default=None, help="directory to reuse/save models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--references", nargs="*", default=list(REFERENCES), choices=REFERENCES)
    parser.add_argument("--step-cost", action="store_true", help="time APGD's step cost too")
    args = parser.parse_args()
    args.references = available_references(args.references)
    args.n = {"digits": args.n_digits, "mnist5k": args.n_mnist}
    torch.set_num_threads(1)  # CPU seconds of one thread: comparable under any machine load
    for key in args.models:
        spec = BENCH_MODELS[key]
        model, seconds = timed(lambda s=spec: trained(s, args.checkpoint, args.seed))
        print(f"[{spec.name}] model ready in {seconds:.1f} CPU-s")
        compare(spec, model, args)


if __name__ == "__main__":
    main()

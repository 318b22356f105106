"""Benchmark robustlab's worst-case suite against two AutoAttack references on digits.

References, each run independently at each eps:

- ``torchattacks``: torchattacks' ports with AutoAttack's standard settings (APGD-CE 100 steps,
  APGD-T 100 steps over 9 targets, FAB-T 100 steps over 9 targets, Square 5000 queries), each
  on the survivors of the previous;
- ``autoattack``: the original AutoAttack (Croce & Hein's code, ``pyautoattack`` on PyPI),
  ``version="standard"`` (the same four attacks; its own checks log through logging), skipped
  with a note when it is not installed.

robustlab: ``worst_case`` with the ``standard`` (and ``fast``) suite over the whole grid at
once. Printed per model: worst-case accuracy at each eps side by side (and the per-example worst
of both references), the largest excess of each suite over each reference and the time ratios,
APGD's cost per step against a bare forward+backward pass, and how much faster that pass runs
on the BN-folded copy the suite crafts on (``robustlab.models.folding``).

    OMP_NUM_THREADS=2 python scripts/bench_eval.py

``--checkpoint DIR`` reuses (or writes) the two trained models under DIR/none and DIR/pgd_at.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from robustlab.attacks import APGD, madry_step_size
from robustlab.data import TensorLoader, load_dataset
from robustlab.evaluation import worst_case
from robustlab.models import create_model
from robustlab.models.folding import fold_batchnorm
from robustlab.models.runtime import model_context
from robustlab.runtime import seed_everything
from robustlab.training import build_optimizer, fit, load_weights, save_weights
from robustlab.training.checkpoint import WEIGHTS_FILE
from robustlab.training.objectives import CrossEntropy
from robustlab.training.objectives.adversarial import AdversarialTraining

GRID = [0.05, 0.1, 0.2]


def train(name: str, args: argparse.Namespace) -> nn.Module:
    """An undefended (``none``) or PGD-trained (``pgd_at``, eps 0.1, 7 steps) digits model."""
    seed_everything(args.seed)
    model = create_model(args.model, num_classes=10, in_channels=1)
    weights = Path(args.checkpoint, name) if args.checkpoint else None
    if weights is not None and (weights / WEIGHTS_FILE).exists():
        load_weights(weights, model)
        return model.eval()
    images, labels = load_dataset("digits", split="train")
    loader = TensorLoader(images, labels, batch_size=128, seed=args.seed)
    objective = (
        CrossEntropy()
        if name == "none"
        else AdversarialTraining(eps=0.1, alpha=madry_step_size(0.1, 7), steps=7)
    )
    optimizer = build_optimizer(model, "adam", lr=3e-3, weight_decay=0.0)
    fit(model, loader, objective, optimizer, args.epochs)
    if weights is not None:
        save_weights(weights, model, {"defense": name, "epochs": args.epochs})
    return model.eval()


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


REFERENCES = {"torchattacks": ported, "autoattack": original}


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def bare_passes(model, images, labels, passes: int) -> None:
    """``passes`` forward+backward passes to the input, weights frozen as in any attack."""
    with model_context(model, "eval"):
        for _ in range(passes):
            x = images.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(x), labels), x)


def median_ratio(numerator, denominator, repeats: int = 7) -> float:
    """Median of numerator's seconds over denominator's, timed alternately, so that a change
    in machine load hits both alike."""
    return statistics.median(timed(numerator)[1] / timed(denominator)[1] for _ in range(repeats))


def apgd_step_cost(model, images, labels, steps: int = 50) -> float:
    """Seconds per APGD iteration (no early stop) over seconds per bare forward+backward to the
    input; APGD takes steps + 1 gradients (start included)."""
    attack = APGD(model, eps=0.1, steps=steps, early_stop=False)
    return median_ratio(
        lambda: attack(images, labels), lambda: bare_passes(model, images, labels, steps + 1)
    )


def step_cost(name: str, model: nn.Module, args: argparse.Namespace) -> None:
    images, labels = load_dataset("digits", split="test")
    with torch.no_grad():
        correct = model(images).argmax(1) == labels
    print(f"[{name}] clean accuracy {correct.float().mean().item():.3f}")
    images, labels = images[correct][:256], labels[correct][:256]
    cost = apgd_step_cost(model, images, labels)
    print(f"[{name}] APGD cost per step / bare forward+backward = {cost:.3f}")
    folded = fold_batchnorm(model, images)
    crafting = fold_batchnorm(model, images, channels_last=True)  # the suite's copy on the CPU
    pairs = {
        "model / BN-folded copy": (model, folded),
        "folded / channels-last": (folded, crafting),
    }
    for label, (before, after) in pairs.items():
        speedup = median_ratio(
            lambda net=before: bare_passes(net, images, labels, 50),
            lambda net=after: bare_passes(net, images, labels, 50),
        )
        print(f"[{name}] bare forward+backward, {label} = {speedup:.3f}")
    print()


def run_references(model, images, labels, names, grid) -> dict[str, tuple[list[float], float]]:
    """Each reference's accuracy per eps (every eps on its own) and its total seconds, then
    ``both``: the per-example worst of the references."""
    rows, worst = {}, torch.ones(len(labels), len(grid), dtype=torch.bool)
    for key in names:
        alive, total = [], 0.0
        for eps in grid:
            run = partial(REFERENCES[key], model, images, labels, eps, 256)
            robust, seconds = timed(run)
            alive.append(robust.cpu())
            total += seconds
        flags = torch.stack(alive, dim=1)
        worst &= flags
        rows[key] = (flags.float().mean(0).tolist(), total)
        print(f"{key}: {rows[key][0]} in {total:.1f} s", flush=True)
    if len(rows) > 1:
        rows["both"] = (worst.float().mean(0).tolist(), sum(t for _, t in rows.values()))
    return rows


def compare(name: str, model: nn.Module, args: argparse.Namespace) -> None:
    images, labels = load_dataset("digits", split="test")
    images, labels = images[: args.n], labels[: args.n]
    references = run_references(model, images, labels, args.references, args.eps)
    rows = dict(references)
    for suite in args.suites:
        result, seconds = timed(
            lambda s=suite: worst_case(model, images, labels, args.eps, suite=s)
        )
        rows[suite] = (result.accuracy, seconds)
        print(f"[{name}] {suite}: first broken by {result.first_broken_by()}")
        print(f"[{name}] {suite}: cost {result.attack_cost} warnings {result.warnings}")
    print(
        f"\n[{name}] n={len(labels)}  eps: " + "  ".join(f"{e:>6g}" for e in args.eps) + "   time"
    )
    for key, (accuracy, seconds) in rows.items():
        cells = "  ".join(f"{a:6.3f}" for a in accuracy)
        print(f"[{name}] {key:>12}: {cells}  {seconds:7.1f} s")
    for suite in args.suites:
        for ref, (ref_accuracy, ref_seconds) in references.items():
            excess = max(a - r for a, r in zip(rows[suite][0], ref_accuracy, strict=True))
            ratio = rows[suite][1] / ref_seconds
            print(f"[{name}] {suite} vs {ref}: max(ours - reference) = {excess:+.4f}, "
                  f"time ratio {ratio:.3f}")  # fmt: skip
    if not args.no_step_cost:
        step_cost(name, model, args)


def available_references(names: list[str]) -> list[str]:
    """``names`` without the original AutoAttack when ``pyautoattack`` is not installed."""
    if "autoattack" in names and importlib.util.find_spec("pyautoattack") is None:
        print("pyautoattack is not installed (pip install -e '.[dev]'): torchattacks only")
        return [n for n in names if n != "autoattack"]
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n", type=int, default=359, help="test examples (359 = all)")
    parser.add_argument("--suites", nargs="+", default=["standard", "fast"])
    parser.add_argument("--checkpoint", default=None, help="directory to reuse/save models")
    parser.add_argument("--defenses", nargs="+", default=["none", "pgd_at"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eps", nargs="+", type=float, default=GRID, help="the eps grid")
    parser.add_argument("--references", nargs="+", default=list(REFERENCES), choices=REFERENCES)
    parser.add_argument("--step-cost-only", action="store_true", help="skip the comparison")
    parser.add_argument("--no-step-cost", action="store_true", help="skip the step-cost timing")
    args = parser.parse_args()
    args.references = available_references(args.references)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    for name in args.defenses:
        model, seconds = timed(lambda n=name: train(n, args))
        print(f"[{name}] model ready in {seconds:.1f} s")
        (step_cost if args.step_cost_only else compare)(name, model, args)


if __name__ == "__main__":
    main()

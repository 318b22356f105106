"""Train models on one data set with the library's fit loop and report cost and accuracy.

Per model: parameters, seconds per training epoch, clean test accuracy and, with ``--eval-eps``,
the per-example worst case of FGSM, PGD-20 and margin-loss PGD-20 (the pipeline's default
attacks, step eps/10) at each eps on the whole test split. The training recipe is the
pipeline's default (SGD + Nesterov, lr 0.05, cosine, weight decay 5e-4, 15% of the train split
held out as in ``data.val_fraction``).

    python scripts/bench_models.py --data digits --models resnet20,mgnet --epochs 15 \
        --eval-eps 0.1
    python scripts/bench_models.py --data mnist5k --models small_cnn,mgnet --epochs 1 \
        --defense pgd_at --defense-eps 0.3
    python scripts/bench_models.py --data digits --models resnet20 --l0-examples 359

``--l0-examples N`` adds the L0 curves (robustlab.evaluation.l0: SparseFool, JSMA, OnePixel at their
defaults and their per-example worst case) on the first N test images.
"""

from __future__ import annotations

import argparse
import time

import torch

from robustlab.attacks import build_attack
from robustlab.data import TensorLoader, dataset_info, load_dataset, train_val_split
from robustlab.evaluation.l0 import l0_robustness
from robustlab.models import create_model, model_param_count
from robustlab.models.runtime import predict
from robustlab.runtime import seed_everything
from robustlab.training import CrossEntropy, build_optimizer, build_scheduler, fit
from robustlab.training.objectives import AdversarialTraining

# The pipeline's default attacks, run in sequence on the survivors (per-example worst case).
ATTACKS = (("fgsm", {}), ("pgd", {"steps": 20}), ("pgd", {"steps": 20, "loss": "margin"}))


def worst_case_accuracy(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
) -> tuple[float, float]:
    """(FGSM accuracy, fraction that no attack in ATTACKS fools) at ``eps``.

    FGSM runs first, on every clean-correct example, so its survivors give its own accuracy.
    """
    alive = predict(model, x) == y
    accuracies = []
    for name, options in ATTACKS:
        index = alive.nonzero().flatten()
        kwargs = dict(options, alpha=0.1 * eps) if name == "pgd" else options
        attack = build_attack(name, model, eps=eps, **kwargs)
        adv = torch.cat([attack(x[i], y[i]).cpu() for i in index.split(256)] or [x[:0]])
        alive[index] = predict(model, adv) == y[index]
        accuracies.append(float(alive.float().mean()))
    return accuracies[0], accuracies[-1]


def train(name: str, args: argparse.Namespace) -> tuple[torch.nn.Module, float]:
    """A trained model and its seconds per epoch."""
    seed_everything(args.seed)
    info = dataset_info(args.data)
    images, labels = load_dataset(args.data, split="train")
    train_x, train_y, _, _ = train_val_split(images, labels, 0.15, args.seed)
    loader = TensorLoader(train_x, train_y, args.batch_size, seed=args.seed)
    model = create_model(name, info.num_classes, info.in_channels, info.mean, info.std)
    optimizer = build_optimizer(model, "sgd", lr=0.05)
    scheduler = build_scheduler(optimizer, "cosine", args.epochs, len(loader))
    objective = CrossEntropy()
    if args.defense == "pgd_at":
        eps = args.defense_eps
        objective = AdversarialTraining(
            eps=eps, alpha=0.25 * eps, steps=7, warmup_epochs=args.warmup_epochs
        )
    result = fit(model, loader, objective, optimizer, args.epochs, scheduler=scheduler)
    return model.eval(), result.seconds / args.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--models", default="resnet20,se_resnet20,mgnet,se_mgnet")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--defense", choices=("none", "pgd_at"), default="none")
    parser.add_argument("--defense-eps", type=float, default=0.3)
    parser.add_argument("--warmup-epochs", type=int, default=0, help="pgd_at eps ramp")
    parser.add_argument("--eval-eps", type=float, nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l0-examples", type=int, default=0)
    args = parser.parse_args()
    args.batch_size = args.batch_size or (64 if args.data == "digits" else 128)
    test_x, test_y = load_dataset(args.data, split="test")
    eps_cols = [f"FGSM / worst case @{e} |" for e in args.eval_eps]
    threads = torch.get_num_threads()
    print(
        f"{args.data}, {args.epochs} epochs, defense {args.defense} (eps {args.defense_eps}, "
        f"warm-up {args.warmup_epochs}), {threads} threads"
    )
    print("| model | params | s/epoch | clean | " + " ".join(eps_cols))
    for name in args.models.split(","):
        model, per_epoch = train(name, args)
        clean = float((predict(model, test_x) == test_y).float().mean())
        row = [name, str(model_param_count(model)), f"{per_epoch:.1f}", f"{clean:.3f}"]
        began = time.perf_counter()
        for eps in args.eval_eps:
            fgsm, worst = worst_case_accuracy(model, test_x, test_y, eps)
            row.append(f"{fgsm:.3f} / {worst:.3f}")
        if args.eval_eps:
            row[-1] += f" ({time.perf_counter() - began:.0f} s)"
        print("| " + " | ".join(row) + " |", flush=True)
        if args.l0_examples:
            print_l0(model, test_x[: args.l0_examples], test_y[: args.l0_examples])


def print_l0(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """The L0 curves as a Markdown table: accuracy per pixel budget, median pixels, seconds."""
    report = l0_robustness(model, images, labels)
    print(f"L0 on {report.n} test images, clean {report.clean_accuracy:.3f}")
    print("| attack | " + " | ".join(f"k={k}" for k in report.budgets) + " | median | s |")
    for key, curve in report.curves.items():
        median = "-" if curve.median_pixels is None else f"{curve.median_pixels:g}"
        cells = [f"{a:.3f}" for a in curve.accuracy] + [median, f"{curve.seconds:.0f}"]
        print(f"| {key} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

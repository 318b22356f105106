"""Benchmark robustlab's attack engine against bare passes and torchattacks on digits.

(a) PGD-k cost relative to k bare forward+backward passes of the model on the same batch;
(b) an eps curve with PGD-20 by ``robust_accuracy`` (its default continuation schedule, and the
eps-by-eps ``schedule="full"``) vs a plain loop of ``torchattacks.PGD`` over the whole test set
per eps: median time ratio over alternating repeats, and robust accuracy at every eps (mean
over the repeats' seeds, so that one random start does not decide the comparison).

    python scripts/bench_attacks.py --model resnet20 --epochs 15
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

import robustlab
from robustlab.attacks import PGD
from robustlab.devices import resolve_device, seed_everything
from robustlab.evaluation import robust_accuracy

DEFAULT_GRID = [0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3]  # spans digits models to ~0


def load_digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    try:
        from robustlab.data import load_dataset

        return (*load_dataset("digits", split="train"), *load_dataset("digits", split="test"))
    except ImportError:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
        y = torch.tensor(data.target, dtype=torch.long)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        x, y = x[order], y[order]
        return x[:1400], y[:1400], x[1400:], y[1400:]


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def make_model(name: str) -> nn.Module:
    if name == "tiny":
        return tiny_cnn()
    from robustlab.models import create_model

    return create_model(name, num_classes=10, in_channels=1)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, device) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx].to(device)), y[idx].to(device)).backward()
            optimizer.step()
    model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_passes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> None:
    for _ in range(k):
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xr), y), xr)


def cost_ratio(model, x, y, eps, steps, device, repeats):
    bare = timed(lambda: bare_passes(model, x, y, steps), device, repeats)
    full = PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, early_stop=False)
    early = PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps)
    t_full = timed(lambda: full(x, y), device, repeats)
    t_early = timed(lambda: early(x, y), device, repeats)
    evals = early.run(x, y).grad_evals
    return bare, t_full, t_early, evals / (steps * len(x))


def torchattacks_curve(model, x, y, grid, steps, batch_size, device):
    accuracies = []
    for eps in grid:
        attack = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps)
        correct = 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            adv = attack(xb, yb)
            with torch.no_grad():
                correct += int((model(adv).argmax(1) == yb).sum())
        accuracies.append(correct / len(x))
    return accuracies


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", help="registry name, or 'tiny'")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--checkpoint", help="a robustlab-train checkpoint directory to use instead of training"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cost-eps", type=float, default=0.1)
    parser.add_argument("--eps", type=float, nargs="+", default=DEFAULT_GRID)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def bench_cost(args, model, test_x, test_y, device) -> None:
    xb, yb = test_x[: args.batch_size].to(device), test_y[: args.batch_size].to(device)
    bare, t_full, t_early, active = cost_ratio(
        model, xb, yb, args.cost_eps, args.steps, device, args.repeats
    )
    print(
        f"\n(a) PGD-{args.steps} on {len(xb)} images, eps={args.cost_eps:g} "
        f"(median of {args.repeats})"
    )
    print(f"  {args.steps} bare forward+backward passes : {bare * 1e3:8.1f} ms")
    print(
        f"  PGD, early_stop=False           : {t_full * 1e3:8.1f} ms  ratio {t_full / bare:.3f}"
        "  (target <= 1.05)"
    )
    print(
        f"  PGD, early_stop=True            : {t_early * 1e3:8.1f} ms  ratio {t_early / bare:.3f}"
        f"  (grad evals {active:.1%} of k*N)"
    )


def run_curve(method: str, model, x, y, grid, args, device) -> tuple[list[float], int]:
    """One eps curve: (accuracy per eps, gradient evaluations)."""
    if method == "torchattacks":
        accuracy = torchattacks_curve(model, x, y, grid, args.steps, args.batch_size, device)
        return accuracy, len(grid) * args.steps * len(y)

    def factory(eps: float) -> PGD:
        return PGD(model, eps=eps, alpha=2.5 * eps / args.steps, steps=args.steps)

    curve = robust_accuracy(
        model, x, y, factory, grid, batch_size=args.batch_size, device=device, schedule=method
    )
    return curve.accuracy, sum(p.grad_evals for p in curve.points)


def bench_curve(args, model, test_x, test_y, device) -> None:
    grid = sorted(args.eps)
    methods = ("continuation", "full", "torchattacks")
    seconds = {m: [] for m in methods}
    curves = {m: [] for m in methods}
    evals = {}
    # Alternate the methods within each repeat so that machine noise hits all of them alike.
    for repeat in range(args.repeats):
        for method in methods:
            seed_everything(args.seed + repeat)
            sync(device)
            start = time.perf_counter()
            accuracy, evals[method] = run_curve(method, model, test_x, test_y, grid, args, device)
            sync(device)
            seconds[method].append(time.perf_counter() - start)
            curves[method].append(accuracy)
    mean = {m: [statistics.fmean(c) for c in zip(*curves[m], strict=True)] for m in methods}
    base = statistics.median(seconds["torchattacks"])

    print(
        f"\n(b) PGD-{args.steps} eps curve over {len(test_y)} test images, {len(grid)} eps values,"
        f" batch {args.batch_size}; accuracy = mean over {args.repeats} seeds"
    )
    print(f"  {'eps':>7} {'continuation':>13} {'full':>8} {'torchattacks':>13} {'cont-ta':>8}")
    for i, eps in enumerate(grid):
        cont, full, ta = mean["continuation"][i], mean["full"][i], mean["torchattacks"][i]
        print(f"  {eps:7.3f} {cont:13.4f} {full:8.4f} {ta:13.4f} {cont - ta:+8.4f}")
    for method in methods:
        median = statistics.median(seconds[method])
        worst = max(a - b for a, b in zip(mean[method], mean["torchattacks"], strict=True))
        print(
            f"  {method:>12}: median {median:6.2f}s  ratio {median / base:.3f}  "
            f"grad evals {evals[method]:6d}  max(acc - torchattacks) {worst:+.4f}"
        )
    print("  targets: continuation ratio <= 0.25 and max(acc - torchattacks) <= +0.005")


def main() -> None:
    args = parse_args()
    seed_everything(args.seed)
    device = resolve_device(args.device)
    train_x, train_y, test_x, test_y = load_digits_split()
    start = time.perf_counter()
    if args.checkpoint:
        model = robustlab.load_checkpoint(args.checkpoint, device)
        args.model = args.checkpoint
    else:
        model = make_model(args.model).to(device)
        train(model, train_x, train_y, args.epochs, device)
    with torch.no_grad():
        clean = (model(test_x.to(device)).argmax(1).cpu() == test_y).float().mean().item()
    print(
        f"model={args.model} device={device} threads={torch.get_num_threads()} "
        f"train {time.perf_counter() - start:.1f}s clean accuracy {clean:.4f} (n={len(test_y)})"
    )
    bench_cost(args, model, test_x, test_y, device)
    bench_curve(args, model, test_x, test_y, device)


if __name__ == "__main__":
    main()

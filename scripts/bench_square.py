"""Benchmark robustlab's native Square against torchattacks.Square on digits checkpoints.

For each checkpoint (written by ``scripts/bench_eval.py --checkpoint DIR``: DIR/none and
DIR/pgd_at, resnet20) and each query budget, both attacks run on all test digits (batches of
256, as the worst-case suite sends them) at the same eps and seed. Printed: accuracy under each,
images forwarded through the model, seconds, and the time ratio torchattacks / ours.

    OMP_NUM_THREADS=1 python scripts/bench_square.py --checkpoint bench-models
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torchattacks
from torch import nn

from robustlab.attacks.square import Square
from robustlab.data import load_dataset
from robustlab.models import create_model
from robustlab.training import load_weights


class ForwardCounter:
    """Images forwarded through a model (torchattacks does not report its queries)."""

    def __init__(self, model: nn.Module):
        self.count = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple) -> None:
        self.count += len(inputs[0])


def accuracy_under(model, attack, images, labels, batch_size: int) -> tuple[float, int, float]:
    """(accuracy under ``attack``, images forwarded, seconds), batch by batch."""
    counter, correct = ForwardCounter(model), 0
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        adv = attack(x, y)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == y).sum())
    seconds = time.perf_counter() - started
    counter.handle.remove()
    return correct / len(labels), counter.count, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="bench-models")
    parser.add_argument("--defenses", nargs="+", default=["none", "pgd_at"])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--queries", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images, labels = load_dataset("digits", split="test")
    print(f"threads={torch.get_num_threads()} n={len(labels)} norm={args.norm} eps={args.eps:g}")
    print(f"{'model':>8} {'queries':>7} {'attack':>12} {'accuracy':>8} {'forwards':>9} {'time':>8}")
    for defense in args.defenses:
        model = create_model(args.model, num_classes=10, in_channels=1)
        load_weights(Path(args.checkpoint, defense), model)
        model.eval()
        for queries in args.queries:
            options = dict(eps=args.eps, norm=args.norm, n_queries=queries, seed=args.seed)
            rows = {
                "torchattacks": torchattacks.Square(model, **options),
                "robustlab": Square(model, **options),
            }
            seconds = {}
            for name, attack in rows.items():
                acc, forwards, seconds[name] = accuracy_under(
                    model, attack, images, labels, args.batch_size
                )
                print(
                    f"{defense:>8} {queries:>7} {name:>12} {acc:8.4f} {forwards:9d} "
                    f"{seconds[name]:7.1f}s"
                )
            ratio = seconds["torchattacks"] / seconds["robustlab"]
            print(f"{defense:>8} {queries:>7} {'speed-up':>12} {ratio:8.2f}x")


if __name__ == "__main__":
    main()

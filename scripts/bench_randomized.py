"""Randomized models: robustlab's EOT evaluation against the original AutoAttack's "rand" version.

Two digits models with a randomized forward, as published defenses have them: an MLP with
Gaussian input noise and a small CNN with Gaussian logit noise. For each, on the same test
examples at one Linf eps:

- robustlab: `evaluate()`'s protocol (randomized forward detected: APGD-CE then APGD-DLR with
  20 EOT gradients per step, every verdict the majority over 101 draws, and every check), run
  through `evaluate_robustness` to keep the worst case's images;
- AutoAttack: `pyautoattack`'s `version="rand"` (APGD-CE and APGD-DLR, 20 EOT draws, one
  restart; it judges each attack's breaks by one noisy forward), its adversarial images
  judged by an 11-draw and a 101-draw majority.

Both sets of adversarial images are also re-judged by a fresh 101-draw majority ("re-judged"):
a vote is itself random, and an example voted on several times may fail one vote by chance.
Time is process CPU time on one thread.

    python scripts/bench_randomized.py [--n 100] [--eps 0.1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from robustlab.data import load_dataset, stratified_subset
from robustlab.devices import seed_everything
from robustlab.evaluation import InputNoise, MajorityVote, evaluate_robustness
from robustlab.models import create_model


class LogitNoise(nn.Module):
    """``model(x) + sigma * N(0, I)`` at every call."""

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images)
        return logits + self.sigma * torch.randn_like(logits)


def fitted(model: nn.Module, steps: int = 150) -> nn.Module:
    """``model`` trained full-batch with Adam on the digits training set (seeded)."""
    images, labels = load_dataset("digits", split="train")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model.eval()


def models() -> dict[str, nn.Module]:
    seed_everything(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    cnn = create_model("small_cnn", num_classes=10, in_channels=1)
    return {
        "mlp + input noise 0.25": InputNoise(fitted(mlp), 0.25),
        "small_cnn + logit noise 2.0": LogitNoise(fitted(cnn, steps=60), 2.0),
    }


def cpu_seconds(fn):
    started = time.process_time()
    out = fn()
    return out, time.process_time() - started


@torch.no_grad()
def majority_accuracy(model: nn.Module, images, labels, draws: int) -> float:
    """Accuracy of ``images`` under the majority over ``draws`` forwards."""
    torch.manual_seed(1234)  # a fresh vote, not any draw the attacks saw
    return float((MajorityVote(model, draws)(images).argmax(1) == labels).float().mean())


def autoattack_rand(model, images, labels, eps: float) -> torch.Tensor:
    from pyautoattack import AutoAttack  # the dev extra installs it

    attack = AutoAttack(model, norm="Linf", eps=eps, version="rand", seed=0)
    adv, _ = attack.run_standard_evaluation(images, labels, batch_size=len(images))
    return adv


def robustlab_eot(model, images, labels, eps: float):
    """The worst case of `evaluate()`'s protocol (suite and checks) and its kept images."""
    report = evaluate_robustness(
        model, images, labels, {}, [eps], large_eps=None, keep_adversarial=[("worst_case", eps)]
    )
    return report.worst_case.accuracy[0], report.adversarial[("worst_case", eps)]


def compare(name: str, model: nn.Module, images, labels, eps: float) -> list[str]:
    (accuracy, kept), ours = cpu_seconds(lambda: robustlab_eot(model, images, labels, eps))
    adv, theirs = cpu_seconds(lambda: autoattack_rand(model, images, labels, eps))
    clean = majority_accuracy(model, images, labels, 101)
    return [
        f"| {name} | robustlab | {clean:.3f} | {accuracy:.3f} | "
        f"{majority_accuracy(model, kept, labels, 101):.3f} | {ours:.1f} | {ours / theirs:.2f}x |",
        f"| {name} | AutoAttack rand | | {majority_accuracy(model, adv, labels, 11):.3f} | "
        f"{majority_accuracy(model, adv, labels, 101):.3f} | {theirs:.1f} | 1.00x |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="test examples")
    parser.add_argument("--eps", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, labels = stratified_subset(*load_dataset("digits", split="test"), args.n, seed=0)
    rows = [
        "| model | evaluation | clean (101 draws) | worst case as reported "
        "| re-judged (101 draws) | CPU s | time vs AutoAttack |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model in models().items():
        rows += compare(name, model, images, labels, args.eps)
        print("\n".join(rows[-2:]), flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""Tiny models, data and objectives shared by the defense tests (8x8 digits, small CNN)."""

from __future__ import annotations

import torch
from torch import nn

from robustlab.attacks.pgd import PGD
from robustlab.data import TensorLoader, load_dataset
from robustlab.devices import seed_everything
from robustlab.models import create_model
from robustlab.training import CrossEntropy, build_optimizer, build_scheduler, fit
from robustlab.training.objectives import (
    TRADES,
    AdversarialTraining,
    Distillation,
    FastAdversarialTraining,
    Objective,
)

EPS = 0.1
DEFENSES = ("pgd_at", "pgd_at_mixed", "fast_at", "trades", "distillation")


def digits(n: int | None = None, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of a digits split: (N, 1, 8, 8) in [0, 1] and int64 labels."""
    images, labels = load_dataset("digits", split=split)
    return (images, labels) if n is None else (images[:n], labels[:n])


def tiny_model(seed: int = 0, widths: tuple[int, ...] = (8, 16)) -> nn.Module:
    """A seeded small CNN with BatchNorm."""
    torch.manual_seed(seed)
    return create_model("small_cnn", num_classes=10, in_channels=1, widths=widths)


def make_objective(name: str, teacher: nn.Module | None = None, steps: int = 2) -> Objective:
    """Each defense at a small, fast setting."""
    if name == "pgd_at":
        return AdversarialTraining(eps=EPS, alpha=EPS / 2, steps=steps)
    if name == "pgd_at_mixed":
        return AdversarialTraining(
            eps=EPS, alpha=EPS / 2, steps=steps, mix=0.5, model_mode="train", warmup_epochs=1
        )
    if name == "fast_at":
        return FastAdversarialTraining(eps=EPS)
    if name == "trades":
        return TRADES(eps=EPS, alpha=EPS / 2, steps=steps, beta=6.0)
    if name == "distillation":
        return Distillation(teacher if teacher is not None else tiny_model(seed=99), 4.0)
    raise ValueError(name)


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every buffer (BN running statistics, batch counters)."""
    return {k: v.detach().clone() for k, v in model.named_buffers()}


def train(
    objective: Objective,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    seed: int = 0,
    lr: float = 0.05,
    widths: tuple[int, ...] = (8, 16),
    scheduler: str = "constant",
    **fit_kwargs,
):
    """Seeded fit of a fresh tiny model; returns (model, FitResult)."""
    seed_everything(seed)
    model = tiny_model(seed, widths)
    loader = TensorLoader(images, labels, batch_size=32, shuffle=True, seed=seed)
    optimizer = build_optimizer(model, "sgd", lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = build_scheduler(optimizer, scheduler, epochs=epochs, steps_per_epoch=len(loader))
    result = fit(model, loader, objective, optimizer, epochs=epochs, scheduler=sched, **fit_kwargs)
    return model, result


def trained_teacher(temperature: float = 4.0, epochs: int = 5) -> nn.Module:
    """A teacher fitted with CrossEntropy(temperature=T) by the same fit loop."""
    images, labels = digits(512)
    model, _ = train(CrossEntropy(temperature=temperature), images, labels, epochs, seed=7, lr=0.1)
    return model.eval()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the full state (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> bool:
    """Equal keys and tensors (bit for bit when ``atol`` is 0)."""
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def with_grads(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Fill every parameter's .grad with a CE gradient (train mode); return copies of them."""
    model.train()
    nn.functional.cross_entropy(model(images), labels).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def accuracies(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float):
    """(clean, PGD-10) accuracy in eval mode, seeded."""
    model.eval()
    torch.manual_seed(0)
    adv = PGD(model, eps=eps, alpha=eps / 4, steps=10)(images, labels)
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean().item()
        return clean, (model(adv).argmax(1) == labels).float().mean().item()

"""The batched eps-grid schedule: every (example, eps) pair in one early-stopped attack run.

Each still-correct example is stacked once per eps (rows ``k * n + i``), every row with its own
eps and step size, and the copies of one example share a group: as soon as the copy at eps_k
fools the model, the copies at larger eps stop, since the monotone rule counts them fooled
anyway. This is what "each larger eps attacks only the survivors" costs, but all eps share each
forward+backward call, which is much cheaper than one small batch per eps when a call's cost
hardly depends on its size.

An example counts as fooled at eps_k when any of its copies at eps <= eps_k fooled the model, a
per-example worst case over budgets that all lie inside the eps_k ball; at every eps this is at
least as strong as one run of the same attack at that eps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from robustlab.attacks.base import Attack
from robustlab.errors import ConfigError
from robustlab.runtime import progress

SCHEDULES = ("sequential", "batched")
_BUDGET_FIELDS = ("eps", "alpha")


def _settings(attack: Attack) -> dict:
    return {k: v for k, v in vars(attack).items() if k not in _BUDGET_FIELDS}


def batchable(attacks: Sequence[object]) -> bool:
    """Whether one attack run with per-example eps can stand for every attack of ``attacks``.

    They must be the same native attack class taking per-example budgets, untargeted, crafting
    in eval mode (so its own success is the evaluator's verdict), differing only in eps/alpha.
    """
    first = attacks[0] if attacks else None
    if not isinstance(first, Attack) or not first.supports_per_example_eps:
        return False
    if first.targeted or first.model_mode != "eval":
        return False
    reference = _settings(first)
    return all(type(a) is type(first) and _settings(a) == reference for a in attacks[1:])


def attack_eps_grid(
    attacks: Sequence[Attack],
    images: torch.Tensor,
    labels: torch.Tensor,
    alive: torch.Tensor,
    batch_size: int,
    device: torch.device,
    desc: str,
) -> tuple[torch.Tensor, list[int]]:
    """Attack the examples where ``alive`` at every budget of ``attacks`` (ascending eps).

    Returns ``first_fooled`` (int64 [N]: index of the smallest eps that fooled the example,
    ``len(attacks)`` when none did or it was not attacked) and the gradient evaluations spent
    on the copies of each eps. Examples are taken ``batch_size`` at a time (balanced chunks),
    so one call forwards up to ``batch_size * len(attacks)`` rows.
    """
    k = len(attacks)
    first_fooled = torch.full((len(images),), k, dtype=torch.long)
    evals = [0] * k
    index = alive.nonzero().squeeze(1)
    if index.numel() == 0 or k == 0:
        return first_fooled, evals
    chunks = math.ceil(len(index) / batch_size)
    size = math.ceil(len(index) / chunks)
    eps = torch.tensor([float(a.eps) for a in attacks])
    alpha = torch.tensor([float(getattr(a, "alpha", a.eps)) for a in attacks])
    for start in progress(range(0, len(index), size), desc=desc, total=chunks):
        batch = index[start : start + size]
        n = len(batch)
        x = images[batch].to(device).repeat(k, *[1] * (images.ndim - 1))
        y = labels[batch].to(device).repeat(k)
        result = attacks[-1].run(
            x,
            y,
            eps=eps.repeat_interleave(n),
            alpha=alpha.repeat_interleave(n),
            groups=torch.arange(n).repeat(k),
        )
        success = result.success.cpu().view(k, n)
        # argmax over a bool column finds the first True; columns without one get k.
        first = torch.where(success.any(0), success.int().argmax(0), k)
        first_fooled[batch] = first
        for position, count in enumerate(result.evals_per_example.cpu().view(k, n).sum(1)):
            evals[position] += int(count)
    return first_fooled, evals


def split_seconds(seconds: float, evals: Sequence[int]) -> list[float]:
    """Share one run's wall time among eps in proportion to the gradient evaluations of each."""
    total = sum(evals)
    if total == 0:
        return [seconds / max(len(evals), 1)] * len(evals)
    return [seconds * e / total for e in evals]


def resolve_schedule(schedule: str | None, attacks: Sequence[object]) -> str:
    """``schedule`` checked, or the default: batched when the attacks allow it."""
    if schedule is not None and schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if schedule == "sequential":
        return schedule
    ok = batchable(attacks)
    if schedule == "batched" and not ok:
        raise ConfigError(
            "schedule='batched' needs one native attack (FGSM/PGD) per eps that takes "
            "per-example eps, untargeted, in eval mode; use schedule='sequential'"
        )
    return "batched" if ok else "sequential"

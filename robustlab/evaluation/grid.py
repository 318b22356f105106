"""Accuracy under attack over an eps grid, attacking only the examples still correct.

An example fooled at a small eps counts as fooled at every larger eps (a perturbation inside a
small ball is inside every larger one), so each larger eps attacks only the survivors. The curve
is monotone by construction and much cheaper than attacking the whole set at every eps.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from robustlab.attacks.adapter import GradientCounter
from robustlab.attacks.base import Attack, perturbation_norm
from robustlab.errors import ConfigError
from robustlab.evaluation.continuation import can_continue, eps_continuation
from robustlab.evaluation.keep import AdversarialKeeper
from robustlab.evaluation.stats import wilson_interval
from robustlab.inputs import check_batch
from robustlab.models.runtime import eval_device, model_context, predict
from robustlab.runtime import progress

AttackFactory = Callable[[float], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


@dataclass
class EpsPoint:
    """Accuracy under one attack budget; ``eps`` is ``inf`` for minimal-perturbation attacks."""

    eps: float
    accuracy: float
    ci: tuple[float, float]
    grad_evals: int
    seconds: float
    n: int
    median_norm: float | None = None
    # the perturbation norms of the examples fooled (minimal-perturbation attacks only), so
    # that shards' points merge into the whole set's median
    fooled_norms: list[float] | None = field(default=None, repr=False)


@dataclass
class EpsCurve:
    """Accuracy against one attack over an eps grid (ascending), with cost per eps."""

    attack: str
    clean_accuracy: float
    n: int
    points: list[EpsPoint]
    norm: str = "Linf"
    params: dict = field(default_factory=dict)
    schedule: str = "full"
    # Per example: the smallest eps of the grid that fooled it (0: misclassified clean, inf:
    # never), so that several attacks can be combined into a per-example worst case.
    broken_eps: torch.Tensor | None = None
    # Per kept eps threshold: the adversarial images (see robustlab.evaluation.keep), CPU.
    adversarial: dict[float, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def eps(self) -> list[float]:
        return [p.eps for p in self.points]

    @property
    def accuracy(self) -> list[float]:
        return [p.accuracy for p in self.points]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _attack_batch(
    model: nn.Module, attack: Callable, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(adv, fooled mask, perturbation norms, grad evals) for one batch, judged in eval mode
    on ``model``; a native eval-mode untargeted attack on ``model`` itself has judged already."""
    trusted = (
        isinstance(attack, Attack)
        and attack.model is model
        and attack.model_mode == "eval"
        and not attack.targeted
    )
    if hasattr(attack, "run"):
        result = attack.run(images, labels)
        adv, evals, norms = result.adv_images, result.grad_evals, result.perturbation_norm
        if trusted:
            return adv, result.success, norms, evals
    else:
        counter = GradientCounter(model)
        try:
            adv = attack(images, labels)
        finally:
            counter.remove()
        evals = counter.count
        norms = perturbation_norm(adv - images, getattr(attack, "norm", "Linf"))
    with torch.no_grad(), model_context(model, "eval"):
        fooled = model(adv).argmax(1) != labels
    return adv, fooled, norms, evals


class PerRowAttack:
    """An attack built for each batch from its rows (indices into the evaluated images), e.g.
    with one radius per row; ``forward_evals`` sums the gradient-free queries of those built."""

    def __init__(self, build: Callable[[torch.Tensor], Callable]):
        self.build, self.built = build, []

    def for_rows(self, rows: torch.Tensor) -> Callable:
        self.built.append(self.build(rows))
        return self.built[-1]

    @property
    def forward_evals(self) -> int:
        return sum(getattr(attack, "forward_evals", 0) for attack in self.built)


def attack_survivors(
    model: nn.Module,
    attack: Callable,
    images: torch.Tensor,
    labels: torch.Tensor,
    alive: torch.Tensor,
    batch_size: int,
    device: torch.device,
    desc: str,
    on_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Attack the examples where ``alive``; returns (fooled mask [N], norms [N], grad evals).
    ``attack``: an attack, or a :class:`PerRowAttack` that builds one per batch.

    ``on_batch(index, adv, fooled)``, when given, sees each batch's adversarial images (e.g. to
    keep them) before they are dropped.
    """
    index = alive.nonzero().squeeze(1)
    fooled = torch.zeros(len(images), dtype=torch.bool)
    norms = torch.full((len(images),), float("nan"))
    evals = 0
    # Equal batches of at most batch_size rows: 270 rows run as 135 + 135, not 256 + 14, since
    # a small batch costs far more per row (a third of the throughput at 16 rows on a CPU).
    chunks = index.tensor_split(-(-len(index) // batch_size)) if len(index) else ()
    for batch in progress(chunks, desc=desc, total=len(chunks)):
        x, y = images[batch].to(device), labels[batch].to(device)
        batch_attack = attack.for_rows(batch) if isinstance(attack, PerRowAttack) else attack
        adv, batch_fooled, batch_norms, batch_evals = _attack_batch(model, batch_attack, x, y)
        if on_batch is not None:
            on_batch(batch, adv, batch_fooled)
        fooled[batch] = batch_fooled.cpu()
        norms[batch] = batch_norms.detach().float().cpu()
        evals += int(batch_evals)
    return fooled, norms, evals


def _point(eps: float, alive: torch.Tensor, evals: int, seconds: float) -> EpsPoint:
    n, correct = len(alive), int(alive.sum())
    return EpsPoint(float(eps), correct / max(n, 1), wilson_interval(correct, n), evals, seconds, n)


SCHEDULES = ("continuation", "full")


def robust_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack_factory: AttackFactory,
    eps_grid: Sequence[float],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    name: str = "attack",
    clean_correct: torch.Tensor | None = None,
    schedule: str = "continuation",
    continuation_steps: int | None = None,
    keep_adversarial: Iterable[float] = (),
    row_seeds: torch.Tensor | None = None,
) -> EpsCurve:
    """Accuracy under ``attack_factory(eps)`` for every eps in ``eps_grid``, in one call.

    Only examples still correctly classified are attacked, in ascending eps: an example fooled
    at a smaller eps counts as fooled at every larger eps, and each larger eps attacks only the
    survivors. Per eps: accuracy, 95% Wilson interval, gradient evaluations, seconds.

    ``schedule="continuation"`` (continuable attacks, i.e. native PGD; see
    :mod:`robustlab.evaluation.continuation`): a survivor goes on at the next eps from its
    perturbation stretched to the new radius, with ``continuation_steps`` more steps (default: a
    quarter of the attack's steps, at least 2), all eps in one stream of full batches; the
    stream's seconds are shared out among the eps in proportion to their gradient evaluations.
    ``schedule="full"``, and every attack that cannot continue (APGD, torchattacks, FGSM): each
    eps runs the whole attack afresh (its own random start) on the survivors.
    ``clean_correct`` (bool [N]) skips the clean pass when already known. ``curve.broken_eps``
    holds each example's smallest fooling eps. ``keep_adversarial``: eps thresholds t whose
    images ``curve.adversarial[t]`` keeps as the attack runs (:mod:`robustlab.evaluation.keep`);
    ``row_seeds``: one seed per image for the continuation stream's random starts."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    check_batch(images, labels, eps_grid, model=model)
    device, labels = eval_device(model, device), labels.cpu()
    if clean_correct is None:
        clean_correct = predict(model, images, batch_size, device) == labels
    grid = sorted({float(e) for e in eps_grid})
    attacks = {eps: attack_factory(eps) for eps in grid}
    keeper = AdversarialKeeper(images, grid, keep_adversarial)
    data = (images, labels, clean_correct.cpu().clone(), batch_size, device, name, keeper)
    plan = (schedule, continuation_steps, row_seeds)
    points, broken, schedule = _run_schedule(model, attacks, data, plan)
    clean = float(clean_correct.float().mean()) if len(labels) else 0.0
    norm = getattr(next(iter(attacks.values()), None), "norm", "Linf")
    broken[~clean_correct.cpu()] = 0.0
    curve = EpsCurve(name, clean, len(labels), points, norm, schedule=schedule, broken_eps=broken)
    curve.adversarial = keeper.tensors
    return curve


def _run_schedule(model, attacks: dict, data, plan):
    """(points, broken eps, the schedule that ran) for ``{eps: attack}``: one continuation
    stream when the attacks can continue, else each eps afresh on the survivors."""
    schedule, continuation_steps, row_seeds = plan
    stream = list(attacks.values())
    if schedule == "continuation" and can_continue(stream):
        return (*_continuation_points(stream, *data, (continuation_steps, row_seeds)), schedule)
    return (*_full_points(model, attacks, *data), "full")


def _continuation_points(attacks, images, labels, alive, batch_size, device, name, keeper, plan):
    _sync(device)
    started = time.perf_counter()
    desc, (steps, row_seeds) = f"{name} eps-continuation", plan
    result = eps_continuation(
        attacks, images, labels, alive, batch_size, device, steps, desc, keeper, row_seeds
    )
    _sync(device)
    seconds = time.perf_counter() - started
    total = max(sum(result.grad_evals), 1)
    points = [
        _point(attack.eps, alive & (result.first_fooled > level), evals, seconds * evals / total)
        for level, (attack, evals) in enumerate(zip(attacks, result.grad_evals, strict=True))
    ]
    grid = torch.tensor([a.eps for a in attacks] + [math.inf], dtype=torch.float64)
    return points, grid[result.first_fooled]


def _full_points(model, attacks, images, labels, alive, batch_size, device, name, keeper):
    """Each eps's attack afresh on the survivors of the smaller ones (ascending eps)."""
    alive = alive.clone()
    points, broken = [], torch.full((len(labels),), math.inf, dtype=torch.float64)
    for level, (eps, attack) in enumerate(attacks.items()):
        _sync(device)
        started = time.perf_counter()
        desc = f"{name} eps={eps:g}"
        record = partial(keeper.record, level=level) if keeper else None
        fooled, _, evals = attack_survivors(
            model, attack, images, labels, alive, batch_size, device, desc, record
        )
        alive &= ~fooled
        broken[fooled] = eps
        _sync(device)
        points.append(_point(eps, alive, evals, time.perf_counter() - started))
    return points, broken


def minimal_perturbation_point(
    model: nn.Module,
    attack: Callable,
    images: torch.Tensor,
    labels: torch.Tensor,
    clean_correct: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    name: str = "attack",
) -> EpsPoint:
    """Run an attack without a budget (CW, DeepFool) once on the correct examples.

    Reported at eps = inf with the median perturbation norm of the examples it fooled.
    """
    device = eval_device(model, device)
    _sync(device)
    started = time.perf_counter()
    alive = clean_correct.cpu().clone()
    fooled, norms, evals = attack_survivors(
        model, attack, images, labels.cpu(), alive, batch_size, device, name
    )
    alive &= ~fooled
    _sync(device)
    point = _point(math.inf, alive, evals, time.perf_counter() - started)
    fooled_norms = norms[fooled].tolist()
    point.median_norm = statistics.median(fooled_norms) if fooled_norms else None
    point.fooled_norms = fooled_norms
    return point

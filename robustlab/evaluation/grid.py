"""Accuracy under attack over an eps grid, attacking only the examples still correct.

An example fooled at a small eps counts as fooled at every larger eps (a perturbation inside a
small ball is inside every larger one), so each larger eps attacks only the survivors. The curve
is monotone by construction and much cheaper than attacking the whole set at every eps.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from robustlab.attacks.adapter import GradientCounter
from robustlab.attacks.base import Attack, perturbation_norm
from robustlab.errors import ConfigError
from robustlab.evaluation.continuation import can_continue, eps_continuation
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.keep import AdversarialKeeper
from robustlab.evaluation.stats import wilson_interval
from robustlab.inputs import as_eps_grid, check_batch
from robustlab.models.inference import eval_device
from robustlab.progress import progress

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
    judge: Judge, attack: Callable, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(adv, fooled mask, perturbation norms, grad evals) for one batch. Every break is the
    judge's: a native untargeted eval-mode attack's own verdict is taken only where its forward
    is the judge's (the same deterministic fp32 model), else every row is judged."""
    native = isinstance(attack, Attack)
    if hasattr(attack, "run"):
        with _judged_runs(judge, attack):
            result = attack.run(images, labels)
        adv, evals, norms = result.adv_images, result.grad_evals, result.perturbation_norm
        own = native and attack.model_mode == "eval" and not attack.targeted
        crafting = attack.model if own else None
        return adv, judge.verdict(adv, labels, result.success, crafting=crafting), norms, evals
    counter = GradientCounter(judge.model)
    try:
        adv = attack(images, labels)
    finally:
        counter.remove()
    norms = perturbation_norm(adv - images, getattr(attack, "norm", "Linf"))
    return adv, judge.verdict(adv, labels), norms, counter.count


@contextmanager
def _judged_runs(judge: Judge, attack: Callable) -> Iterator[None]:
    """While it runs, a native attack on a randomized model spends its whole budget: an early
    stop would end a row on one noisy forward, where the judge votes once on what it returns."""
    stops = judge.stochastic and getattr(attack, "early_stop", False) is True
    if not stops:
        yield
        return
    attack.early_stop = False
    try:
        yield
    finally:
        attack.early_stop = True


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
    judge: Judge,
    attack: Callable,
    images: torch.Tensor,
    labels: torch.Tensor,
    alive: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    desc: str,
    on_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Attack the examples where ``alive``; returns (fooled mask [N], norms [N], grad evals),
    every break decided by ``judge``. ``attack``: an attack, or a `PerRowAttack` that builds
    one per batch.

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
        adv, batch_fooled, batch_norms, batch_evals = _attack_batch(judge, batch_attack, x, y)
        if on_batch is not None:
            on_batch(batch, adv, batch_fooled)
        fooled[batch] = batch_fooled.cpu()
        norms[batch] = batch_norms.detach().float().cpu()
        evals += int(batch_evals)
    return fooled, norms, evals


def _point(eps: float, alive: torch.Tensor, evals: int, seconds: float) -> EpsPoint:
    n, correct = len(alive), int(alive.sum())
    accuracy, ci = correct / max(n, 1), wilson_interval(correct, n)
    return EpsPoint(float(eps), accuracy, ci, grad_evals=evals, seconds=seconds, n=n)


SCHEDULES = ("continuation", "full")


@dataclass
class CurveRun:
    """One curve under way: the evaluated set, who is still correct, how to batch, the judge
    of every break and the keeper of the kept images."""

    images: torch.Tensor
    labels: torch.Tensor
    alive: torch.Tensor
    judge: Judge
    batch_size: int
    device: torch.device
    name: str
    keeper: AdversarialKeeper


def robust_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack_factory: AttackFactory,
    eps_grid: Sequence[float] | float,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    name: str = "attack",
    clean_correct: torch.Tensor | None = None,
    schedule: str = "continuation",
    continuation_steps: int | None = None,
    keep_adversarial: Iterable[float] = (),
    row_seeds: torch.Tensor | None = None,
    judge: Judge | None = None,
) -> EpsCurve:
    """Accuracy under ``attack_factory(eps)`` for every eps in ``eps_grid``, in one call.

    Only examples still correctly classified are attacked, in ascending eps: an example fooled
    at a smaller eps counts as fooled at every larger eps, and each larger eps attacks only the
    survivors. Per eps: accuracy, 95% Wilson interval, gradient evaluations, seconds.

    Args:
        model: the model whose predictions are judged (the attacks may craft on another
            module, e.g. a bf16 copy).
        images: float images in [0, 1], (N, C, H, W).
        labels: int64 labels, (N,).
        attack_factory: ``eps -> attack``.
        eps_grid: the radii (a number is a one-element grid).
        batch_size: rows per forward.
        device: where to run (default: the model's).
        name: the curve's name in progress bars and logs.
        clean_correct: the clean pass's verdicts (bool, (N,)) when already known.
        schedule: ``"continuation"`` (continuable attacks, i.e. native PGD; see
            `robustlab.evaluation.continuation`): a survivor goes on at the next eps from its
            perturbation stretched to the new radius, with ``continuation_steps`` more steps
            (default: a quarter of the attack's steps, at least 2), all eps in one stream of
            full batches. ``"full"``, and every attack that cannot continue (APGD,
            torchattacks, FGSM): each eps runs the whole attack afresh on the survivors.
        continuation_steps: see ``schedule``.
        keep_adversarial: eps thresholds t whose images ``curve.adversarial[t]`` keeps as the
            attack runs (`robustlab.evaluation.keep`).
        row_seeds: one seed per image for the continuation stream's random starts.
        judge: the judge of every verdict (default: one forward of ``model``); a randomized
            model's is a [`Judge`][robustlab.evaluation.judge.Judge] with ``draws`` > 1.

    Returns:
        The curve; ``curve.broken_eps`` holds each example's smallest fooling eps.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    eps_grid = as_eps_grid(eps_grid)
    check_batch(images, labels, eps_grid, model=model)
    device, labels = eval_device(model, device), labels.cpu()
    judge = Judge(model) if judge is None else judge
    if clean_correct is None:
        clean_correct = judge.predict(images, batch_size, device) == labels
    grid = sorted({float(e) for e in eps_grid})
    attacks = {eps: attack_factory(eps) for eps in grid}
    keeper = AdversarialKeeper(images, grid, keep_adversarial)
    alive = clean_correct.cpu().clone()
    run = CurveRun(
        images=images,
        labels=labels,
        alive=alive,
        judge=judge,
        batch_size=batch_size,
        device=device,
        name=name,
        keeper=keeper,
    )
    stream = list(attacks.values())
    # a randomized model's curve runs eps by eps: a stream's rows would be judged at every step
    if schedule == "continuation" and can_continue(stream) and not judge.stochastic:
        points, broken = _continuation_points(stream, run, continuation_steps, row_seeds)
    else:
        schedule = "full"
        points, broken = _full_points(attacks, run)
    clean = float(clean_correct.float().mean()) if len(labels) else 0.0
    norm = getattr(next(iter(attacks.values()), None), "norm", "Linf")
    broken[~clean_correct.cpu()] = 0.0
    curve = EpsCurve(name, clean, len(labels), points, norm, schedule=schedule, broken_eps=broken)
    curve.adversarial = keeper.tensors
    return curve


def _continuation_points(
    attacks: list, run: CurveRun, continuation_steps: int | None, row_seeds: torch.Tensor | None
) -> tuple[list[EpsPoint], torch.Tensor]:
    """The points of one continuation stream over the grid; its seconds are shared out among
    the eps in proportion to their gradient evaluations."""
    _sync(run.device)
    started = time.perf_counter()
    result = eps_continuation(
        attacks,
        run.images,
        run.labels,
        run.alive,
        run.judge,
        batch_size=run.batch_size,
        device=run.device,
        continuation_steps=continuation_steps,
        desc=f"{run.name} eps-continuation",
        keeper=run.keeper,
        row_seeds=row_seeds,
    )
    _sync(run.device)
    seconds = time.perf_counter() - started
    per_eval = seconds / max(sum(result.grad_evals), 1)
    points = [
        _point(attack.eps, run.alive & (result.first_fooled > level), evals, per_eval * evals)
        for level, (attack, evals) in enumerate(zip(attacks, result.grad_evals, strict=True))
    ]
    grid = torch.tensor([a.eps for a in attacks] + [math.inf], dtype=torch.float64)
    return points, grid[result.first_fooled]


def _full_points(attacks: dict, run: CurveRun) -> tuple[list[EpsPoint], torch.Tensor]:
    """Each eps's attack afresh on the survivors of the smaller ones (ascending eps)."""
    alive = run.alive.clone()
    points, broken = [], torch.full((len(run.labels),), math.inf, dtype=torch.float64)
    for level, (eps, attack) in enumerate(attacks.items()):
        _sync(run.device)
        started = time.perf_counter()
        record = partial(run.keeper.record, level=level) if run.keeper else None
        fooled, _, evals = attack_survivors(
            run.judge,
            attack,
            run.images,
            run.labels,
            alive,
            batch_size=run.batch_size,
            device=run.device,
            desc=f"{run.name} eps={eps:g}",
            on_batch=record,
        )
        alive &= ~fooled
        broken[fooled] = eps
        _sync(run.device)
        points.append(_point(eps, alive, evals, time.perf_counter() - started))
    return points, broken


def minimal_perturbation_point(
    judge: Judge,
    attack: Callable,
    images: torch.Tensor,
    labels: torch.Tensor,
    clean_correct: torch.Tensor,
    *,
    batch_size: int = 256,
    device: torch.device,
    name: str = "attack",
) -> EpsPoint:
    """Run an attack without a budget (CW, DeepFool) once on the correct examples.

    Reported at eps = inf with the median perturbation norm of the examples it fooled (breaks
    decided by ``judge``).
    """
    _sync(device)
    started = time.perf_counter()
    alive = clean_correct.cpu().clone()
    fooled, norms, evals = attack_survivors(
        judge,
        attack,
        images,
        labels.cpu(),
        alive,
        batch_size=batch_size,
        device=device,
        desc=name,
    )
    alive &= ~fooled
    _sync(device)
    point = _point(math.inf, alive, evals, time.perf_counter() - started)
    fooled_norms = norms[fooled].tolist()
    point.median_norm = statistics.median(fooled_norms) if fooled_norms else None
    point.fooled_norms = fooled_norms
    return point

"""The worst-case suite: complementary attacks, each on the survivors of all earlier ones.

AutoAttack's protocol (Croce & Hein 2020) combined with the survivors-only eps grid. An example
broken at eps e counts as broken at every larger eps (its adversarial lies in every larger
ball), so each attack runs only where an example is still unbroken.

Each attack works from an example's *frontier*, the largest grid eps at which no attack has
broken it yet (the top of the grid at first, or where the ``prior`` curves, e.g. a job's PGD-20
over the grid, left it): it attacks the example there, and only where it succeeds does it go on
to the next smaller eps (to find the smallest eps it breaks). It does so in waves: the first
attacks every example at its own frontier, all in the same batches (one radius per row), the
next the examples the first broke, one grid eps lower, and so on; a batch of examples at mixed
eps runs as fast as one at a single eps, and small batches would not. Where it fails at the
frontier it is not run at smaller eps: a larger ball holds every smaller one, and an attack that
finds nothing in the larger ball is not expected to find anything in a smaller one. Robust examples,
the expensive ones, are thus attacked once per attack instead of once per eps;
``scripts/bench_eval.py`` checks the result against a reference that runs every attack at every
eps independently, and a test checks it on a linear model, where every example's smallest
breaking eps is known in closed form.

``standard``: APGD-CE (100 steps), APGD-T (targeted DLR, 100 steps, 9 targets), then Square
(5000 queries) as the gradient-free check; when Square breaks examples the gradient attacks
did not, the gradients are suspect (masking).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from robustlab.attacks.apgd import APGD
from robustlab.attacks.base import check_images
from robustlab.attacks.catalogue import build_attack
from robustlab.attacks.square import SQUARE_NORMS  # an L1 suite has no gradient-free check
from robustlab.errors import ConfigError
from robustlab.evaluation.grid import PerRowAttack, attack_survivors
from robustlab.evaluation.keep import AdversarialKeeper
from robustlab.evaluation.worst_case_result import (
    CLEAN,
    GRADIENT_FREE,
    WorstCaseResult,
    eps_key,
    snap_to_grid,
)
from robustlab.models.folding import fold_batchnorm
from robustlab.models.runtime import eval_device, predict

SUITES = ("standard", "fast", "none")
# (APGD-CE steps, APGD-T steps, APGD-T targets, Square queries) per suite.
SCHEDULES = {"standard": (100, 100, 9, 5000), "fast": (100, 100, 3, 1000)}
ATTACKS = ("apgd_ce", "apgd_t", GRADIENT_FREE)  # the suite's attacks, in the order they run


def suite_attack_names(norm: str = "Linf") -> tuple[str, ...]:
    """The suite's attacks under ``norm``, in the order they run."""
    return ATTACKS if norm in SQUARE_NORMS else ATTACKS[:2]


def suite_attack(
    name: str,
    model: nn.Module,
    eps: float | torch.Tensor,
    suite: str = "standard",
    norm: str = "Linf",
    seed: int = 0,
):
    """The suite's attack ``name`` at ``eps`` (a float, or one radius per image)."""
    if name not in ATTACKS:
        raise ConfigError(f"unknown suite attack {name!r}: use one of {', '.join(ATTACKS)}")
    if suite not in SCHEDULES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SCHEDULES)}")
    ce_steps, t_steps, targets, queries = SCHEDULES[suite]
    if name == "apgd_ce":
        return APGD(model, eps=eps, steps=ce_steps, norm=norm, loss="ce", seed=seed)
    if name == "apgd_t":
        return APGD(
            model,
            norm,
            eps,
            t_steps,
            seed=seed,
            loss="dlr",
            targeted=True,
            n_target_classes=targets,
        )
    return build_attack("Square", model, eps=eps, norm=norm, n_queries=queries, seed=seed)


def suite_attacks(
    model: nn.Module, eps: float, suite: str = "standard", norm: str = "Linf", seed: int = 0
) -> dict[str, object]:
    """The suite's attacks at one eps, in the order they run (no Square under L1)."""
    return {
        name: suite_attack(name, model, eps, suite, norm, seed) for name in suite_attack_names(norm)
    }


def worst_case(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps_grid: Sequence[float],
    suite: str = "standard",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    norm: str = "Linf",
    prior: Mapping[str, torch.Tensor] | None = None,
    keep_adversarial: Iterable[float] = (),
) -> WorstCaseResult:
    """Worst-case robust accuracy of ``model`` under ``suite`` over ``eps_grid``.

    The attacks of :func:`suite_attacks` run in order, each on the examples still unbroken,
    from every example's frontier down (see the module docstring). ``prior``: per-example
    broken eps (``inf``: never) of attacks that already ran (e.g. the job's PGD curves); their
    examples are not attacked again and the result is the worst case over them and the suite.
    Images must be floats in [0, 1]. ``keep_adversarial``: eps thresholds t whose images
    ``result.adversarial[t]`` keeps (no extra pass): the example of the suite attack that broke
    row i at an eps <= t, else the final iterate of the last suite attack that ran on it at the
    largest eps <= t, else the clean image (rows broken by ``prior`` attacks are never attacked
    here: their own runs hold them).
    """
    if suite not in SCHEDULES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SCHEDULES)}")
    check_images(images)
    device = eval_device(model, device)
    labels = labels.cpu()
    grid = sorted({float(e) for e in eps_grid})
    correct = predict(model, images, batch_size, device) == labels
    result = _starting_result(correct, grid, suite, norm, prior or {})
    names = suite_attack_names(norm)
    # forward_evals: images forwarded without a gradient (Square's queries)
    cost = {name: {"grad_evals": 0, "forward_evals": 0, "seconds": 0.0} for name in names}
    keeper = AdversarialKeeper(images, grid, keep_adversarial)
    # The attacks craft on a BN-folded copy (same logits, fewer layers; channels-last on the
    # CPU, where it was up to 6% faster); _Runner judges every break on the model itself.
    probe = images[:batch_size].to(device)
    crafting = fold_batchnorm(model, probe, channels_last=device.type == "cpu")
    # Every attack draws from its own seeded generator: the caller's random state is left alone.
    for name in names:
        run = _Runner(model, images, labels, result, cost[name], keeper, batch_size, device, name)
        _descend(run, partial(suite_attack, name, crafting, suite=suite, norm=norm, seed=seed))
    result.attack_cost = cost
    result.adversarial = keeper.tensors
    result.warnings = _masking_warnings(result)
    return result


def _starting_result(
    correct: torch.Tensor, grid: list[float], suite: str, norm: str, prior: Mapping
) -> WorstCaseResult:
    """The result before any suite attack: misclassified examples broken at eps 0, the rest
    unbroken but where the ``prior`` attacks broke them."""
    start = torch.where(correct, float("inf"), 0.0).double()  # float64: eps keys stay exact
    result = WorstCaseResult(suite, norm, grid, start, [None if c else CLEAN for c in correct])
    return result.combined(prior)


def _descend(run: _Runner, make_attack: Callable[[torch.Tensor], object]) -> None:
    """Run an attack (``make_attack(radii)``) in waves: first on every unbroken example at its
    frontier (the largest grid level at which it is unbroken), then one level lower on the
    examples the last wave broke, until none is left to attack."""
    grid = run.grid
    level = torch.searchsorted(grid, run.result.broken_eps, right=False) - 1
    lowest = int((grid > 0).nonzero()[0]) if (grid > 0).any() else len(grid)
    todo, wave = level >= lowest, 1
    while todo.any():
        fooled = run(make_attack, level, todo, wave)
        todo = fooled & (level > lowest)  # broken above the lowest level: one level lower next
        level, wave = torch.where(fooled, level - 1, level), wave + 1


@dataclass
class _Runner:
    """Runs one suite attack on a subset of the examples, each at its own grid level (one
    radius per row, attacks built per batch), recording who broke what, its cost, and (through
    the keeper) its images: a later attack overwrites only the rows it ran on."""

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    result: WorstCaseResult
    cost: dict[str, float]
    keeper: AdversarialKeeper
    batch_size: int
    device: torch.device
    name: str

    @property
    def grid(self) -> torch.Tensor:
        """The grid's eps by level, in the dtype of ``broken_eps`` (float64: keys stay exact)."""
        return torch.tensor(self.result.eps, dtype=self.result.broken_eps.dtype)

    def __call__(self, make_attack, level: torch.Tensor, alive: torch.Tensor, wave: int):
        """The mask of the examples the attack broke among ``alive``, row i at grid level
        ``level[i]``."""
        if not alive.any():
            return alive
        grid = self.grid
        attack = PerRowAttack(lambda rows: make_attack(grid[level[rows]].float()))
        record = partial(self._keep, level=level) if self.keeper else None
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        fooled, _, evals = attack_survivors(
            self.model,
            attack,
            self.images,
            self.labels,
            alive,
            self.batch_size,
            self.device,
            f"{self.name} wave {wave}",
            record,
        )
        if cuda:
            torch.cuda.synchronize(self.device)
        self.cost["seconds"] += time.perf_counter() - started
        self.cost["grad_evals"] += int(evals)
        self.cost["forward_evals"] += attack.forward_evals
        self.result.broken_eps[fooled] = grid[level[fooled]]
        for i in fooled.nonzero().squeeze(1).tolist():
            self.result.broken_by[i] = self.name
        return fooled

    def _keep(self, rows: torch.Tensor, adv: torch.Tensor, fooled: torch.Tensor, level) -> None:
        self.keeper.record(rows, adv, fooled, level[rows])


def _masking_warnings(result: WorstCaseResult) -> list[str]:
    table = result.first_broken_by()
    found = {k: v[GRADIENT_FREE] for k, v in table.items() if v.get(GRADIENT_FREE)}
    if not found:
        return []
    where = ", ".join(f"{count} at eps={key}" for key, count in found.items())
    return [
        f"gradient masking suspected: the gradient-free Square attack broke examples that "
        f"every gradient attack missed ({where}); gradient attacks are failing on this model, "
        "so trust only the worst case"
    ]


__all__ = [
    "SUITES",
    "WorstCaseResult",
    "eps_key",
    "snap_to_grid",
    "suite_attack",
    "suite_attacks",
    "worst_case",
]

"""The worst-case suite: complementary attacks, each on the survivors of all earlier ones.

AutoAttack's protocol (Croce & Hein 2020) combined with the survivors-only eps grid: at each
eps (ascending) the suite's attacks run one after the other, each only on the examples that
every earlier attack (and every smaller eps) failed to break. An example broken at eps e counts
as broken at every larger eps. ``standard``: APGD-CE (100 steps), APGD-T (targeted DLR, 100
steps, 9 targets), then Square (5000 queries, torchattacks) as the gradient-free check; when
Square breaks examples the gradient attacks did not, the gradients are suspect (masking).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from robustlab.attacks.apgd import APGD
from robustlab.attacks.base import check_images
from robustlab.attacks.catalogue import build_attack
from robustlab.attacks.evaluation import attack_survivors
from robustlab.attacks.keep import AdversarialKeeper
from robustlab.attacks.stats import wilson_interval
from robustlab.errors import ConfigError
from robustlab.fileio import write_json_atomic
from robustlab.models.runtime import eval_device, predict

SUITES = ("standard", "fast", "none")
# (APGD-CE steps, APGD-T steps, APGD-T targets, Square queries) per suite.
SCHEDULES = {"standard": (100, 100, 9, 5000), "fast": (50, 50, 3, 1000)}
CLEAN = "clean"  # broken_by of an example misclassified without any attack
GRADIENT_FREE = "square"
ATTACKS = ("apgd_ce", "apgd_t", GRADIENT_FREE)  # the suite's attacks, in the order they run


def suite_attacks(
    model: nn.Module, eps: float, suite: str = "standard", norm: str = "Linf", seed: int = 0
) -> dict[str, object]:
    """The suite's attacks at one eps, in the order they run."""
    if suite not in SCHEDULES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SCHEDULES)}")
    ce_steps, t_steps, targets, queries = SCHEDULES[suite]
    apgd_ce = APGD(model, eps, steps=ce_steps, norm=norm, loss="ce", seed=seed)
    apgd_t = APGD(
        model, eps, t_steps, norm, "dlr", targeted=True, n_target_classes=targets, seed=seed
    )
    square = build_attack("Square", model, eps=eps, norm=norm, n_queries=queries, seed=seed)
    return dict(zip(ATTACKS, (apgd_ce, apgd_t, square), strict=True))


def eps_key(eps: float) -> str:
    """The results.json key of an eps: ``repr(float(eps))``."""
    return repr(float(eps))


@dataclass
class WorstCaseResult:
    """Per-example worst case over a sequence of attacks on an eps grid.

    ``broken_eps[i]``: smallest eps at which example i was broken (0 when misclassified clean,
    ``inf`` when never); ``broken_by[i]``: the attack that broke it first (``"clean"``, or None
    when never). ``attack_cost[attack]``: ``{"grad_evals", "seconds"}`` summed over the grid.
    ``adversarial[eps]``: the suite's kept images (see :func:`worst_case`), when asked for.
    """

    suite: str
    norm: str
    eps: list[float]
    broken_eps: torch.Tensor
    broken_by: list[str | None]
    attack_cost: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    adversarial: dict[float, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.broken_eps)

    @property
    def accuracy(self) -> list[float]:
        """Worst-case accuracy at each eps of the grid."""
        return [self.survivors(e) / max(self.n, 1) for e in self.eps]

    @property
    def ci(self) -> list[tuple[float, float]]:
        """95% Wilson interval of each accuracy."""
        return [wilson_interval(self.survivors(e), self.n) for e in self.eps]

    @property
    def masking(self) -> bool:
        """Whether the gradient-free attack broke examples every gradient attack missed."""
        return any(by == GRADIENT_FREE for by in self.broken_by)

    def survivors(self, eps: float) -> int:
        return int((self.broken_eps > eps).sum())

    def first_broken_by(self) -> dict[str, dict[str, int]]:
        """Per eps key: how many examples each attack was the first to break there."""
        table: dict[str, dict[str, int]] = {eps_key(e): {} for e in self.eps}
        for at, by in zip(self.broken_eps.tolist(), self.broken_by, strict=True):
            if by is not None and by != CLEAN and eps_key(at) in table:
                counts = table[eps_key(at)]
                counts[by] = counts.get(by, 0) + 1
        return table

    def to_results(self) -> dict:
        """The results.json fragment (merge ``robust_accuracy*`` into the job's own dicts)."""
        keys = [eps_key(e) for e in self.eps]
        return {
            "robust_accuracy": {"worst_case": dict(zip(keys, self.accuracy, strict=True))},
            "robust_accuracy_ci": {
                "worst_case": {k: [lo, hi] for k, (lo, hi) in zip(keys, self.ci, strict=True)}
            },
            "worst_case": {
                "suite": self.suite,
                "norm": self.norm,
                "n": self.n,
                "first_broken_by": self.first_broken_by(),
                "attack_cost": {k: dict(v) for k, v in self.attack_cost.items()},
                "masking": self.masking,
            },
            "warnings": list(self.warnings),
        }

    def save_record(self, path: str | Path) -> Path:
        """Write the per-example record as JSON: for each example the smallest eps that broke
        it (null: never) and the attack that did."""
        eps = [None if e == float("inf") else e for e in self.broken_eps.tolist()]
        record = {"suite": self.suite, "norm": self.norm, "eps_grid": self.eps}
        record |= {"broken_eps": eps, "broken_by": self.broken_by}
        write_json_atomic(path, record)  # creates the folder; a reader never sees half a file
        return Path(path)

    def combined(self, others: Mapping[str, torch.Tensor]) -> WorstCaseResult:
        """This result merged with other attacks' per-example broken eps (e.g. PGD curves):
        an example counts as broken at the smallest eps any of them reached, credited to the
        attack that got there first (ties go to the earlier entry, ``self`` first)."""
        broken, by = self.broken_eps.clone(), list(self.broken_by)
        for name, other in others.items():
            other = snap_to_grid(other.cpu().double(), self.eps)
            for i in (other < broken).nonzero().squeeze(1).tolist():
                broken[i], by[i] = other[i], name
        cost = dict(self.attack_cost)
        return WorstCaseResult(self.suite, self.norm, self.eps, broken, by, cost, self.warnings)


def snap_to_grid(broken_eps: torch.Tensor, grid: Sequence[float]) -> torch.Tensor:
    """Each broken eps moved up to the smallest grid eps >= it (inf beyond the grid): breaking
    an example at eps e breaks it at every larger eps. 0 (misclassified clean) stays 0."""
    grid_t = torch.tensor(sorted(grid) + [float("inf")], dtype=broken_eps.dtype)
    snapped = grid_t[torch.searchsorted(grid_t, broken_eps, right=False)]
    return torch.where(broken_eps <= 0, broken_eps, snapped)


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

    At each eps (ascending) every attack of :func:`suite_attacks` runs, in order, on the
    examples still unbroken. ``prior``: per-example broken eps (``inf``: never) of attacks that
    already ran (e.g. the job's PGD curves); their examples are not attacked again and the
    result is the worst case over them and the suite. Images must be floats in [0, 1].
    ``keep_adversarial``: eps thresholds t whose images ``result.adversarial[t]`` keeps (no
    extra pass): the example of the suite attack that broke row i at an eps <= t, else the
    last suite attack's final iterate at the largest eps <= t, else the clean image (rows
    broken by ``prior`` attacks are never attacked here: their own runs hold them).
    """
    if suite not in SCHEDULES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SCHEDULES)}")
    check_images(images)
    device = eval_device(model, device)
    labels = labels.cpu()
    grid = sorted({float(e) for e in eps_grid})
    correct = predict(model, images, batch_size, device) == labels
    start = torch.where(correct, float("inf"), 0.0).double()  # float64: eps keys stay exact
    result = WorstCaseResult(suite, norm, grid, start, [None if c else CLEAN for c in correct])
    result = result.combined(prior or {})
    cost = {name: {"grad_evals": 0, "seconds": 0.0} for name in ATTACKS}
    keeper = AdversarialKeeper(images, grid, keep_adversarial)
    # torchattacks' Square re-seeds the global generators: keep the caller's random state.
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for eps in (e for e in grid if e > 0):
            spec = (suite, norm, seed, batch_size, device)
            record = partial(keeper.record, level=grid.index(eps)) if keeper else None
            _attack_at(model, images, labels, eps, result, cost, spec, record)
    result.attack_cost = cost
    result.adversarial = keeper.tensors
    result.warnings = _masking_warnings(result)
    return result


def _attack_at(model, images, labels, eps, result, cost, spec, record) -> None:
    """Run the suite at one eps on the survivors, recording who broke what (and, through
    ``record``, each attack's images: a later attack overwrites only the rows still alive)."""
    suite, norm, seed, batch_size, device = spec
    for name, attack in suite_attacks(model, eps, suite, norm, seed).items():
        alive = result.broken_eps > eps
        if not alive.any():
            return
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fooled, _, evals = attack_survivors(
            model, attack, images, labels, alive, batch_size, device, f"{name} eps={eps:g}", record
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        cost[name]["seconds"] += time.perf_counter() - started
        cost[name]["grad_evals"] += int(evals)
        result.broken_eps[fooled] = eps
        for i in fooled.nonzero().squeeze(1).tolist():
            result.broken_by[i] = name


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


__all__ = ["SUITES", "WorstCaseResult", "eps_key", "snap_to_grid", "suite_attacks", "worst_case"]

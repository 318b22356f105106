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

Every row draws its random numbers from its own seed, derived from the suite's ``seed`` and
the row's ``example_ids`` entry (its index in the whole evaluated set; default ``range(N)``): a
shard of the set, or the rest of a wave after a resume, gives each row the result the whole
set gives it (`robustlab.evaluation.suite_waves`). ``state_path``: a state file
(`robustlab.evaluation.resume_state`) that makes the run resumable; an existing one for
the same model, data and settings is continued, and ``resume=False`` starts afresh.

``standard`` (the default) and ``reference``: AutoAttack's budgets on every survivor: APGD-CE
(100 steps), APGD-T (targeted DLR, 100 steps, 9 targets), then Square (5000 queries) as the
gradient-free check; when Square breaks examples the gradient attacks did not, the gradients
are suspect (masking). AutoAttack's FAB-T is left out: on the digits and MNIST benchmarks it
broke nothing the others had not, and the suite without it runs at 0.32-0.49x AutoAttack's
time (results page).
``sampled`` (opt-in): the same attacks, spending the budgets where they can change the answer:
APGD-T's first 3 targets and a 500-query Square on every survivor, the full budgets (9 targets,
5000 queries) on a random sample of 64 survivors, and on every survivor only when the sample
(or the 500-query Square) broke an example (`robustlab.evaluation.suite_budget`); the result
records what ran and the bound on what the full budgets would have found beyond it. It pays
off only where survivors far outnumber the sample (CIFAR-10 scale); on 200 MNIST images it cost
1.45x ``reference`` on a PGD-AT model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from robustlab.attacks.apgd import APGD
from robustlab.attacks.catalogue import build_attack
from robustlab.attacks.square import SQUARE_NORMS  # an L1 suite has no gradient-free check
from robustlab.errors import ConfigError
from robustlab.evaluation.checks import gradient_free_warnings
from robustlab.evaluation.fingerprint import evaluation_fingerprint, tensors_digest
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.keep import AdversarialKeeper
from robustlab.evaluation.resume_state import EvaluationState, open_state
from robustlab.evaluation.suite_budget import Stage, suite_plan
from robustlab.evaluation.suite_stages import StageRun, budget_of, run_stage
from robustlab.evaluation.suite_waves import SuiteProgress
from robustlab.evaluation.worst_case_result import (
    CLEAN,
    GRADIENT_FREE,
    WorstCaseResult,
    eps_key,
    snap_to_grid,
)
from robustlab.inputs import as_eps_grid, check_batch
from robustlab.models.acceleration import crafting_model
from robustlab.models.folding import fold_batchnorm
from robustlab.models.inference import eval_device

SUITES = ("standard", "reference", "sampled", "fast", "none")
# (APGD-CE steps, APGD-T steps, APGD-T targets, Square queries) per suite: each attack's full
# budget (``sampled`` spends it on a sample first, see robustlab.evaluation.suite_budget).
SCHEDULES = {
    "standard": (100, 100, 9, 5000),
    "reference": (100, 100, 9, 5000),
    "sampled": (100, 100, 9, 5000),
    "fast": (100, 100, 3, 1000),
}
ATTACKS = ("apgd_ce", "apgd_t", GRADIENT_FREE)  # the suite's attacks, in the order they run
# A randomized forward: AutoAttack's "rand" protocol, APGD-CE then untargeted APGD-DLR, each
# with EOT gradients. APGD-T's nine targets cost nine times APGD-DLR under EOT, and Square
# accepts or rejects each query on one noisy forward, so neither adds what it costs there.
RANDOMIZED_ATTACKS = ("apgd_ce", "apgd_dlr")


def suite_attack_names(norm: str = "Linf", randomized: bool = False) -> tuple[str, ...]:
    """The suite's attacks under ``norm``, in the order they run (``randomized``: the attacks
    for a randomized forward)."""
    if randomized:
        return RANDOMIZED_ATTACKS
    return ATTACKS if norm in SQUARE_NORMS else ATTACKS[:2]


def suite_attack(
    name: str,
    model: nn.Module,
    eps: float | torch.Tensor,
    *,
    suite: str = "standard",
    norm: str = "Linf",
    seed: int | torch.Tensor = 0,
    eot_iter: int = 1,
):
    """The suite's attack ``name`` at ``eps`` (a float, or one radius per image); the APGDs
    average their gradient over ``eot_iter`` forwards (EOT, for randomized models)."""
    if name not in ATTACKS + RANDOMIZED_ATTACKS:
        names = ", ".join(ATTACKS + RANDOMIZED_ATTACKS[1:])
        raise ConfigError(f"unknown suite attack {name!r}: use one of {names}")
    if suite not in SCHEDULES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SCHEDULES)}")
    ce_steps, t_steps, targets, queries = SCHEDULES[suite]
    budgets = {"apgd_t": (t_steps, targets), "square": (queries, 0)}
    stage = Stage(name, name, *budgets.get(name, (ce_steps, 0)))
    return stage_attack(stage, model, eps, norm=norm, seed=seed, eot_iter=eot_iter)


def stage_attack(
    stage: Stage,
    model: nn.Module,
    eps: float | torch.Tensor,
    *,
    norm: str = "Linf",
    seed: int | torch.Tensor = 0,
    eot_iter: int = 1,
):
    """The attack of one suite stage at ``eps`` (a float, or one radius per image)."""
    apgd = partial(APGD, model, eps=eps, norm=norm, seed=seed, eot_iter=eot_iter)
    if stage.attack == "apgd_ce":
        return apgd(steps=stage.budget, loss="ce")
    if stage.attack == "apgd_dlr":
        return apgd(steps=stage.budget, loss="dlr")
    if stage.attack == "apgd_t":
        return apgd(steps=stage.budget, loss="dlr", targeted=True, n_target_classes=stage.targets)
    return build_attack("Square", model, eps=eps, norm=norm, n_queries=stage.budget, seed=seed)


def suite_attacks(
    model: nn.Module, eps: float, *, suite: str = "standard", norm: str = "Linf", seed: int = 0
) -> dict[str, object]:
    """The suite's attacks at one eps, in the order they run (no Square under L1)."""
    return {
        name: suite_attack(name, model, eps, suite=suite, norm=norm, seed=seed)
        for name in suite_attack_names(norm)
    }


@dataclass(frozen=True)
class SuiteSettings:
    """How a suite run attacks: which suite and norm, the seed, EOT and crafting precision."""

    suite: str = "standard"
    norm: str = "Linf"
    seed: int = 0
    eot_iter: int = 1
    crafting_dtype: torch.dtype | None = None

    def fingerprint(self) -> dict:
        return {
            "suite": self.suite,
            "norm": self.norm,
            "seed": self.seed,
            "eot_iter": self.eot_iter,
            "crafting_dtype": str(self.crafting_dtype),
        }


def worst_case(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps_grid: Sequence[float] | float,
    *,
    suite: str = "standard",
    norm: str = "Linf",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    prior: Mapping[str, torch.Tensor] | None = None,
    keep_adversarial: Iterable[float] = (),
    eot_iter: int = 1,
    draws: int = 1,
    judge: Judge | None = None,
    crafting_dtype: torch.dtype | None = None,
    example_ids: torch.Tensor | None = None,
    state_path: str | Path | EvaluationState | None = None,
    resume: bool = True,
) -> WorstCaseResult:
    """Worst-case robust accuracy of ``model`` under ``suite`` over ``eps_grid``.

    The suite's attacks run in order, each on the examples still unbroken, from every
    example's frontier down (see the module docstring).

    Args:
        model: any module mapping [0, 1] images to logits.
        images: float images in [0, 1], (N, C, H, W).
        labels: int64 labels, (N,).
        eps_grid: the radii (a number is a one-element grid).
        suite: ``"standard"``, ``"reference"`` or ``"fast"`` (see the module docstring).
        norm: ``"Linf"``, ``"L2"`` or ``"L1"`` (no Square under L1).
        batch_size: rows per forward.
        device: where to run (default: the model's).
        seed: the suite's seed; every row draws from its own seed derived from it.
        prior: per-example broken eps (``inf``: never) of attacks that already ran (e.g. the
            job's PGD curves); their examples are not attacked again and the result is the
            worst case over them and the suite.
        keep_adversarial: eps thresholds t whose images ``result.adversarial[t]`` keeps (no
            extra pass): the example of the suite attack that broke row i at an eps <= t, else
            the final iterate of the last suite attack that ran on it at the largest eps <= t,
            else the clean image.
        eot_iter: gradients averaged per APGD step (EOT, for a randomized forward; then the
            randomized suite runs: APGD-CE and APGD-DLR).
        draws: forwards whose majority is each prediction (ignored when ``judge`` is given).
        judge: the evaluation's judge (default: ``Judge(model, draws)``).
        crafting_dtype: e.g. bf16: the attacks craft under autocast to it; every break is
            still judged on the fp32 model.
        example_ids: each row's index in the whole evaluated set (its seed; default
            ``range(N)``).
        state_path: a state file that makes the run resumable; an existing one for the same
            model, data and settings is continued.
        resume: False starts afresh even where a state exists.
    """
    eps_grid = as_eps_grid(eps_grid)
    _check(suite, images, labels, eps_grid, model)
    device, labels = eval_device(model, device), labels.cpu()
    judge = Judge(model, draws) if judge is None else judge
    settings = SuiteSettings(suite, norm, seed, eot_iter, crafting_dtype)
    randomized = judge.stochastic or eot_iter > 1
    grid = sorted({float(e) for e in eps_grid})
    ids = torch.arange(len(labels)) if example_ids is None else example_ids.cpu().long()
    extra = {"batch_size": batch_size, "draws": judge.draws, "keep": sorted(keep_adversarial)}
    fingerprint = (
        _fingerprint(model, images, labels, ids, grid, settings, prior, extra)
        if isinstance(state_path, str | Path)
        else {}  # no file, or a caller's state with its own fingerprint
    )
    state = open_state(state_path, fingerprint, resume)
    correct = judge.predict(images, batch_size, device) == labels
    start = _starting_result(correct, grid, suite, norm, prior or {})
    stages = suite_plan(suite, norm, randomized, norm in SQUARE_NORMS)
    progress = _progress(state, start, stages, AdversarialKeeper(images, grid, keep_adversarial))
    crafting = crafting_model(_folded(model, images[:batch_size], device), crafting_dtype)
    # every row draws from its own seeds: the caller's random state is left alone
    attack = partial(stage_attack, norm=norm, eot_iter=eot_iter)
    run = StageRun(judge, images, labels, ids, seed, progress, batch_size, device, crafting, attack)
    for stage in stages:
        run_stage(stage, run)
    return _finished(progress, eot_iter, judge.draws)


def _check(suite: str, images, labels, eps_grid, model) -> None:
    if suite not in SCHEDULES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SCHEDULES)}")
    check_batch(images, labels, eps_grid, model=model)


def _folded(model: nn.Module, probe: torch.Tensor, device: torch.device) -> nn.Module:
    """The attacks craft on a BN-folded copy (same logits, fewer layers; channels-last on the
    CPU, where it was up to 6% faster); the runner judges every break on the model itself."""
    return fold_batchnorm(model, probe.to(device), channels_last=device.type == "cpu")


def _progress(
    state: EvaluationState, start: WorstCaseResult, stages, keeper: AdversarialKeeper
) -> SuiteProgress:
    """The suite's progress from the result before any suite attack (or from the state's saved
    progress): a zero cost per suite stage (forward_evals: images forwarded without a
    gradient, Square's queries) and the keeper of the kept images."""
    zero = {"grad_evals": 0, "forward_evals": 0, "seconds": 0.0, "breaks": 0}
    cost = {stage.name: dict(zero) for stage in stages}
    progress = SuiteProgress(state, start, cost, keeper)
    progress.restore()
    return progress


def _finished(progress: SuiteProgress, eot_iter: int, draws: int) -> WorstCaseResult:
    result = progress.result
    result.attack_cost, result.eot_iter, result.draws = progress.cost, eot_iter, draws
    result.adversarial = progress.keeper.tensors
    result.budget = budget_of(progress)
    result.warnings = gradient_free_warnings(result)
    return result


def _fingerprint(model, images, labels, ids, grid, settings, prior, extra) -> dict[str, str]:
    """The fingerprint of a standalone suite run."""
    config = settings.fingerprint() | extra | {"grid": grid}
    config["prior"] = {k: tensors_digest([v]) for k, v in sorted((prior or {}).items())}
    return evaluation_fingerprint(model, images, labels, ids, config)


def _starting_result(
    correct: torch.Tensor, grid: list[float], suite: str, norm: str, prior: Mapping
) -> WorstCaseResult:
    """The result before any suite attack: misclassified examples broken at eps 0, the rest
    unbroken but where the ``prior`` attacks broke them."""
    start = torch.where(correct, float("inf"), 0.0).double()  # float64: eps keys stay exact
    result = WorstCaseResult(suite, norm, grid, start, [None if c else CLEAN for c in correct])
    return result.combined(prior)


__all__ = [
    "SUITES",
    "WorstCaseResult",
    "eps_key",
    "snap_to_grid",
    "stage_attack",
    "suite_attack",
    "suite_attacks",
    "worst_case",
]

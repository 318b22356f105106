"""Evaluate a model against several attacks over an eps grid and summarise for results.json.

Options of :func:`evaluate_robustness`:

- ``keep_adversarial``: ``(attack key, eps)`` pairs, or ``("worst_case", eps)``, whose images
  ``report.adversarial[(key, eps)]`` keeps (CPU; :mod:`robustlab.evaluation.keep`): the
  model's accuracy on them is the robust accuracy at eps.
- ``crafting_dtype`` (e.g. ``torch.bfloat16``): attacks craft under autocast to it, and every
  example they find is re-checked on the fp32 model before it counts
  (:mod:`robustlab.evaluation.precision`).
- A randomized forward is detected and evaluated with EOT (``eot_iter``, ``draws``: see
  :func:`robustlab.evaluation.evaluate`); the named checks (:mod:`robustlab.evaluation.checks`)
  fill ``report.checks``.
- ``sharded``: each process attacks its share (:mod:`robustlab.evaluation.sharded`); the checks
  run on the main process. ``state_path``: a state file that makes the run resumable
  (:mod:`robustlab.evaluation.resume_state`; one per process), ``resume=False`` starts afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from robustlab.attacks.catalogue import (
    AttackSpec,
    attack_factory,
    attack_norm,
    build_attack,
    takes_eps,
)
from robustlab.attacks.row_random import example_seeds
from robustlab.distributed import is_main_process
from robustlab.errors import ConfigError
from robustlab.evaluation.checks import Check
from robustlab.evaluation.checks_run import eot_plan, run_checks
from robustlab.evaluation.curve_state import resumable_curves
from robustlab.evaluation.eot import majority_vote
from robustlab.evaluation.fingerprint import robustness_fingerprint
from robustlab.evaluation.grid import EpsCurve, minimal_perturbation_point, robust_accuracy
from robustlab.evaluation.keep import WORST_CASE, kept_pairs
from robustlab.evaluation.kept_images import collect_adversarial
from robustlab.evaluation.masking import (
    GradientHealth,
    gradient_health,
    gradient_masking_warnings,
    large_eps_check,
)
from robustlab.evaluation.resume_state import open_state
from robustlab.evaluation.sharded import gather_evaluation, shard_examples
from robustlab.evaluation.suite import CLEAN, SUITES, WorstCaseResult, worst_case
from robustlab.inputs import check_batch
from robustlab.models.precision import crafting_model
from robustlab.models.runtime import eval_device, predict

log = logging.getLogger(__name__)

WORST_CASE_RECORD = "worst_case_examples.json"


@dataclass(repr=False)
class RobustnessReport:
    """Clean accuracy, one curve per attack, the per-example worst case over every attack (the
    suite's and the curves'), masking diagnostics and warnings.

    ``adversarial[(key, eps)]``: the adversarial images kept for later stages (see
    ``keep_adversarial`` of :func:`evaluate_robustness`); never part of :meth:`to_results`.
    """

    clean_accuracy: float
    n: int
    curves: dict[str, EpsCurve]
    gradient_health: GradientHealth | None = None
    large_eps: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)
    worst_case: WorstCaseResult | None = None
    adversarial: dict[tuple[str, float], torch.Tensor] = field(default_factory=dict, repr=False)
    checks: dict[str, Check] = field(default_factory=dict)  # robustlab.evaluation.checks

    def __repr__(self) -> str:
        worst = "none" if self.worst_case is None else repr(self.worst_case)
        warned = [name for name, c in self.checks.items() if c.status == "warn"]
        return (
            f"RobustnessReport(clean_accuracy={self.clean_accuracy:.4f}, n={self.n}, "
            f"curves={list(self.curves)}, worst_case={worst}, warned_checks={warned}, "
            f"warnings={len(self.warnings)})"
        )

    def save_artifacts(self, directory: str | Path) -> list[Path]:
        """Files kept beside results.json: the worst case's per-example record
        (``worst_case_examples.json``: smallest breaking eps and attack per test example)."""
        if self.worst_case is None:
            return []
        return [self.worst_case.save_record(Path(directory) / WORST_CASE_RECORD)]

    def to_results(self) -> dict:
        """The results.json fields; eps keys are ``repr(float(eps))`` (``"inf"`` without eps).

        ``robust_accuracy["worst_case"]`` (with its CI and the ``"worst_case"`` block: suite,
        first_broken_by, attack_cost) is the per-example worst case over every attack run;
        ``robust_accuracy_norm`` records each curve's norm.
        """
        accuracy, ci, cost, medians = {}, {}, {}, {}
        for key, curve in self.curves.items():
            accuracy[key] = {repr(p.eps): p.accuracy for p in curve.points}
            ci[key] = {repr(p.eps): [p.ci[0], p.ci[1]] for p in curve.points}
            cost[key] = {
                repr(p.eps): {"grad_evals": p.grad_evals, "seconds": p.seconds}
                for p in curve.points
            }
            for point in curve.points:
                if point.eps == float("inf"):
                    medians[key] = point.median_norm
        results = {
            "clean_accuracy": self.clean_accuracy,
            "n_eval": self.n,
            "robust_accuracy": accuracy,
            "robust_accuracy_ci": ci,
            "attack_cost": cost,
            "attack_schedule": {key: curve.schedule for key, curve in self.curves.items()},
            "robust_accuracy_norm": {key: curve.norm for key, curve in self.curves.items()},
            "warnings": list(self.warnings),
        }
        if self.checks:
            results["checks"] = {name: check.to_results() for name, check in self.checks.items()}
        if self.worst_case is not None:
            fragment = self.worst_case.to_results()
            # worst_case first: the number reports lead with
            results["robust_accuracy"] = fragment["robust_accuracy"] | accuracy
            results["robust_accuracy_ci"] = fragment["robust_accuracy_ci"] | ci
            results["robust_accuracy_norm"] = {"worst_case": self.worst_case.norm} | results[
                "robust_accuracy_norm"
            ]
            results["worst_case"] = fragment["worst_case"]
        if medians:
            results["median_perturbation"] = medians
        if self.gradient_health is not None:
            results["gradient_health"] = {
                "zero_fraction": self.gradient_health.zero_fraction,
                "nonfinite_fraction": self.gradient_health.nonfinite_fraction,
            }
        if self.large_eps is not None:
            results["large_eps_accuracy"] = {repr(float(self.large_eps[0])): self.large_eps[1]}
        return results


def evaluate_robustness(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: dict[str, AttackSpec],
    eps_grid: Sequence[float],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    large_eps: float | None = None,
    check_gradients: bool = True,
    schedule: str = "continuation",
    continuation_steps: int | None = None,
    suite: str = "standard",
    seed: int = 0,
    keep_adversarial: Collection[tuple[str, float]] = (),
    crafting_dtype: torch.dtype | None = None,
    eot_iter: int | None = None,
    draws: int | None = None,
    sharded: bool = False,
    state_path: str | Path | None = None,
    resume: bool = True,
) -> RobustnessReport:
    """Robust accuracy of ``model`` under every attack in ``attacks`` over ``eps_grid``, then the
    worst-case ``suite`` (seeded by ``seed``) on the examples the Linf attacks left standing:
    ``report.worst_case`` is the per-example worst case over all of them (``"none"``: over the
    Linf curves alone). The gradient-masking and named checks run last (``report.warnings``,
    ``report.checks``); ``large_eps`` adds a PGD sanity run at that Linf radius. Attacks
    without an eps (CW, DeepFool) run once, at eps = inf with their median perturbation norm.
    ``schedule``/``continuation_steps``: how PGD covers the grid (:func:`robust_accuracy`).
    ``keep_adversarial``, ``crafting_dtype``, ``eot_iter``/``draws``, ``sharded`` and
    ``state_path``/``resume``: see the module docstring.
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    check_batch(images, labels, eps_grid, model=model)
    pairs = kept_pairs(keep_adversarial, _attack_grids(attacks, eps_grid), eps_grid)
    device, labels = eval_device(model, device), labels.cpu()
    stochastic, eot_iter, draws = eot_plan(model, images, device, eot_iter, draws)
    judge = majority_vote(model, draws)  # what every prediction is, clean and adversarial
    curves, worst, correct = _attack_shard(locals())
    run = (images, labels, correct, batch_size, device)
    clean = float(correct.float().mean()) if len(labels) else 0.0
    report = RobustnessReport(clean, len(labels), curves, worst_case=worst)
    if is_main_process() or not sharded:  # the other processes' reports are never written
        _diagnose(report, model, run, check_gradients, large_eps, (stochastic, seed))
    # after the checks: what their extra restarts break counts, and its images are kept
    report.adversarial = collect_adversarial(pairs, curves, report.worst_case, images)
    return report


def _attack_shard(args: dict) -> tuple[dict[str, EpsCurve], WorstCaseResult, torch.Tensor]:
    """The whole set's curves, worst case and clean-correct mask from this process's shard,
    resumed from ``state_path``. ``args``: the arguments of :func:`evaluate_robustness`."""
    model, judge, batch_size, device = (args[k] for k in ("model", "judge", "batch_size", "device"))
    shard, labels, ids = shard_examples(args["images"], args["labels"], args["sharded"])
    path = args["state_path"]
    fingerprint = path and robustness_fingerprint(model, shard, labels, ids, args)
    state = open_state(path, fingerprint or {}, args["resume"])
    correct = predict(judge, shard, batch_size, device) == labels
    run = (shard, labels, correct, batch_size, device)
    plan = (args["schedule"], args["continuation_steps"], example_seeds(args["seed"], ids))
    one = partial(_curve, judge, eps_grid=args["eps_grid"], run=run, schedule=plan)
    one = partial(one, pairs=args["pairs"], crafting=crafting_model(model, args["crafting_dtype"]))
    curves = resumable_curves(state, args["attacks"], one)
    worst = _worst_case(
        model, run, curves, args["eps_grid"], args["suite"], args["seed"], args["pairs"],
        crafting_dtype=args["crafting_dtype"], eot=(args["eot_iter"], args["draws"]),
        where=(ids, state),
    )  # fmt: skip
    return gather_evaluation(curves, worst, correct, ids)


def _diagnose(report, model, run, check_gradients: bool, large_eps: float | None, how) -> None:
    """The gradient-masking checks and the named checks, last: they fill ``report.warnings``
    and ``report.checks``. ``how``: (stochastic forward, seed)."""
    images, labels, _, batch_size, device = run
    judge = majority_vote(model, report.worst_case.draws)
    if check_gradients:
        report.gradient_health = gradient_health(model, images[:batch_size], labels[:batch_size])
    if large_eps is not None:
        accuracy = large_eps_check(model, images, labels, eps=large_eps, judge=judge)
        report.large_eps = (float(large_eps), accuracy)
    report.checks, report.worst_case, _, _ = run_checks(
        model, images, labels, report.worst_case, device, how[0], batch_size, how[1],
        report.gradient_health or check_gradients, report.large_eps,
    )  # fmt: skip
    masking = gradient_masking_warnings(report.curves, report.large_eps, report.gradient_health)
    report.warnings = masking + report.worst_case.warnings
    for warning in report.warnings:
        log.warning(warning)


def _attack_grids(attacks: dict[str, AttackSpec], eps_grid) -> dict[str, list[float] | None]:
    """Each attack's eps grid (None for an attack that runs once without eps)."""
    return {
        key: list(spec.eps if spec.eps is not None else eps_grid) if takes_eps(spec.name) else None
        for key, spec in attacks.items()
    }


def _curve(model, key, spec, eps_grid, run, schedule, pairs, crafting=None) -> EpsCurve:
    """One attack's curve over its grid, or its single point at eps = inf. It keeps the images
    of its own kept ``pairs`` and, when Linf, those the worst case's kept eps need. The attack
    crafts on ``crafting`` (default: ``model``); its breaks are judged on ``model``."""
    crafting = model if crafting is None else crafting
    images, labels, correct, batch_size, device = run
    norm = attack_norm(spec.name, spec.kwargs)
    if takes_eps(spec.name):
        grid = spec.eps if spec.eps is not None else eps_grid
        factory = attack_factory(spec, crafting)
        thresholds = [e for k, e in pairs if k == key or (k == WORST_CASE and norm == "Linf")]
        curve = robust_accuracy(
            model, images, labels, factory, grid, batch_size, device, key, correct,
            schedule=schedule[0], continuation_steps=schedule[1], keep_adversarial=thresholds,
            row_seeds=schedule[2] if len(schedule) > 2 else None,
        )  # fmt: skip
    else:
        attack = build_attack(spec.name, crafting, **spec.kwargs)
        point = minimal_perturbation_point(
            model, attack, images, labels, correct, batch_size, device, key
        )
        clean = float(correct.float().mean()) if len(labels) else 0.0
        curve = EpsCurve(spec.name, clean, len(labels), [point], schedule="single run")
    curve.attack, curve.norm, curve.params = spec.name.lower(), norm, dict(spec.kwargs)
    log.info("%s: %s", key, {p.eps: round(p.accuracy, 4) for p in curve.points})
    return curve


def _worst_case(
    model, run, curves, eps_grid, suite, seed, pairs, crafting_dtype=None, eot=(1, 1), where=None
) -> WorstCaseResult:
    """The suite on the survivors of the Linf curves, or the curves' own worst case; the suite
    keeps the images of the worst case's kept ``pairs``."""
    images, labels, correct, batch_size, device = run
    prior = {
        key: curve.broken_eps
        for key, curve in curves.items()
        if curve.norm == "Linf" and curve.broken_eps is not None
    }
    if suite != "none":
        return worst_case(
            model, images, labels, eps_grid, suite, batch_size, device, seed, prior=prior,
            keep_adversarial=[eps for key, eps in pairs if key == WORST_CASE],
            crafting_dtype=crafting_dtype, eot_iter=eot[0], draws=eot[1],
            example_ids=(where or (None, None))[0], state_path=(where or (None, None))[1],
        )  # fmt: skip
    start = torch.where(correct, float("inf"), 0.0).double()
    grid = sorted({float(e) for e in eps_grid})
    record = WorstCaseResult("none", "Linf", grid, start, [None if c else CLEAN for c in correct])
    return record.combined(prior)

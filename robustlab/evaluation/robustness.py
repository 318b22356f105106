"""Evaluate a model against several attacks over an eps grid and summarise for results.json.

Options of `evaluate_robustness`:

- ``keep_adversarial``: ``(attack key, eps)`` pairs, or ``("worst_case", eps)``, whose images
  ``report.adversarial[(key, eps)]`` keeps (CPU; `robustlab.evaluation.keep`): the
  model's accuracy on them is the robust accuracy at eps.
- ``crafting_dtype`` (e.g. ``torch.bfloat16``): attacks craft under autocast to it, and every
  example they find is re-checked on the fp32 model before it counts
  (`robustlab.evaluation.precision`).
- A randomized forward is detected and evaluated with EOT (``eot_iter``, ``draws``: see
  `robustlab.evaluation.evaluate`); the named checks (`robustlab.evaluation.checks`)
  fill ``report.checks``.
- ``sharded``: each process attacks its share (`robustlab.evaluation.sharded`); the checks
  run on the main process. ``state_path``: a state file that makes the run resumable
  (`robustlab.evaluation.resume_state`; one per process), ``resume=False`` starts afresh.
"""

from __future__ import annotations

import dataclasses
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
from robustlab.distributed import is_main_process
from robustlab.errors import ConfigError
from robustlab.evaluation.checks import Check, warnings_of
from robustlab.evaluation.checks_run import eot_plan, masking_checks, run_checks
from robustlab.evaluation.curve_state import resumable_curves
from robustlab.evaluation.grid import EpsCurve, minimal_perturbation_point, robust_accuracy
from robustlab.evaluation.keep import WORST_CASE, kept_pairs
from robustlab.evaluation.kept_images import collect_adversarial
from robustlab.evaluation.masking import (
    GRADIENT_SAMPLE,
    GradientHealth,
    gradient_health,
    large_eps_check,
)
from robustlab.evaluation.run import EvaluationRun, EvaluationSettings, open_run
from robustlab.evaluation.sharded import gather_evaluation
from robustlab.evaluation.suite import CLEAN, SUITES, WorstCaseResult, worst_case
from robustlab.inputs import as_eps_grid, check_batch, check_linf_radii
from robustlab.models.inference import eval_device

log = logging.getLogger(__name__)

WORST_CASE_RECORD = "worst_case_examples.json"
LARGE_EPS = 0.5  # the unconstrained-attack check's Linf radius: any pixel can reach any value


@dataclass(repr=False)
class RobustnessReport:
    """Clean accuracy, one curve per attack, the per-example worst case over every attack (the
    suite's and the curves'), masking diagnostics and warnings.

    ``adversarial[(key, eps)]``: the adversarial images kept for later stages (see
    ``keep_adversarial`` of `evaluate_robustness`); never part of `to_results`.
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
    eps_grid: Sequence[float] | float,
    *,
    suite: str = "standard",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    eot_iter: int | None = None,
    draws: int | None = None,
    large_eps: float | None = LARGE_EPS,
    check_gradients: bool = True,
    schedule: str = "continuation",
    continuation_steps: int | None = None,
    keep_adversarial: Collection[tuple[str, float]] = (),
    crafting_dtype: torch.dtype | None = None,
    sharded: bool = False,
    state_path: str | Path | None = None,
    resume: bool = True,
) -> RobustnessReport:
    """Robust accuracy of ``model`` under every attack in ``attacks`` over ``eps_grid``, then the
    worst-case ``suite`` on the examples the Linf attacks left standing.

    ``report.worst_case`` is the per-example worst case over all of them (``suite="none"``:
    over the Linf curves alone); every verdict is one [`Judge`][robustlab.evaluation.judge.Judge]'s.
    The masking and named checks run last (``report.checks``; ``report.warnings`` derive from
    them). Attacks without an eps (CW, DeepFool) run once, at eps = inf with their median
    perturbation norm.

    Args:
        model: any module mapping [0, 1] images to logits.
        images: float images in [0, 1], (N, C, H, W).
        labels: int64 labels, (N,).
        attacks: curve key -> attack spec.
        eps_grid: the radii (a number is a one-element grid).
        suite: ``"standard"``, ``"fast"`` or ``"none"``.
        batch_size: rows per forward.
        device: where to run (default: the model's).
        seed: seeds every row's random draws (its own, from its index).
        eot_iter: EOT gradients per APGD step (None: 20 for a randomized forward, else 1).
        draws: forwards whose majority is each prediction (None: 11 randomized, else 1).
        large_eps: the Linf radius of the unconstrained-attack check (None: skip it).
        check_gradients: measure input-gradient health (the ``zero_gradients`` check).
        schedule: how PGD covers the grid (see `robust_accuracy`).
        continuation_steps: see `robust_accuracy`.
        keep_adversarial: ``(attack key, eps)`` pairs, or ``("worst_case", eps)``, whose images
            ``report.adversarial[(key, eps)]`` keeps (CPU; `robustlab.evaluation.keep`).
        crafting_dtype: e.g. ``torch.bfloat16``: attacks craft under autocast to it; the judge
            decides every break on the fp32 model.
        sharded: each process attacks its share (`robustlab.evaluation.sharded`); the checks
            run on the main process over the gathered records.
        state_path: a state file that makes the run resumable (one per process).
        resume: False starts afresh even where a state exists.
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    eps_grid = as_eps_grid(eps_grid)
    check_batch(images, labels, eps_grid, model=model)
    if suite != "none":  # the suite attacks the grid under Linf
        check_linf_radii(eps_grid)
    kept = kept_pairs(keep_adversarial, _attack_grids(attacks, eps_grid), eps_grid)
    device, labels = eval_device(model, device), labels.cpu()
    stochastic, eot_iter, draws = eot_plan(model, images, device, eot_iter, draws)
    settings = EvaluationSettings(
        attacks=attacks,
        eps_grid=eps_grid,
        batch_size=batch_size,
        schedule=schedule,
        continuation_steps=continuation_steps,
        suite=suite,
        seed=seed,
        eot_iter=eot_iter,
        draws=draws,
        crafting_dtype=crafting_dtype,
        kept=kept,
    )
    run = open_run(
        model,
        images,
        labels,
        settings,
        device=device,
        sharded=sharded,
        state_path=state_path,
        resume=resume,
    )
    curves = resumable_curves(run.state, attacks, partial(_curve, run))
    worst = _worst_case(run, curves)
    curves, worst, correct = gather_evaluation(curves, worst, run.correct, run.ids)
    clean = float(correct.float().mean())
    report = RobustnessReport(clean, len(labels), curves, worst_case=worst)
    if is_main_process() or not sharded:  # the other processes' reports are never written
        whole = dataclasses.replace(run, images=images, labels=labels, correct=correct)
        _diagnose(report, whole, stochastic, large_eps, check_gradients)
    # after the checks: what their extra restarts break counts, and its images are kept
    report.adversarial = collect_adversarial(kept, curves, report.worst_case, images)
    return report


def _diagnose(report, run: EvaluationRun, stochastic: bool, large_eps, check_gradients) -> None:
    """The masking and named checks, last, on the whole set: they fill ``report.checks``,
    ``report.gradient_health``, ``report.large_eps`` and ``report.warnings`` (derived from the
    checks)."""
    images, labels, batch_size = run.images, run.labels, run.settings.batch_size
    if check_gradients:
        sample = slice(0, GRADIENT_SAMPLE)
        report.gradient_health = gradient_health(
            run.model, images[sample], labels[sample], batch_size
        )
    if large_eps is not None:
        accuracy = large_eps_check(run.model, images, labels, eps=large_eps, judge=run.judge)
        report.large_eps = (float(large_eps), accuracy)
    found, report.worst_case, _, _ = run_checks(
        run.model,
        images,
        labels,
        report.worst_case,
        judge=run.judge,
        device=run.device,
        stochastic=stochastic,
        batch_size=batch_size,
        seed=run.settings.seed,
        health=report.gradient_health or check_gradients,
        large_eps=report.large_eps,
    )
    report.checks = found | masking_checks(report.curves)
    report.warnings = warnings_of(report.checks)
    report.worst_case.warnings = list(report.warnings)
    for warning in report.warnings:
        log.warning(warning)


def _attack_grids(attacks: dict[str, AttackSpec], eps_grid) -> dict[str, list[float] | None]:
    """Each attack's eps grid (None for an attack that runs once without eps)."""
    return {
        key: list(spec.eps if spec.eps is not None else eps_grid) if takes_eps(spec.name) else None
        for key, spec in attacks.items()
    }


def _curve(run: EvaluationRun, key: str, spec: AttackSpec) -> EpsCurve:
    """One attack's curve over its grid, or its single point at eps = inf. It keeps the images
    of its own kept pairs and, when Linf, those the worst case's kept eps need. The attack
    crafts on ``run.crafting``; the judge decides its breaks."""
    settings = run.settings
    norm = attack_norm(spec.name, spec.kwargs)
    if takes_eps(spec.name):
        thresholds = [
            e for k, e in settings.kept if k == key or (k == WORST_CASE and norm == "Linf")
        ]
        curve = robust_accuracy(
            run.model,
            run.images,
            run.labels,
            attack_factory(spec, run.crafting),
            spec.eps if spec.eps is not None else settings.eps_grid,
            batch_size=settings.batch_size,
            device=run.device,
            name=key,
            clean_correct=run.correct,
            schedule=settings.schedule,
            continuation_steps=settings.continuation_steps,
            keep_adversarial=thresholds,
            row_seeds=run.row_seeds,
            judge=run.judge,
        )
    else:
        attack = build_attack(spec.name, run.crafting, **spec.kwargs)
        point = minimal_perturbation_point(
            run.judge,
            attack,
            run.images,
            run.labels,
            run.correct,
            batch_size=settings.batch_size,
            device=run.device,
            name=key,
        )
        clean = float(run.correct.float().mean()) if len(run.labels) else 0.0
        curve = EpsCurve(spec.name, clean, len(run.labels), [point], schedule="single run")
    curve.attack, curve.norm, curve.params = spec.name.lower(), norm, dict(spec.kwargs)
    log.info("%s: %s", key, {p.eps: round(p.accuracy, 4) for p in curve.points})
    return curve


def _worst_case(run: EvaluationRun, curves: dict[str, EpsCurve]) -> WorstCaseResult:
    """The suite on the survivors of the Linf curves, or the curves' own worst case; the suite
    keeps the images of the worst case's kept pairs."""
    settings = run.settings
    prior = {
        key: curve.broken_eps
        for key, curve in curves.items()
        if curve.norm == "Linf" and curve.broken_eps is not None
    }
    if settings.suite != "none":
        return worst_case(
            run.model,
            run.images,
            run.labels,
            settings.eps_grid,
            suite=settings.suite,
            batch_size=settings.batch_size,
            device=run.device,
            seed=settings.seed,
            prior=prior,
            keep_adversarial=[eps for key, eps in settings.kept if key == WORST_CASE],
            eot_iter=settings.eot_iter,
            judge=run.judge,
            crafting_dtype=settings.crafting_dtype,
            example_ids=run.ids,
            state_path=run.state,
        )
    start = torch.where(run.correct, float("inf"), 0.0).double()
    grid = sorted({float(e) for e in settings.eps_grid})
    broken_by = [None if c else CLEAN for c in run.correct]
    record = WorstCaseResult("none", "Linf", grid, start, broken_by)
    record.eot_iter, record.draws = settings.eot_iter, settings.draws
    return record.combined(prior)

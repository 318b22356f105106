"""Every named check of an evaluation, in one call, after the worst case has run; and the
masking warnings, derived from the same checks."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from robustlab.evaluation.checks import (
    PASS,
    Check,
    gradient_free_breaks,
    large_eps_verdict,
    probability_outputs,
    stochastic_forward,
    warnings_of,
    zero_gradients,
)
from robustlab.evaluation.checks_curves import curve_checks
from robustlab.evaluation.checks_optimization import RESTART_KEY, optimization_checks
from robustlab.evaluation.eot import DRAWS, EOT_ITER, is_stochastic
from robustlab.evaluation.grid import EpsCurve
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.masking import (
    GRADIENT_SAMPLE,
    GradientHealth,
    gradient_health,
    large_eps_check,
)
from robustlab.evaluation.suite import SCHEDULES
from robustlab.evaluation.worst_case_result import WorstCaseResult
from robustlab.models.inference import model_context

STOCHASTIC_PROBE = 16  # images forwarded twice to tell a randomized model


def eot_plan(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    eot_iter: int | None = None,
    draws: int | None = None,
) -> tuple[bool, int, int]:
    """(stochastic, eot_iter, draws): whether the forward is randomized, and the EOT gradients
    per step and majority draws to use (``None``: ``EOT_ITER``/``DRAWS`` when randomized, else
    1; a number given is used as it is)."""
    stochastic = is_stochastic(model, images[:STOCHASTIC_PROBE].to(device))
    auto_iter, auto_draws = (EOT_ITER, DRAWS) if stochastic else (1, 1)
    return (
        stochastic,
        auto_iter if eot_iter is None else int(eot_iter),
        auto_draws if draws is None else int(draws),
    )


def masking_checks(
    curves: Mapping[str, EpsCurve],
    large_eps: tuple[float, float] | None = None,
    health: GradientHealth | None = None,
) -> dict[str, Check]:
    """The masking checks that need no suite: the curve symptoms, and the large-eps and
    gradient-health verdicts when those were measured."""
    found = curve_checks(curves)
    if large_eps is not None:
        found["large_eps"] = large_eps_verdict(*large_eps)
    if health is not None:
        found["zero_gradients"] = zero_gradients(health)
    return found


def gradient_masking_warnings(
    curves: Mapping[str, EpsCurve],
    large_eps: tuple[float, float] | None = None,
    health: GradientHealth | None = None,
) -> list[str]:
    """Plain-language warnings for every gradient-masking symptom found: the warning lines of
    `masking_checks` (`curves`: attack key -> curve; `large_eps`: ``(eps, accuracy)`` of
    `large_eps_check`; `health`: `gradient_health`'s result; missing ones are skipped)."""
    return warnings_of(masking_checks(curves, large_eps, health))


def run_checks(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    result: WorstCaseResult,
    *,
    judge: Judge,
    device: torch.device,
    stochastic: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    health: GradientHealth | bool = True,
    large_eps: float | tuple[float, float] | None = 0.5,
) -> tuple[dict[str, Check], WorstCaseResult, GradientHealth | None, tuple[float, float] | None]:
    """The checks of `robustlab.evaluation.checks.CHECK_NAMES` but the curve ones
    (`large_eps` only when given: a radius to run, or an ``(eps, accuracy)`` already measured;
    the attack-side ones only under a suite), every verdict by ``judge``, and the worst case
    with what their extra attack runs broke counted in. ``health``: input-gradient health
    already measured, True to measure it, False to skip the ``zero_gradients`` check.

    Returns:
        (checks, worst case, health or None, large eps).
    """
    probe, probe_labels = images[:GRADIENT_SAMPLE], labels[:GRADIENT_SAMPLE]
    with torch.no_grad(), model_context(model, "eval"):
        outputs = model(probe.to(device))
    if health is True:
        health = gradient_health(model, probe, probe_labels, batch_size)
    found = {
        "stochastic_forward": stochastic_forward(stochastic, result.eot_iter, result.draws),
        "probability_outputs": probability_outputs(outputs.cpu()),
    }
    if isinstance(health, GradientHealth):
        found["zero_gradients"] = zero_gradients(health)
    found["gradient_free_breaks"] = gradient_free_breaks(result)
    if isinstance(large_eps, int | float):
        accuracy = large_eps_check(model, images, labels, float(large_eps), judge=judge)
        large_eps = (float(large_eps), accuracy)
    if large_eps is not None:
        found["large_eps"] = large_eps_verdict(*large_eps)
    if result.suite in SCHEDULES and judge.stochastic:
        found |= _not_run_on_randomized()
    elif result.suite in SCHEDULES:
        diagnosis = optimization_checks(
            model,
            images,
            labels,
            result,
            steps=SCHEDULES[result.suite][0],
            device=device,
            judge=judge,
            seed=seed,
            eot_iter=result.eot_iter,
        )
        if diagnosis is not None:
            found["incomplete_optimization"] = diagnosis.incomplete
            found["non_converging_restarts"] = diagnosis.restarts
            result = result.combined(
                {RESTART_KEY: diagnosis.broken_eps}, {RESTART_KEY: diagnosis.adversarial}
            )
    return found, result, health or None, large_eps


def _not_run_on_randomized() -> dict[str, Check]:
    """The restart checks on a randomized forward: not run. Their extra APGD runs would cost
    as much as the suite itself, and whether a restart breaks an example is there decided as
    much by the vote's own draws as by the random start."""
    detail = (
        "not run on a randomized forward: two more EOT restarts would double the cost, and "
        "their outcome depends on the vote's draws as much as on the start"
    )
    return {
        "incomplete_optimization": Check(PASS, detail),
        "non_converging_restarts": Check(PASS, detail),
    }


__all__ = [
    "STOCHASTIC_PROBE",
    "eot_plan",
    "gradient_masking_warnings",
    "masking_checks",
    "run_checks",
]

"""Named checks of an evaluation: each a `Check` (``"pass"`` | ``"warn"`` and a detail).

AutoAttack's automatic checks (a random forward, softmax outputs, zero gradients) with the
masking symptoms of Carlini et al. (2019) and cheap indicators of attack failure of Pintor et
al. (NeurIPS 2022). What each means and what to do is in the docs' "How far to trust a robust
accuracy" page. The attack-side checks (incomplete optimisation, restarts) are in
`robustlab.evaluation.checks_optimization`; `run_checks` runs them all.

A NaN or inf INPUT is an input error (refused before any check), never a masking symptom.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustlab.evaluation.masking import GradientHealth
from robustlab.evaluation.suite_budget import budget_sentence
from robustlab.evaluation.worst_case_result import (
    GRADIENT_FREE,
    GRADIENT_FREE_MIN_COUNT,
    GRADIENT_FREE_MIN_SHARE,
    WorstCaseResult,
)

PASS, WARN = "pass", "warn"
CHECK_NAMES = (
    "stochastic_forward",
    "probability_outputs",
    "zero_gradients",
    "gradient_free_breaks",
    "large_eps",
    "incomplete_optimization",
    "non_converging_restarts",
    "rising_accuracy",
    "iterative_weaker",
    "margin_stronger",
)
# The checks whose warning means the gradients mislead the attacks (their warnings read
# "gradient masking suspected"); the others say the evaluation itself fell short.
MASKING_CHECKS = (
    "zero_gradients",
    "gradient_free_breaks",
    "large_eps",
    "rising_accuracy",
    "iterative_weaker",
    "margin_stronger",
)
ZERO_GRADIENT_SHARE = 0.05  # more examples with an all-zero input gradient than this: warn
LARGE_EPS_ACCURACY = 0.1  # accuracy above this at a huge eps: warn


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``status`` ``"pass"`` or ``"warn"``, and a plain-language detail."""

    status: str
    detail: str

    def to_results(self) -> dict[str, str]:
        return {"status": self.status, "detail": self.detail}

    @classmethod
    def from_results(cls, record: dict) -> Check:
        return cls(str(record["status"]), str(record["detail"]))


def stochastic_forward(stochastic: bool, eot_iter: int, draws: int) -> Check:
    """Whether two forwards of the same images differed, and what the evaluation did about it:
    a randomized forward attacked with EOT and judged by a majority vote is handled (pass); one
    evaluated with a single draw per gradient or per prediction is not (warn)."""
    if not stochastic:
        return Check(PASS, "the forward is deterministic: the same images give the same logits")
    done = (
        f"the forward is randomized (the same images gave different logits): attacked with EOT "
        f"(APGD gradients averaged over {eot_iter} draws), every prediction the majority over "
        f"{draws} draws"
    )
    if eot_iter > 1 and draws > 1:
        return Check(PASS, done)
    return Check(
        WARN,
        f"{done}; with a single draw per gradient or per prediction the attacks follow noise "
        "and the verdicts are coin flips near the boundary: evaluate with eot_iter > 1 and "
        "draws > 1 (the defaults for a randomized model)",
    )


def probability_outputs(outputs: torch.Tensor) -> Check:
    """Whether the model returns probabilities (rows in [0, 1] summing to 1) instead of logits."""
    outputs = outputs.detach().float()
    in_range = bool(((outputs >= 0) & (outputs <= 1)).all())
    sums_to_one = bool(torch.allclose(outputs.sum(1), torch.ones(len(outputs)), atol=1e-3))
    if in_range and sums_to_one and len(outputs):
        return Check(
            WARN,
            "the model returns probabilities (rows in [0, 1] summing to 1), not logits: "
            "cross-entropy on them saturates and gradient attacks stall; remove the final "
            "softmax and evaluate the logits",
        )
    return Check(PASS, "the model returns logits (its rows are not probability vectors)")


def zero_gradients(health: GradientHealth, share: float = ZERO_GRADIENT_SHARE) -> Check:
    """Whether input gradients on valid inputs are all zero (or non-finite) for many examples."""
    bad = health.zero_fraction + health.nonfinite_fraction
    where = (
        f"{health.zero_fraction:.1%} all-zero, {health.nonfinite_fraction:.1%} non-finite "
        f"input gradients over {health.n} valid examples"
    )
    if health.nonfinite_fraction > 0 or health.zero_fraction > share:
        return Check(
            WARN,
            f"{where}: gradient attacks cannot move these examples (shattered or saturated "
            "gradients, e.g. a quantisation or sign layer); trust only what the gradient-free "
            "attack shows, or attack a differentiable approximation (BPDA)",
        )
    return Check(PASS, f"{where}" if bad else f"input gradients carry a signal ({where})")


def gradient_free_breaks(result: WorstCaseResult) -> Check:
    """Whether Square broke enough examples the gradient attacks missed to mean masking; the
    detail also says where the suite spent a full budget on a sample of the survivors only,
    with the bound on what it would have found on all of them."""
    check = _gradient_free_verdict(result)
    sentences = [budget_sentence(name, record, result.n) for name, record in result.budget.items()]
    if not sentences:
        return check
    return Check(check.status, f"{check.detail}; budget: {'; '.join(sentences)}")


def _gradient_free_verdict(result: WorstCaseResult) -> Check:
    breaks = result.gradient_free_breaks()
    counts = ", ".join(f"{count} at eps={key}" for key, count in breaks.items())
    rule = (
        f"warn at >= max({GRADIENT_FREE_MIN_COUNT}, {GRADIENT_FREE_MIN_SHARE:.0%} of n) at one eps"
    )
    if GRADIENT_FREE not in result.attack_cost:
        why = (
            "a randomized forward, where Square's accept/reject on one noisy forward is no test"
            if result.draws > 1 or result.eot_iter > 1
            else "suite none or an L1 suite"
        )
        return Check(PASS, f"no gradient-free attack ran ({why})")
    if result.masking:
        return Check(
            WARN,
            f"Square broke examples every gradient attack missed ({counts}, n={result.n}; "
            f"{rule}): the gradients mislead the attacks, so trust only the worst case",
        )
    return Check(PASS, f"examples only Square broke: {counts} (n={result.n}; {rule})")


def gradient_free_warnings(result: WorstCaseResult) -> list[str]:
    """The warning line of `gradient_free_breaks` on ``result`` (none when it passes): what a
    suite run reports by itself, before the other checks run."""
    return warnings_of({"gradient_free_breaks": gradient_free_breaks(result)})


def large_eps_verdict(eps: float, accuracy: float, threshold: float = LARGE_EPS_ACCURACY) -> Check:
    """Whether accuracy falls to ~0 at a huge eps (an unconstrained attack must succeed)."""
    detail = f"accuracy {accuracy:.3f} under PGD at eps={eps:g}"
    if accuracy > threshold:
        return Check(
            WARN,
            f"{detail}, above {threshold:g}: at this budget any image can become any other, so "
            "the attack itself is failing (Carlini et al. 2019, Pintor et al. 2022)",
        )
    return Check(PASS, f"{detail}: an unconstrained attack succeeds, as it must")


def warnings_of(checks: dict[str, Check]) -> list[str]:
    """The warning lines of the checks that warn (results.json's ``warnings``): derived from
    the checks, so a symptom is judged once, by one threshold."""
    return [
        f"{'gradient masking suspected' if name in MASKING_CHECKS else 'check'} ({name}): "
        f"{check.detail}"
        for name, check in checks.items()
        if check.status == WARN
    ]


__all__ = [
    "CHECK_NAMES",
    "MASKING_CHECKS",
    "warnings_of",
    "PASS",
    "WARN",
    "Check",
    "gradient_free_breaks",
    "gradient_free_warnings",
    "large_eps_verdict",
    "probability_outputs",
    "stochastic_forward",
    "zero_gradients",
]

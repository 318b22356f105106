"""The explanation stage: what the model looks at on clean vs adversarial inputs. Reads the
``explain`` node only; the evaluation's eps grid and report come in as values."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig

from robustlab.app.builders import StageInputs
from robustlab.attacks import PGD, madry_step_size
from robustlab.evaluation import RobustnessReport
from robustlab.explain import ExplanationReport, InversionStudy, explain_robustness, inversion_study

# the stage's attack: PGD's iterate is an attacked input for every example, a survivor of the
# worst case may come back from Square as its clean image
EXPLAINED_ATTACK = "pgd"


def explain_eps(ex: DictConfig, eps_grid: Sequence[float]) -> float:
    """``explain.eps``, else the middle eps of the evaluation grid ``eps_grid``."""
    grid = sorted(float(e) for e in eps_grid)
    return ex.eps if ex.eps is not None else grid[len(grid) // 2]


def explained_pairs(
    ex: DictConfig, eps_grid: Sequence[float], attacks: Sequence[str]
) -> list[tuple[str, float]]:
    """The evaluation's adversarials the stage reuses: PGD's at the stage's eps, when the
    evaluation's ``attacks`` (keys) have ``pgd``; none with ``explain=none``."""
    if ex.name == "none" or EXPLAINED_ATTACK not in attacks:
        return []
    return [(EXPLAINED_ATTACK, explain_eps(ex, eps_grid))]


def adversarial_inputs(
    eps: float,
    inputs: StageInputs,
    images: torch.Tensor,
    labels: torch.Tensor,
    evaluation: RobustnessReport | None,
) -> torch.Tensor:
    """The evaluation's PGD adversarials at ``eps`` when it kept them (row i attacks image i:
    the first fooling iterate, else the last one), else PGD-20 crafted here."""
    kept = getattr(evaluation, "adversarial", None) or {}
    if (EXPLAINED_ATTACK, eps) in kept:
        return kept[(EXPLAINED_ATTACK, eps)][: len(images)]
    attack = PGD(inputs.model, eps=eps, alpha=madry_step_size(eps, 20), steps=20)
    size = inputs.batch_size
    batches = [
        attack(images[i : i + size], labels[i : i + size]).cpu()
        for i in range(0, len(images), size)
    ]
    return torch.cat(batches)


def explain_stage(
    ex: DictConfig,
    inputs: StageInputs,
    eps: float,
    evaluation: RobustnessReport | None = None,
) -> ExplanationReport:
    """Attribution fragility, faithfulness, the sanity check, the SE attention shift and, with
    ``explain.inversion``, the feature inversion of every stage, on the evaluation's test subset
    (``inputs.test``) at ``eps`` (``explain_eps``); the figures go beside results.json."""
    images, labels = inputs.test
    # the stage explains the first correctly classified examples; a margin covers misclassified
    count = min(len(images), 2 * ex.max_examples + 32)
    images, labels = images[:count], labels[:count]
    adversarial = adversarial_inputs(eps, inputs, images, labels, evaluation)
    report = explain_robustness(
        inputs.model,
        images,
        adversarial,
        labels,
        methods=list(ex.methods),
        k=ex.k,
        seed=inputs.seed,
        max_examples=ex.max_examples,
        faithfulness_steps=ex.faithfulness_steps,
        sanity=ex.sanity,
    )
    report.inversion = invert_stages(ex, inputs) if ex.inversion else None
    return report


def invert_stages(ex: DictConfig, inputs: StageInputs) -> InversionStudy:
    """Every stage and the logits inverted from the first ``ex.inversion_examples`` test
    images: the same images for every model of a sweep, whatever each classifies correctly."""
    images = inputs.test[0][: ex.inversion_examples]
    return inversion_study(
        inputs.model,
        images,
        regularizer=ex.inversion_regularizer,
        weight=ex.inversion_weight,
        steps=ex.inversion_steps,
        lr=ex.inversion_lr,
    )

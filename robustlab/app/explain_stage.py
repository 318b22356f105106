"""The explanation stage: what the model looks at on clean vs adversarial inputs."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle
from robustlab.app.evaluation_stage import EXPLAINED_ATTACK, evaluation_subset, explain_eps
from robustlab.attacks import PGD, madry_step_size
from robustlab.evaluation import RobustnessReport
from robustlab.explain import ExplanationReport, explain_robustness


def adversarial_inputs(
    cfg: DictConfig,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    evaluation: RobustnessReport | None,
) -> torch.Tensor:
    """The evaluation's PGD adversarials at the stage's eps when it kept them (row i attacks
    image i: the first fooling iterate, else the last one), else PGD-20 crafted here."""
    eps = explain_eps(cfg)
    kept = getattr(evaluation, "adversarial", None) or {}
    if (EXPLAINED_ATTACK, eps) in kept:
        return kept[(EXPLAINED_ATTACK, eps)][: len(images)]
    attack = PGD(model, eps=eps, alpha=madry_step_size(eps, 20), steps=20)
    batches = [
        attack(images[i : i + cfg.eval.batch_size], labels[i : i + cfg.eval.batch_size]).cpu()
        for i in range(0, len(images), cfg.eval.batch_size)
    ]
    return torch.cat(batches)


def explain_stage(
    cfg: DictConfig,
    model: nn.Module,
    bundle: DataBundle,
    evaluation: RobustnessReport | None = None,
) -> ExplanationReport:
    """Attribution fragility, faithfulness, the sanity check and the SE attention shift on the
    evaluation's test subset; the figures are written beside results.json."""
    e = cfg.explain
    images, labels = evaluation_subset(cfg, bundle)
    # the stage explains the first correctly classified examples; a margin covers misclassified
    count = min(len(images), 2 * e.max_examples + 32)
    images, labels = images[:count], labels[:count]
    adversarial = adversarial_inputs(cfg, model, images, labels, evaluation)
    return explain_robustness(
        model,
        images,
        adversarial,
        labels,
        methods=list(e.methods),
        k=e.k,
        seed=cfg.seed,
        max_examples=e.max_examples,
        faithfulness_steps=e.faithfulness_steps,
        sanity=e.sanity,
    )

"""The evaluation stage: robust accuracy under every configured attack over the eps grid."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle, attack_specs
from robustlab.attacks import evaluate_robustness


def test_subset(
    cfg: DictConfig, bundle: DataBundle, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` test examples (the test split is already shuffled and stratified)."""
    images, labels = bundle.test
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def evaluate_stage(
    cfg: DictConfig, model: nn.Module, bundle: DataBundle, merge_warnings: list[str] | None = None
) -> dict[str, Any]:
    """Clean and robust accuracy, confidence intervals, attack cost and masking warnings."""
    images, labels = test_subset(cfg, bundle, cfg.eval.max_examples)
    report = evaluate_robustness(
        model,
        images,
        labels,
        attack_specs(cfg),
        eps_grid=list(cfg.eval.eps),
        batch_size=cfg.eval.batch_size,
        large_eps=cfg.eval.large_eps,
    )
    results = report.to_results()
    results["warnings"] = list(merge_warnings or []) + results["warnings"]
    return results

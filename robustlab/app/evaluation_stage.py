"""The evaluation stage: robust accuracy under every configured attack over the eps grid."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle, attack_specs
from robustlab.attacks import RobustnessReport, evaluate_robustness
from robustlab.data import stratified_subset


def evaluate_stage(cfg: DictConfig, model: nn.Module, bundle: DataBundle) -> RobustnessReport:
    """Clean and robust accuracy (per attack and the per-example worst case over all of them),
    confidence intervals, attack cost and masking warnings."""
    images, labels = stratified_subset(*bundle.test, cfg.eval.max_examples, seed=cfg.seed)
    return evaluate_robustness(
        model,
        images,
        labels,
        attack_specs(cfg),
        eps_grid=list(cfg.eval.eps),
        batch_size=cfg.eval.batch_size,
        large_eps=cfg.eval.large_eps,
        schedule=cfg.eval.schedule,
        continuation_steps=cfg.eval.continuation_steps,
        suite=cfg.eval.suite,
        seed=cfg.seed,
    )

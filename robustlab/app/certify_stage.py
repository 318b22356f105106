"""The certification stage: smoothing certificate, Lipschitz margins, minimum-norm margins."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle
from robustlab.app.evaluation_stage import evaluation_subset
from robustlab.certify import CertificationReport, certify_model
from robustlab.evaluation import RobustnessReport


def smoothing_sigma(cfg: DictConfig) -> float | None:
    """``certify.sigma``, else the noise the model was trained with (``defense=gaussian_noise``);
    None (no smoothing certificate) for a model trained without noise."""
    if cfg.certify.sigma is not None:
        return cfg.certify.sigma
    return cfg.defense.sigma if cfg.defense.name == "gaussian_noise" else None


def certify_stage(
    cfg: DictConfig,
    model: nn.Module,
    bundle: DataBundle,
    evaluation: RobustnessReport | None = None,
) -> CertificationReport:
    """Certify the first ``certify.max_examples`` examples of the evaluation's test subset.

    With the evaluation's worst case at hand, its per-example smallest breaking eps bounds the
    minimum-norm search from above, so the min-norm curve is never above the fixed-eps one.
    """
    c = cfg.certify
    images, labels = evaluation_subset(cfg, bundle)
    count = len(images) if c.max_examples is None else min(c.max_examples, len(images))
    suite = {}
    worst = evaluation.worst_case if evaluation is not None else None
    if worst is not None:
        suite[worst.norm] = worst.broken_eps[:count]
    return certify_model(
        model,
        images[:count],
        labels[:count],
        num_classes=bundle.info.num_classes,
        sigma=smoothing_sigma(cfg),
        n0=c.n0,
        n=c.n,
        alpha=c.alpha,
        radii=list(c.radii),
        batch_size=c.batch_size,
        lipschitz=c.lipschitz,
        min_norm=list(c.min_norm),
        min_norm_steps=c.min_norm_steps,
        suite_min_eps=suite,
        seed=cfg.seed,
    )

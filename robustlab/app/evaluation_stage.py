"""The evaluation stage: robust accuracy under every configured attack over the eps grid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle, attack_spec, attack_specs
from robustlab.attacks import RobustnessReport, evaluate_robustness, takes_eps
from robustlab.data import stratified_subset

# the explanation stage's attack: PGD's iterate is an attacked input for every example, a
# survivor of the worst case may come back from Square as its clean image
EXPLAINED_ATTACK = "pgd"


def evaluation_subset(cfg: DictConfig, bundle: DataBundle) -> tuple[torch.Tensor, torch.Tensor]:
    """The test examples the evaluation attacks (``eval.max_examples`` of them, stratified,
    seeded): the rows of every tensor in ``report.adversarial``, in this order."""
    return stratified_subset(*bundle.test, cfg.eval.max_examples, seed=cfg.seed)


def detection_pairs(cfg: DictConfig) -> list[tuple[str, float]]:
    """The ``(attack, eps)`` pairs whose adversarial images the detection stage reuses: each
    detector attack (``attacks``, ``unseen``, ``fit_on``) of ``eval.attacks`` that takes an eps,
    at each ``detector.eps`` the evaluation covers. None with ``detector=none``."""
    det = cfg.detector
    if det.name == "none":
        return []
    names = dict.fromkeys([*det.attacks, *det.unseen, *([det.fit_on] if det.fit_on else [])])
    pairs = []
    for name in names:
        spec = attack_spec(cfg.eval.attacks[name]) if name in cfg.eval.attacks else None
        if spec is None or not takes_eps(spec.name):
            continue
        grid = {float(e) for e in (spec.eps if spec.eps is not None else cfg.eval.eps)}
        pairs += [(name, float(eps)) for eps in det.eps if float(eps) in grid]
    return pairs


def kept_pairs(cfg: DictConfig) -> list[tuple[str, float]]:
    """What the pipeline's later stages reuse: the detector's pairs, and the explanation stage's
    PGD adversarials at its eps (when ``eval.attacks`` has ``pgd``)."""
    pairs = detection_pairs(cfg)
    explained = (EXPLAINED_ATTACK, explain_eps(cfg))
    if cfg.explain.name != "none" and EXPLAINED_ATTACK in cfg.eval.attacks:
        pairs += [] if explained in pairs else [explained]
    return pairs


def evaluate_stage(
    cfg: DictConfig,
    model: nn.Module,
    bundle: DataBundle,
    keep: Sequence[tuple[str, float]] = (),
) -> RobustnessReport:
    """Clean and robust accuracy (per attack and the per-example worst case over all of them),
    confidence intervals, attack cost and masking warnings. ``keep``: ``(attack, eps)`` pairs
    whose adversarial images stay in ``report.adversarial`` (see :func:`kept_pairs`), so that
    later stages use these very examples instead of attacking again."""
    images, labels = evaluation_subset(cfg, bundle)
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
        keep_adversarial=keep,
    )


def explain_eps(cfg: DictConfig) -> float:
    """``explain.eps``, else the middle eps of the evaluation grid."""
    grid = sorted(float(e) for e in cfg.eval.eps)
    return cfg.explain.eps if cfg.explain.eps is not None else grid[len(grid) // 2]

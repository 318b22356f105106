"""The detection stage: fit the Mahalanobis detector and evaluate it against the attacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle, attack_spec
from robustlab.attacks import build_attack, takes_eps
from robustlab.attacks.report import attack_factory
from robustlab.data import stratified_subset
from robustlab.detection import MahalanobisDetector, evaluate_detection

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def detection_attacks(
    cfg: DictConfig, model: nn.Module
) -> tuple[dict[str, AttackFn], dict[str, list[str]]]:
    """Attacks keyed ``"name@eps"`` (``"name"`` without eps) and the keys of each protocol."""
    det = cfg.detector
    names = list(dict.fromkeys([*det.attacks, *det.unseen, *([det.fit_on] if det.fit_on else [])]))
    attacks: dict[str, AttackFn] = {}
    keys_of: dict[str, list[str]] = {}
    for name in names:
        spec = attack_spec(cfg.eval.attacks[name])
        if not takes_eps(spec.name):
            attacks[name] = build_attack(spec.name, model, **spec.kwargs)
            keys_of[name] = [name]
            continue
        make = attack_factory(spec, model)
        keys_of[name] = [f"{name}@{float(eps)!r}" for eps in det.eps]
        attacks.update(
            {key: make(float(eps)) for key, eps in zip(keys_of[name], det.eps, strict=True)}
        )
    protocols = {
        "known": [key for name in det.attacks for key in keys_of[name]],
        "unseen": [key for name in det.unseen for key in keys_of[name]],
        "fit_on": keys_of[det.fit_on][:1] if det.fit_on else [],
    }
    return attacks, protocols


def detect_stage(cfg: DictConfig, model: nn.Module, bundle: DataBundle) -> dict[str, Any]:
    """Known- and unseen-attack protocols (plus the adaptive attack) on validation/test splits.

    The detector's Gaussians are fitted on the clean training split, its ensemble on the
    validation split; the test split is only scored.
    """
    det = cfg.detector
    detector = MahalanobisDetector(noise_grid=tuple(det.noise_grid), batch_size=cfg.eval.batch_size)
    detector.fit(model, *bundle.train)
    attacks, protocols = detection_attacks(cfg, model)
    fit_on = protocols["fit_on"][0] if protocols["fit_on"] and protocols["unseen"] else None
    val_x, val_y = stratified_subset(*bundle.val, det.max_examples, seed=cfg.seed)
    test_x, test_y = stratified_subset(*bundle.test, det.max_examples, seed=cfg.seed)
    return evaluate_detection(
        model,
        detector,
        val_x,
        val_y,
        test_x,
        test_y,
        attacks,
        fit_on=fit_on,
        known=protocols["known"],
        unseen=protocols["unseen"],
        adaptive=det.adaptive,
        adaptive_weight=det.adaptive_weight,
        seed=cfg.seed,
        batch_size=cfg.eval.batch_size,
    )

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
from robustlab.detection import MahalanobisDetector, evaluate_detection

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def detection_attacks(cfg: DictConfig, model: nn.Module) -> tuple[dict[str, AttackFn], str | None]:
    """Attacks keyed ``"name@eps"`` (``"name"`` for attacks without eps), and the fit-on key."""
    det = cfg.detector
    names = list(dict.fromkeys([*det.attacks, *det.unseen, *([det.fit_on] if det.fit_on else [])]))
    attacks: dict[str, AttackFn] = {}
    fit_on_key = None
    for name in names:
        spec = attack_spec(cfg.eval.attacks[name])
        if not takes_eps(spec.name):
            attacks[name] = build_attack(spec.name, model, **spec.kwargs)
            keys = [name]
        else:
            make = attack_factory(spec, model)
            keys = [f"{name}@{float(eps)!r}" for eps in det.eps]
            attacks.update({key: make(float(eps)) for key, eps in zip(keys, det.eps, strict=True)})
        if name == det.fit_on:
            fit_on_key = keys[0]
    return attacks, fit_on_key


def detect_stage(cfg: DictConfig, model: nn.Module, bundle: DataBundle) -> dict[str, Any]:
    """Known- and unseen-attack protocols (plus the adaptive attack) on validation/test splits.

    The detector's Gaussians are fitted on the clean training split, its ensemble on the
    validation split; the test split is only scored.
    """
    det = cfg.detector
    limit = det.max_examples
    detector = MahalanobisDetector(noise_grid=tuple(det.noise_grid), batch_size=cfg.eval.batch_size)
    detector.fit(model, *bundle.train)
    attacks, fit_on_key = detection_attacks(cfg, model)
    unseen = fit_on_key if det.unseen else None
    val_x, val_y = bundle.val
    test_x, test_y = bundle.test
    return evaluate_detection(
        model,
        detector,
        val_x[:limit],
        val_y[:limit],
        test_x[:limit],
        test_y[:limit],
        attacks,
        fit_on=unseen,
        adaptive=det.adaptive,
        adaptive_weight=det.adaptive_weight,
        seed=cfg.seed,
        batch_size=cfg.eval.batch_size,
    )

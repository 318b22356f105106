"""The Mahalanobis detector of Lee et al. (2018), "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks" [https://arxiv.org/abs/1807.03888].

Per stage ``l`` of ``model.forward_features``, the global-average-pooled features are modelled
by class-conditional Gaussians with one tied covariance fitted on clean training data. The
confidence score of an input is ``M_l(x) = max_c -(f_l(x) - mu_lc)^T Sigma_l^-1 (f_l(x) - mu_lc)``,
optionally after input pre-processing ``x - noise * sign(grad_x dist_l)`` (the step that moves
``x`` toward its closest class). A logistic regression over the per-layer scores, fitted on
held-out clean/noisy (negative) and adversarial (positive) examples, gives the final score:
higher = more likely adversarial. Inputs are [0, 1] images, as everywhere in robustlab.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from robustlab.detection.base import Detector
from robustlab.detection.features import batches, frozen_eval, pooled_features, probe_input
from robustlab.detection.gaussian import TiedGaussian, fit_tied_gaussian, resolve_shrinkage
from robustlab.detection.storage import SaveLoadMixin
from robustlab.errors import ConfigError, DataError
from robustlab.inputs import check_images, check_labels
from robustlab.models.inference import model_device

logger = logging.getLogger(__name__)

DEFAULT_NOISE_GRID = (0.0, 0.001, 0.002, 0.005, 0.01)


class MahalanobisDetector(SaveLoadMixin, Detector):
    """Mahalanobis-distance detector of adversarial examples with a feature ensemble.

    Arguments:
        noise_grid: pre-processing magnitudes tried by ``fit_ensemble`` (0 is always added);
            the one with the best held-out AUROC is kept in ``noise`` (``noise_aurocs`` has
            them all).
        shrinkage: ``"auto"`` (Ledoit–Wolf) or a number in [0, 1] pulling each tied covariance
            toward ``trace/D * I``; 0 is the plain estimate of the paper (pseudo-inverse).
        batch_size: examples per forward pass.
        seed: seed of the validation split that chooses the noise magnitude.

    Examples::
        >>> detector = MahalanobisDetector().fit(model, train_images, train_labels)
        >>> detector.fit_ensemble(val_clean, val_adversarial, val_noisy)
        >>> scores = detector.score(test_images)  # higher = more likely adversarial
    """

    name = "mahalanobis"

    def __init__(
        self,
        *,
        noise_grid: Sequence[float] = DEFAULT_NOISE_GRID,
        shrinkage: str | float = "auto",
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__(batch_size, seed)
        grid = [float(n) for n in noise_grid]
        if any(not math.isfinite(n) or n < 0 for n in grid):
            raise ConfigError(f"noise_grid values must be finite and >= 0, got {list(noise_grid)}")
        self.noise_grid = tuple(sorted(set(grid) | {0.0}))
        self.shrinkage = resolve_shrinkage(shrinkage)
        self.gaussians: list[TiedGaussian] = []
        self.noise = 0.0
        self.noise_aurocs: dict[float, float] = {}

    @property
    def num_layers(self) -> int:
        """Number of feature stages the detector uses."""
        return len(self.gaussians)

    @property
    def num_scores(self) -> int:
        """One confidence score per stage."""
        return self.num_layers

    @property
    def is_fitted(self) -> bool:
        """Whether the class Gaussians are there."""
        return bool(self.gaussians)

    def fit(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int | None = None,
    ) -> MahalanobisDetector:
        """Class means and tied covariances per stage from clean training data.

        ``num_classes`` defaults to ``labels.max() + 1``; every class needs an example.
        """
        if len(images) == 0 or len(images) != len(labels):
            raise DataError(
                f"fit needs N >= 1 images and N labels, got {len(images)} and {len(labels)}"
            )
        check_images(images, ndim=None, unit_range=False)
        check_labels(labels, len(images), num_classes)
        device = model_device(model)
        per_layer: list[list[torch.Tensor]] = []
        with frozen_eval(model), torch.no_grad():
            for x in batches(images, self.batch_size, device, "mahalanobis fit"):
                feats = pooled_features(model, x)
                per_layer = per_layer or [[] for _ in feats]
                for store, f in zip(per_layer, feats, strict=True):
                    store.append(f.double().cpu())
        n_classes = int(labels.max()) + 1 if num_classes is None else num_classes
        self.gaussians = [
            fit_tied_gaussian(torch.cat(store), labels, n_classes, self.shrinkage).to(device)
            for store in per_layer
        ]
        self.model = model
        self.input_shape = tuple(images.shape[1:])
        self.weights = None
        logger.info("fitted %d layer Gaussians on %d examples", self.num_layers, len(images))
        return self

    def confidences(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Differentiable per-layer confidence scores ``(N, L)`` from pooled features."""
        self._require_fitted()
        cols = [-g.distances(f).amin(1) for g, f in zip(self.gaussians, features, strict=True)]
        return torch.stack(cols, dim=1)

    def layer_scores(self, images: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        """Per-layer Mahalanobis confidence scores ``(N, L)`` on the CPU (higher = more typical).

        With ``noise > 0`` each layer's score is taken after that layer's pre-processing step.
        """
        model = self._require_fitted()
        check_images(images, ndim=None, unit_range=False)
        device = model_device(model)
        out = []
        with frozen_eval(model):
            for x in batches(images, self.batch_size, device, "mahalanobis scores"):
                out.append(self._batch_scores(model, x, float(noise)).cpu())
        if not out:
            return torch.zeros(0, self.num_layers)
        return torch.cat(out)

    def differentiable_layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Confidence scores ``(N, L)`` at noise 0 with autograd (the pre-processing step is
        a sign of a gradient: it has none of its own)."""
        return self.confidences(pooled_features(self._require_fitted(), images))

    def _batch_scores(self, model: nn.Module, x: torch.Tensor, noise: float) -> torch.Tensor:
        if noise == 0.0:
            with torch.no_grad():
                return self.confidences(pooled_features(model, x)).float()
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            # One forward, one backward per layer: each layer gets its own input step.
            closest = self.confidences(pooled_features(model, x)).neg().sum(0)
            grads = [
                torch.autograd.grad(closest[layer], x, retain_graph=layer < self.num_layers - 1)[0]
                for layer in range(self.num_layers)
            ]
        cols = []
        with torch.no_grad():
            for layer, grad in enumerate(grads):
                x_hat = (x.detach() - noise * grad.sign()).clamp(0.0, 1.0)
                feats = pooled_features(model, x_hat)
                cols.append(-self.gaussians[layer].distances(feats[layer]).amin(1))
        return torch.stack(cols, dim=1).float()

    def _scores_by_setting(self, images: torch.Tensor) -> dict[float, np.ndarray]:
        return {n: self.layer_scores(images, n).double().numpy() for n in self.noise_grid}

    def _use_setting(self, setting: float, aurocs: dict[float, float]) -> None:
        self.noise, self.noise_aurocs = setting, aurocs
        logger.info("ensemble noise %g (held-out AUROC %.3f)", setting, aurocs.get(setting, 0.0))

    def _ensemble_inputs(self, images: torch.Tensor) -> torch.Tensor:
        return self.layer_scores(images, self.noise)

    def unsupervised_score(self, images: torch.Tensor) -> torch.Tensor:
        """The negated confidence of the last stage: the paper's single-layer score."""
        return -self.layer_scores(images)[:, -1]

    def score_from_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Differentiable ensemble score at noise 0 from pooled features."""
        weights = self._require_ensemble()
        scores = self.confidences(features)
        return scores @ weights.to(scores.device, scores.dtype) + self.intercept

    def summary(self) -> dict[str, Any]:
        """Name, chosen pre-processing noise and its held-out AUROC per candidate."""
        aurocs = {repr(k): v for k, v in self.noise_aurocs.items()}
        return {**super().summary(), "noise": self.noise, "noise_aurocs": aurocs}

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for layer, gaussian in enumerate(self.gaussians):
            tensors[f"layer{layer}.means"] = gaussian.means
            tensors[f"layer{layer}.whitening"] = gaussian.whitening
            tensors[f"layer{layer}.precision"] = gaussian.precision
        meta = {
            "num_layers": self.num_layers,
            "noise_grid": list(self.noise_grid),
            "shrinkage": self.shrinkage,
            "layer_shrinkage": [g.shrinkage for g in self.gaussians],
            "batch_size": self.batch_size,
            "seed": self.seed,
            "noise": self.noise,
            "noise_aurocs": {repr(k): v for k, v in self.noise_aurocs.items()},
        }
        return tensors, meta

    @classmethod
    def _restore(
        cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> MahalanobisDetector:
        detector = cls(
            noise_grid=meta["noise_grid"],
            shrinkage=meta["shrinkage"],
            batch_size=meta["batch_size"],
            seed=meta["seed"],
        )
        detector.gaussians = [
            TiedGaussian(tensors[f"layer{i}.means"], tensors[f"layer{i}.whitening"], float(shrink))
            for i, shrink in enumerate(meta["layer_shrinkage"])
        ]
        for g in detector.gaussians:
            if g.means.ndim != 2 or g.whitening.ndim != 2 or g.means.shape[1] != len(g.whitening):
                raise ValueError("class means and whitening matrices do not fit together")
        detector.noise = float(meta["noise"])
        detector.noise_aurocs = {float(k): float(v) for k, v in meta["noise_aurocs"].items()}
        return detector

    def _attach(self, model: nn.Module) -> None:
        device = model_device(model)
        self.gaussians = [g.to(device) for g in self.gaussians]
        self.model = model

    def _feature_widths(self, model: nn.Module | None = None) -> list[int]:
        if model is None:
            return [int(g.means.shape[1]) for g in self.gaussians]
        with frozen_eval(model), torch.no_grad():
            return [
                f.shape[1] for f in pooled_features(model, probe_input(model, self.input_shape))
            ]

    def __repr__(self) -> str:
        return (
            f"MahalanobisDetector(layers={self.num_layers}, shrinkage={self.shrinkage!r}, "
            f"noise={self.noise:g}, ensemble={'fitted' if self.weights is not None else 'none'})"
        )

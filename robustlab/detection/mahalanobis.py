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
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robustlab.detection import ensemble, storage
from robustlab.detection.features import batches, frozen_eval, pooled_features
from robustlab.detection.gaussian import TiedGaussian, fit_tied_gaussian, resolve_shrinkage
from robustlab.errors import ConfigError, DataError, RobustlabError
from robustlab.models.runtime import model_device

logger = logging.getLogger(__name__)

DEFAULT_NOISE_GRID = (0.0, 0.001, 0.002, 0.005, 0.01)


class MahalanobisDetector:
    """Mahalanobis-distance detector of adversarial examples with a feature ensemble.

    Arguments:
        noise_grid: pre-processing magnitudes tried by ``fit_ensemble`` (0 is always added).
        shrinkage: ``"auto"`` (Ledoit–Wolf) or a number in [0, 1] pulling each tied covariance
            toward ``trace/D * I``; 0 is the plain estimate of the paper (pseudo-inverse).
        batch_size: examples per forward pass.
        seed: seed of the validation split that chooses the noise magnitude.

    Examples::
        >>> detector = MahalanobisDetector().fit(model, train_images, train_labels)
        >>> detector.fit_ensemble(val_clean, val_adversarial, val_noisy)
        >>> scores = detector.score(test_images)  # higher = more likely adversarial
    """

    def __init__(
        self,
        noise_grid: Sequence[float] = DEFAULT_NOISE_GRID,
        shrinkage: str | float = "auto",
        batch_size: int = 256,
        seed: int = 0,
    ):
        grid = [float(n) for n in noise_grid]
        if any(not math.isfinite(n) or n < 0 for n in grid):
            raise ConfigError(f"noise_grid values must be finite and >= 0, got {list(noise_grid)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.noise_grid = tuple(sorted(set(grid) | {0.0}))
        self.shrinkage = resolve_shrinkage(shrinkage)
        self.batch_size = batch_size
        self.seed = seed
        self.model: nn.Module | None = None
        self.gaussians: list[TiedGaussian] = []
        self.input_shape: tuple[int, ...] = ()
        self.noise = 0.0
        self.weights: torch.Tensor | None = None
        self.intercept = 0.0
        self.noise_aurocs: dict[float, float] = {}

    @property
    def num_layers(self) -> int:
        """Number of feature stages the detector uses."""
        return len(self.gaussians)

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
        device = model_device(model)
        out = []
        with frozen_eval(model):
            for x in batches(images, self.batch_size, device, "mahalanobis scores"):
                out.append(self._batch_scores(model, x, float(noise)).cpu())
        if not out:
            return torch.zeros(0, self.num_layers)
        return torch.cat(out)

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

    def fit_ensemble(
        self, clean: torch.Tensor, adversarial: torch.Tensor, noisy: torch.Tensor | None = None
    ) -> MahalanobisDetector:
        """Choose the noise magnitude and fit the logistic regression on validation data.

        Negatives are ``clean`` (+ ``noisy``, e.g. Gaussian-noise copies that the model still
        classifies correctly), positives ``adversarial``. Never pass test data here.
        """
        self._require_fitted()
        parts = [clean] if noisy is None or len(noisy) == 0 else [clean, noisy]
        negatives = torch.cat([p.detach().cpu() for p in parts])
        images = torch.cat([negatives, adversarial.detach().cpu()])
        targets = np.r_[np.zeros(len(negatives)), np.ones(len(adversarial))].astype(np.int64)
        ensemble.check_targets(targets)
        by_noise = {n: self.layer_scores(images, n).double().numpy() for n in self.noise_grid}
        self.noise, self.noise_aurocs = ensemble.choose_noise(by_noise, targets, self.seed)
        weights, self.intercept = ensemble.fit_logistic(by_noise[self.noise], targets)
        self.weights = torch.from_numpy(weights).float()
        logger.info(
            "ensemble noise %g (held-out AUROC %.3f)", self.noise, self.noise_aurocs[self.noise]
        )
        return self

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Score ``(N,)``, higher = more likely adversarial.

        After ``fit_ensemble``: the logistic-regression decision function over the layer scores.
        After ``fit`` alone (no adversarial data seen yet): the negated confidence of the last
        stage, the single-layer Mahalanobis score of the paper's unsupervised variant.
        """
        if self.weights is None:
            self._require_fitted()
            return -self.layer_scores(images)[:, -1]
        return self.layer_scores(images, self.noise) @ self.weights + self.intercept

    def score_from_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Differentiable ensemble score at noise 0 from pooled features (adaptive attacks)."""
        weights = self._require_ensemble()
        scores = self.confidences(features)
        return scores @ weights.to(scores.device, scores.dtype) + self.intercept

    def save(self, path: str | Path) -> None:
        """Write ``path/detector.safetensors`` and ``path/detector.json`` (atomic, no pickle)."""
        self._require_fitted()
        storage.save_detector(self, path)

    @classmethod
    def load(cls, path: str | Path, model: nn.Module) -> MahalanobisDetector:
        """Load a detector saved by ``save`` and attach it to ``model`` (checked to match)."""
        return storage.load_detector(cls, path, model)

    def _require_fitted(self) -> nn.Module:
        if self.model is None or not self.gaussians:
            raise RobustlabError(
                "the detector is not fitted: call fit(model, images, labels) first"
            )
        return self.model

    def _require_ensemble(self) -> torch.Tensor:
        self._require_fitted()
        if self.weights is None:
            raise RobustlabError(
                "the feature ensemble is not fitted: call fit_ensemble(clean, adversarial) first"
            )
        return self.weights

    def __repr__(self) -> str:
        return (
            f"MahalanobisDetector(layers={self.num_layers}, shrinkage={self.shrinkage!r}, "
            f"noise={self.noise:g}, ensemble={'fitted' if self.weights is not None else 'none'})"
        )

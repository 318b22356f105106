"""Kernel density + Bayesian uncertainty (KD+BU) of Feinman et al. (2017), "Detecting
Adversarial Samples from Artifacts" [https://arxiv.org/abs/1703.00410].

Two scores per input ``x`` with predicted class ``t``: the log Gaussian kernel density of its
last-hidden-layer features (the pooled input of the classifier's linear layer) under the
clean training features of class ``t`` (low for adversarial examples, which land off the
class manifold), and the Monte-Carlo-dropout uncertainty of the prediction (high for them).
A logistic regression over the two, fitted on validation data, gives the score. The
bandwidth, which the paper set by hand per dataset, is chosen on validation data from a grid
relative to the features' within-class spread (``bandwidth`` and ``bandwidth_aurocs`` report
it).
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
from robustlab.detection.features import (
    batches,
    frozen_eval,
    pool_maps,
    pooled_features,
    probe_input,
    stage_maps,
)
from robustlab.detection.kernel import log_kernel_density, within_class_scale
from robustlab.detection.storage import SaveLoadMixin
from robustlab.detection.uncertainty import (
    mc_probabilities,
    predictive_uncertainty,
    require_dropout,
)
from robustlab.errors import ConfigError, DataError
from robustlab.inputs import check_images, check_labels
from robustlab.models.inference import model_device

logger = logging.getLogger(__name__)

# Multiples of the within-class RMS distance; a small factor makes the density a soft
# nearest-neighbour distance, a large one a distance to the class mean.
DEFAULT_BANDWIDTH_GRID = (0.05, 0.1, 0.2, 0.5, 1.0)
DEFAULT_MC_SAMPLES = 50  # T = 50 in Feinman et al.


class KernelDensityDetector(SaveLoadMixin, Detector):
    """KD+BU detector: ``layer_scores`` are ``[log density, uncertainty]`` per example.

    Arguments:
        bandwidth_grid: candidate bandwidths, as multiples of the RMS distance of the
            training features to their class mean; ``fit_ensemble`` keeps the best.
        mc_samples: dropout samples ``T`` of the uncertainty (the model must have dropout).
        chunk_size: training points per kernel-sum chunk (memory ``batch_size x chunk_size``).
        batch_size: examples per forward pass. seed: of the bandwidth choice and of the
            dropout masks (each scored batch re-seeds them, so scores are reproducible).
    """

    name = "kd_bu"

    def __init__(
        self,
        *,
        bandwidth_grid: Sequence[float] = DEFAULT_BANDWIDTH_GRID,
        mc_samples: int = DEFAULT_MC_SAMPLES,
        chunk_size: int = 4096,
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__(batch_size, seed)
        grid = sorted({float(b) for b in bandwidth_grid})
        if not grid or any(not math.isfinite(b) or b <= 0 for b in grid):
            raise ConfigError(f"bandwidth_grid needs values > 0, got {list(bandwidth_grid)}")
        for arg, value in (("mc_samples", mc_samples), ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"{arg} must be an integer >= 2, got {value!r}")
        self.bandwidth_grid = tuple(grid)
        self.mc_samples, self.chunk_size = mc_samples, chunk_size
        self.features = torch.zeros(0)  # training features sorted by class, centered
        self.offsets: list[int] = []  # class c owns rows offsets[c]:offsets[c + 1]
        self.center = torch.zeros(0)
        self.scale = 0.0
        self.bandwidth_factor = grid[len(grid) // 2]
        self.bandwidth_aurocs: dict[float, float] = {}

    @property
    def bandwidth(self) -> float:
        """The kernel bandwidth in feature units."""
        return self.bandwidth_factor * self.scale

    @property
    def num_scores(self) -> int:
        """Two: the log density and the uncertainty."""
        return 2

    @property
    def is_fitted(self) -> bool:
        """Whether training features are stored."""
        return len(self.offsets) > 1

    def fit(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int | None = None,
    ) -> KernelDensityDetector:
        """Store the last-layer features of clean training data, sorted by class."""
        require_dropout(model)
        if len(images) == 0 or len(images) != len(labels):
            raise DataError(
                f"fit needs N >= 1 images and N labels, got {len(images)}, {len(labels)}"
            )
        check_images(images, ndim=None, unit_range=False)
        check_labels(labels, len(images), num_classes)
        device = model_device(model)
        with frozen_eval(model), torch.no_grad():
            feats = [
                pooled_features(model, x)[-1].cpu()
                for x in batches(images, self.batch_size, device, "kd fit")
            ]
        features, labels = torch.cat(feats).float(), labels.detach().cpu().long()
        counts = torch.bincount(labels, minlength=num_classes or int(labels.max()) + 1)
        if (counts == 0).any():
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise DataError(f"class(es) {missing} have no training examples: every class needs one")
        order = torch.argsort(labels, stable=True)
        self.center = features.mean(0)
        self.features = (features[order] - self.center).to(device)
        self.offsets = [0, *torch.cumsum(counts, 0).tolist()]
        self.scale = within_class_scale(features, labels)
        self.model, self.input_shape, self.weights = model, tuple(images.shape[1:]), None
        logger.info("kd: %d training features of width %d", len(features), features.shape[1])
        return self

    def _terms(self, x: torch.Tensor, factors: Sequence[float]) -> tuple[torch.Tensor, ...]:
        """Log densities ``(B, len(factors))`` and uncertainties ``(B,)`` of one batch."""
        model = self._require_fitted()
        maps = stage_maps(model, x, "KD+BU")
        head = getattr(model, "forward_head", None)
        logits = head(maps[-1]) if head else model(x)
        queries = pool_maps(maps[-1:])[0] - self.center.to(x.device)
        predicted = logits.argmax(1)
        bandwidths = [f * self.scale for f in factors]
        density = queries.new_zeros(len(x), len(factors))
        for c in predicted.unique().tolist():
            rows = torch.nonzero(predicted == c).flatten()
            points = self.features[self.offsets[c] : self.offsets[c + 1]]
            values = log_kernel_density(queries[rows], points, bandwidths, self.chunk_size)
            density = density.index_put((rows,), values.to(density.dtype))
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            probs = mc_probabilities(model, x, maps[-1], self.mc_samples)
        return density, predictive_uncertainty(probs).to(density.dtype)

    def _all_scores(self, images: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
        """``(N, len(factors) + 1)``: densities per factor, then the uncertainty (CPU)."""
        model = self._require_fitted()
        out = []
        with frozen_eval(model), torch.no_grad():
            for x in batches(images, self.batch_size, model_device(model), "kd+bu scores"):
                density, uncertainty = self._terms(x, factors)
                out.append(torch.cat([density, uncertainty[:, None]], 1).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, len(factors) + 1)

    def layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 2)``: log kernel density at ``bandwidth`` and MC-dropout uncertainty (CPU)."""
        return self._all_scores(images, [self.bandwidth_factor])

    def differentiable_layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """The same two scores with autograd (dropout masks drawn afresh from ``seed``)."""
        density, uncertainty = self._terms(images, [self.bandwidth_factor])
        return torch.stack([density[:, 0], uncertainty], 1).float()

    def unsupervised_score(self, images: torch.Tensor) -> torch.Tensor:
        """Negated log density alone (the paper's KD-only detector)."""
        return -self.layer_scores(images)[:, 0]

    def _scores_by_setting(self, images: torch.Tensor) -> dict[float, np.ndarray]:
        scores = self._all_scores(images, self.bandwidth_grid).double().numpy()
        return {f: scores[:, [i, -1]] for i, f in enumerate(self.bandwidth_grid)}

    def _use_setting(self, setting: float, aurocs: dict[float, float]) -> None:
        self.bandwidth_factor, self.bandwidth_aurocs = setting, aurocs
        logger.info("kd bandwidth %.4g (%g x scale %.4g)", self.bandwidth, setting, self.scale)

    def summary(self) -> dict[str, Any]:
        """Name, chosen bandwidth (absolute and relative) and the held-out AUROCs."""
        aurocs = {repr(k): v for k, v in self.bandwidth_aurocs.items()}
        return {
            **super().summary(),
            "bandwidth": self.bandwidth,
            "bandwidth_factor": self.bandwidth_factor,
            "bandwidth_aurocs": aurocs,
            "mc_samples": self.mc_samples,
        }

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        # "centre": the saved file's key, kept so that detectors saved before stay loadable
        tensors = {"features": self.features, "centre": self.center}
        meta = {
            "bandwidth_grid": list(self.bandwidth_grid),
            "mc_samples": self.mc_samples,
            "chunk_size": self.chunk_size,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "offsets": self.offsets,
            "scale": self.scale,
            "bandwidth_factor": self.bandwidth_factor,
            "bandwidth_aurocs": {repr(k): v for k, v in self.bandwidth_aurocs.items()},
        }
        return tensors, meta

    @classmethod
    def _restore(
        cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> KernelDensityDetector:
        detector = cls(
            bandwidth_grid=meta["bandwidth_grid"],
            mc_samples=meta["mc_samples"],
            chunk_size=meta["chunk_size"],
            batch_size=meta["batch_size"],
            seed=meta["seed"],
        )
        features, center = tensors["features"].float(), tensors["centre"].float()
        offsets = [int(o) for o in meta["offsets"]]
        if features.ndim != 2 or center.shape != features.shape[1:]:
            raise ValueError("training features and their center do not fit together")
        if offsets[0] != 0 or offsets[-1] != len(features) or offsets != sorted(offsets):
            raise ValueError("class offsets do not partition the training features")
        detector.features, detector.center, detector.offsets = features, center, offsets
        detector.scale = float(meta["scale"])
        detector.bandwidth_factor = float(meta["bandwidth_factor"])
        if not detector.scale > 0 or not detector.bandwidth_factor > 0:
            raise ValueError("the bandwidth must be > 0")
        detector.bandwidth_aurocs = {
            float(k): float(v) for k, v in meta["bandwidth_aurocs"].items()
        }
        return detector

    def _attach(self, model: nn.Module) -> None:
        require_dropout(model)
        device = model_device(model)
        self.features, self.center = self.features.to(device), self.center.to(device)
        self.model = model

    def _feature_widths(self, model: nn.Module | None = None) -> list[int]:
        if model is None:
            return [int(self.features.shape[1])]
        with frozen_eval(model), torch.no_grad():
            return [pooled_features(model, probe_input(model, self.input_shape))[-1].shape[1]]

    def __repr__(self) -> str:
        return (
            f"KernelDensityDetector(bandwidth={self.bandwidth:.4g}, mc_samples={self.mc_samples}, "
            f"ensemble={'fitted' if self.weights is not None else 'none'})"
        )

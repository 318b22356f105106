"""Local intrinsic dimensionality (LID) of Ma et al. (2018), "Characterizing Adversarial
Subspaces Using Local Intrinsic Dimensionality" [https://arxiv.org/abs/1801.02613].

Per layer, the maximum-likelihood estimate ``LID(x) = -(1/k sum_i log(r_i(x) / r_k(x)))^-1``
from the distances ``r_1 <= ... <= r_k`` of ``x``'s (flattened) activations to its ``k``
nearest neighbours within a minibatch of clean examples; adversarial regions have a higher
LID. The layers are every stage of ``forward_features`` plus the logits (where the model has
``forward_head``), as in the paper's use of every layer's output. A logistic regression over
the per-layer estimates, fitted on validation data, gives the score.

The paper estimates each example within the minibatch it arrives in, so a test example's
score depends on its neighbours in the test batch. Here the reference minibatch is drawn once
from the clean training data at ``fit`` (seeded) and kept: a score depends on the example
alone. ``reference_batches > 1`` averages the estimates over that many disjoint minibatches.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from robustlab.detection.base import Detector
from robustlab.detection.features import batches, frozen_eval, probe_input, stage_maps
from robustlab.detection.storage import SaveLoadMixin
from robustlab.errors import ConfigError, DataError
from robustlab.inputs import check_images
from robustlab.models.inference import model_device

logger = logging.getLogger(__name__)

DEFAULT_K = 20  # neighbours: the default of the authors' reference code
DEFAULT_REFERENCE_SIZE = 100  # their minibatch size
# A mean log-ratio of 0 (all k neighbours equally far) would give an infinite estimate.
MAX_LID = 1e6


def lid_mle(distances: torch.Tensor) -> torch.Tensor:
    """LID estimates ``(N,)`` from the ascending distances ``(N, k)`` to the k nearest
    neighbours (differentiable); zero distances (duplicates) are clamped, not divided by."""
    r = distances.clamp_min(torch.finfo(distances.dtype).tiny)
    mean_log_ratio = torch.log(r / r[:, -1:]).mean(1)
    return -1.0 / mean_log_ratio.clamp(max=-1.0 / MAX_LID)


def knn_distances(queries: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """Ascending distances ``(N, k)`` to the k nearest reference points.

    A query identical to a reference point (a clean training example scored against the
    batch it belongs to) does not count as its own neighbour, as in the paper.
    """
    # exact distances, so that a query's copy in the reference is at exactly 0
    dist = torch.cdist(queries, reference, compute_mode="donot_use_mm_for_euclid_dist")
    nearest = dist.topk(k + 1, dim=1, largest=False).values
    own = nearest[:, :1] == 0
    return torch.where(own, nearest[:, 1:], nearest[:, :-1])


class LIDDetector(SaveLoadMixin, Detector):
    """LID detector: ``layer_scores`` are the per-layer LID estimates ``(N, L)``.

    Arguments:
        k: nearest neighbours per estimate (paper: 20). reference_size: clean examples per
            reference minibatch (paper: 100). reference_batches: minibatches averaged over.
        batch_size: examples per forward pass. seed: of the reference draw.
    """

    name = "lid"

    def __init__(
        self,
        *,
        k: int = DEFAULT_K,
        reference_size: int = DEFAULT_REFERENCE_SIZE,
        reference_batches: int = 1,
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__(batch_size, seed)
        for arg, value in (("k", k), ("reference_batches", reference_batches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{arg} must be a positive integer, got {value!r}")
        if isinstance(reference_size, bool) or not isinstance(reference_size, int):
            raise ConfigError(f"reference_size must be an integer, got {reference_size!r}")
        if reference_size <= k:
            raise ConfigError(f"reference_size ({reference_size}) must exceed k ({k})")
        self.k, self.reference_size, self.reference_batches = k, reference_size, reference_batches
        self.references: list[torch.Tensor] = []  # per layer (batches * size, D_l)

    @property
    def num_scores(self) -> int:
        """One estimate per layer."""
        return len(self.references)

    @property
    def is_fitted(self) -> bool:
        """Whether the reference activations are stored."""
        return bool(self.references)

    def fit(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> LIDDetector:
        """Draw the reference minibatch(es) from clean training data and keep their
        activations (``labels`` are not needed; accepted for the common interface)."""
        needed = self.reference_size * self.reference_batches
        if len(images) < needed:
            raise DataError(
                f"LID needs {needed} clean training images (reference_size x "
                f"reference_batches), got {len(images)}"
            )
        check_images(images, ndim=None, unit_range=False)
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
        chosen = images[pick[:needed]]
        self.model = model
        per_layer: list[list[torch.Tensor]] = []
        with frozen_eval(model), torch.no_grad():
            for x in batches(chosen, self.batch_size, model_device(model), "lid fit"):
                acts = self._activations(model, x)
                per_layer = per_layer or [[] for _ in acts]
                for store, a in zip(per_layer, acts, strict=True):
                    store.append(a)
        self.references = [torch.cat(store) for store in per_layer]
        self.input_shape, self.weights = tuple(images.shape[1:]), None
        logger.info("lid: %d layers, reference of %d examples", self.num_scores, needed)
        return self

    @staticmethod
    def _activations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """Flattened stage outputs, then the logits where the model has ``forward_head``."""
        maps = stage_maps(model, x, "LID")
        acts = [m.reshape(len(x), -1) for m in maps]
        if hasattr(model, "forward_head"):
            acts.append(model.forward_head(maps[-1]).reshape(len(x), -1))
        return [a.float() for a in acts]

    def _estimates(self, x: torch.Tensor) -> torch.Tensor:
        """Per-layer LID ``(B, L)`` of one batch, averaged over the reference minibatches."""
        acts = self._activations(self._require_fitted(), x)
        cols = []
        for act, reference in zip(acts, self.references, strict=True):
            chunks = reference.split(self.reference_size)
            lids = [lid_mle(knn_distances(act, ref, self.k)) for ref in chunks]
            cols.append(torch.stack(lids).mean(0))
        return torch.stack(cols, 1)

    def layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Per-layer LID estimates ``(N, L)`` on the CPU (higher = more adversarial-like)."""
        model = self._require_fitted()
        out = []
        with frozen_eval(model), torch.no_grad():
            for x in batches(images, self.batch_size, model_device(model), "lid scores"):
                out.append(self._estimates(x).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_scores)

    def differentiable_layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """The per-layer estimates with autograd to ``images``."""
        return self._estimates(images)

    def summary(self) -> dict[str, Any]:
        """Name, k, reference size and the ensemble."""
        return {
            **super().summary(),
            "k": self.k,
            "reference_size": self.reference_size,
            "reference_batches": self.reference_batches,
        }

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"layer{i}.reference": r for i, r in enumerate(self.references)}
        meta = {
            "k": self.k,
            "reference_size": self.reference_size,
            "reference_batches": self.reference_batches,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "num_layers": len(self.references),
        }
        return tensors, meta

    @classmethod
    def _restore(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> LIDDetector:
        detector = cls(
            k=meta["k"],
            reference_size=meta["reference_size"],
            reference_batches=meta["reference_batches"],
            batch_size=meta["batch_size"],
            seed=meta["seed"],
        )
        refs = [tensors[f"layer{i}.reference"].float() for i in range(int(meta["num_layers"]))]
        needed = detector.reference_size * detector.reference_batches
        if not refs or any(r.ndim != 2 or len(r) != needed for r in refs):
            raise ValueError(f"every layer needs a ({needed}, D) reference")
        detector.references = refs
        return detector

    def _attach(self, model: nn.Module) -> None:
        device = model_device(model)
        self.references = [r.to(device) for r in self.references]
        self.model = model

    def _feature_widths(self, model: nn.Module | None = None) -> list[int]:
        if model is None:
            return [int(r.shape[1]) for r in self.references]
        with frozen_eval(model), torch.no_grad():
            return [
                a.shape[1] for a in self._activations(model, probe_input(model, self.input_shape))
            ]

    def __repr__(self) -> str:
        state = "fitted" if self.weights is not None else "none"
        return (
            f"LIDDetector(k={self.k}, reference={self.reference_size}x{self.reference_batches}, "
            f"layers={self.num_scores}, ensemble={state})"
        )

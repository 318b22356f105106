"""``Detector``: the one interface of robustlab's adversarial-example detectors.

Every detector follows the same life cycle, so protocols, the adaptive attack, storage and the
app take any of them:

1. ``fit(model, images, labels)`` on clean *training* data (class statistics, references);
2. ``layer_scores(images) -> Tensor[N, L]``: raw per-layer (or per-feature) scores;
3. ``fit_ensemble(val_clean, val_adv, val_noisy=None)``: a logistic regression over the layer
   scores on *validation* data (adversarial = positive), after choosing, on half of that data,
   the detector's one data-driven setting (Mahalanobis' pre-processing noise, the kernel
   bandwidth) where it has one;
4. ``score(images) -> Tensor[N]`` (higher = more likely adversarial, no autograd) and
   ``differentiable_score(images)`` (the same ensemble with autograd, for adaptive attacks);
5. ``save(path)`` / ``load(path, model)``: safetensors + JSON, never pickle.

A subclass implements ``fit``, ``layer_scores``, ``differentiable_layer_scores`` and the three
storage hooks (``_state``, ``_restore``, ``_feature_widths``); the ensemble and scoring live
here once. This interface knows neither its subclasses nor the file format: a concrete detector
gets ``save``/``load`` from ``robustlab.detection.storage.SaveLoadMixin`` and a name from
[`robustlab.detection.register_detector`][robustlab.detection.register_detector], through which
``create_detector(name)`` and ``load_detector(path, model)`` find it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from robustlab.detection import ensemble
from robustlab.errors import ConfigError, RobustlabError
from robustlab.inputs import check_images
from robustlab.models.inference import model_context

D = TypeVar("D", bound="Detector")


class Detector(ABC):
    """Base class of the detectors (see the module docstring for the life cycle).

    Attributes shared by all: ``model`` (set by ``fit``/``load``), ``input_shape``,
    ``weights`` ``(L,)`` and ``intercept`` of the fitted ensemble (``None`` before
    ``fit_ensemble``), ``batch_size`` (examples per forward pass) and ``seed`` (of the
    validation split that chooses a setting, and of any Monte-Carlo draw).
    """

    #: Name in the registry, saved files, configs and results (``"mahalanobis"``, ``"lid"``).
    name: ClassVar[str] = ""

    def __init__(self, batch_size: int = 256, seed: int = 0):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.seed = int(seed)
        self.model: nn.Module | None = None
        self.input_shape: tuple[int, ...] = ()
        self.weights: torch.Tensor | None = None
        self.intercept = 0.0

    # --- what a detector implements -------------------------------------------------------

    @abstractmethod
    def fit(self: D, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> D:
        """Fit the detector's statistics on clean training data; returns ``self``."""

    @abstractmethod
    def layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Raw per-layer (or per-feature) scores ``(N, L)`` on the CPU, without autograd."""

    @abstractmethod
    def differentiable_layer_scores(self, images: torch.Tensor) -> torch.Tensor:
        """The ensemble's input ``(N, L)`` on the model's device, differentiable in ``images``."""

    @property
    @abstractmethod
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run."""

    @property
    @abstractmethod
    def num_scores(self) -> int:
        """``L``, the number of columns of ``layer_scores`` (and of ensemble weights)."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON-safe settings/state that ``_restore`` rebuilds the detector from."""

    @classmethod
    @abstractmethod
    def _restore(cls: type[D], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> D:
        """A detector from ``_state``'s output (raise KeyError/TypeError/ValueError if bad)."""

    @abstractmethod
    def _feature_widths(self, model: nn.Module | None = None) -> list[int]:
        """Widths of the features used: as saved (``model=None``) or as ``model`` gives them."""

    # --- hooks with defaults ----------------------------------------------------------------

    def _attach(self, model: nn.Module) -> None:
        """Attach a (checked) model after loading; move the statistics to its device."""
        self.model = model

    def _scores_by_setting(self, images: torch.Tensor) -> dict[float, np.ndarray]:
        """Layer scores under every candidate setting; one entry if the detector has none."""
        return {0.0: self.layer_scores(images).double().numpy()}

    def _use_setting(self, setting: float, aurocs: dict[float, float]) -> None:
        """Adopt the setting ``fit_ensemble`` chose (and remember the held-out AUROCs)."""
        return None

    def _ensemble_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """The layer scores under the chosen setting, as the ensemble sees them."""
        return self.layer_scores(images)

    def unsupervised_score(self, images: torch.Tensor) -> torch.Tensor:
        """Score before any adversarial data was seen; a detector without one refuses."""
        raise RobustlabError(
            f"{type(self).__name__} has no score before fit_ensemble(clean, adversarial): "
            "fit the ensemble on validation data first"
        )

    def summary(self) -> dict[str, Any]:
        """JSON-safe description for results: name, settings chosen, ensemble weights."""
        weights = None if self.weights is None else [float(w) for w in self.weights]
        return {"detector": self.name, "ensemble_weights": weights, "intercept": self.intercept}

    # --- the shared machinery ---------------------------------------------------------------

    def fit_ensemble(
        self: D,
        clean: torch.Tensor,
        adversarial: torch.Tensor,
        noisy: torch.Tensor | None = None,
    ) -> D:
        """Choose the setting (if any) and fit the logistic regression on validation data.

        Negatives are ``clean`` (+ ``noisy``, e.g. Gaussian-noise copies that the model still
        classifies correctly), positives ``adversarial``. Never pass test data here.
        """
        self._require_fitted()
        images, targets = ensemble.stack_examples(clean, adversarial, noisy)
        by_setting = self._scores_by_setting(images)
        if len(by_setting) > 1:
            setting, aurocs = ensemble.choose_setting(by_setting, targets, self.seed)
        else:
            (setting,), aurocs = by_setting.keys(), {}
        self._use_setting(setting, aurocs)
        weights, self.intercept = ensemble.fit_logistic(by_setting[setting], targets)
        self.weights = torch.from_numpy(weights).float()
        return self

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Score ``(N,)`` on the CPU, higher = more likely adversarial (no autograd graph).

        After ``fit_ensemble``: the logistic-regression decision function over the layer
        scores; before it, ``unsupervised_score`` (where the detector has one).
        """
        self._require_fitted()
        check_images(images, ndim=None, unit_range=False)
        if self.weights is None:
            return self.unsupervised_score(images).detach()
        return (self._ensemble_inputs(images) @ self.weights + self.intercept).detach()

    def differentiable_score(self, images: torch.Tensor) -> torch.Tensor:
        """The ensemble score ``(N,)`` with autograd to ``images`` (for adaptive attacks).

        Runs the model in eval mode with frozen parameters (gradients reach the input only).
        Where ``score`` uses a non-differentiable step (Mahalanobis' pre-processing) this is
        the score without it.
        """
        model = self._require_fitted()
        weights = self._require_ensemble()
        with model_context(model, "eval"):
            scores = self.differentiable_layer_scores(images)
        return scores @ weights.to(scores.device, scores.dtype) + self.intercept

    def _require_fitted(self) -> nn.Module:
        if self.model is None or not self.is_fitted:
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

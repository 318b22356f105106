"""torchattacks' attack-mode API on robustlab's native attacks.

A script written for torchattacks runs with only its import changed: the targeted modes
(``set_mode_targeted_by_label``, ``_random``, ``_least_likely``, ``_by_function``),
``set_mode_default``, ``set_model_training_mode``, ``get_logits`` and ``save(loader, path)``.
``save`` writes safetensors (never pickle); :func:`load_adversarial` reads the file back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from robustlab.errors import ConfigError

log = logging.getLogger(__name__)

TargetMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TorchattacksCompat:
    """Mixin for :class:`robustlab.attacks.Attack`: the attack-mode methods of
    ``torchattacks.Attack``. ``targeted`` / ``attack_mode`` mirror torchattacks' attributes."""

    model: nn.Module
    targeted: bool
    attack_mode = "default"
    supports_targeted = True
    _target_map: TargetMap | None = None
    _kth_min = 1

    def set_mode_default(self) -> None:
        """Untargeted: ``labels`` are the true classes and the attack makes them wrong."""
        self.targeted, self.attack_mode, self._target_map = False, "default", None

    def _set_targeted(self, mode: str, target_map: TargetMap | None) -> None:
        if not self.supports_targeted:
            raise ConfigError(f"{type(self).__name__} supports only the default (untargeted) mode")
        self.targeted, self.attack_mode, self._target_map = True, mode, target_map

    def set_mode_targeted_by_label(self, quiet: bool = False) -> None:
        """Targeted: the ``labels`` given to the attack are the target classes."""
        self._set_targeted("targeted(label)", None)

    def set_mode_targeted_by_function(
        self, target_map_function: TargetMap, quiet: bool = False
    ) -> None:
        """Targeted: targets are ``target_map_function(images, labels)``."""
        self._set_targeted("targeted(custom)", target_map_function)

    def set_mode_targeted_random(self, quiet: bool = False) -> None:
        """Targeted: each example gets a uniformly random class other than its label."""
        self._set_targeted("targeted(random)", self.random_target_label)

    def set_mode_targeted_least_likely(self, kth_min: int = 1, quiet: bool = False) -> None:
        """Targeted: each example's ``kth_min``-th least likely class other than its label."""
        if not isinstance(kth_min, int) or kth_min < 1:
            raise ConfigError(f"kth_min must be an integer >= 1, got {kth_min!r}")
        self._kth_min = kth_min
        self._set_targeted("targeted(least-likely)", self.least_likely_label)

    def set_model_training_mode(
        self,
        model_training: bool = False,
        batchnorm_training: bool = False,
        dropout_training: bool = False,
    ) -> None:
        """Craft with the model in training mode (BN and dropout in eval mode unless asked);
        BN running statistics are restored afterwards, as for ``model_mode="train"``."""
        self.model_mode = "train" if model_training else "eval"
        self.train_modules = {"batchnorm": batchnorm_training, "dropout": dropout_training}

    @torch.no_grad()
    def get_logits(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The model's logits for ``inputs`` (moved to the model's device)."""
        return self.model(inputs.to(self.device))

    @torch.no_grad()
    def _clean_logits(self, images: torch.Tensor) -> torch.Tensor:
        training = self.model.training
        self.model.eval()
        try:
            return self.model(images.to(self.device))
        finally:
            self.model.train(training)

    def random_target_label(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A uniformly random class != label per example."""
        classes = self._clean_logits(images).shape[1]
        shift = torch.randint(1, classes, labels.shape, device=labels.device)
        return (labels + shift) % classes

    def least_likely_label(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The ``kth_min``-th smallest logit among the classes != label, per example."""
        logits = self._clean_logits(images).to(labels.device)
        logits = logits.scatter(1, labels[:, None], float("inf"))
        return logits.argsort(dim=1)[:, self._kth_min - 1]

    def _targets(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self._target_map is None:
            return labels
        return self._target_map(images, labels).to(labels.device, torch.long)

    def save(
        self,
        data_loader: Iterable,
        save_path: str | Path | None = None,
        verbose: bool = True,
        return_verbose: bool = False,
        save_predictions: bool = False,
        save_clean_inputs: bool = False,
        save_type: str = "float",
    ) -> tuple[float, float, float] | None:
        """Attack every ``(images, labels)`` batch of ``data_loader``; write ``adv_inputs``,
        ``labels`` (and ``preds`` / ``clean_inputs`` when asked) as safetensors to ``save_path``.

        ``save_type="int"`` stores images as uint8 (x 255), like torchattacks. Returns
        (robust accuracy %, mean L2 of the fooled, seconds) when ``return_verbose``.
        """
        if save_type not in ("float", "int"):
            raise ConfigError(f"save_type must be 'float' or 'int', got {save_type!r}")
        started, parts = time.perf_counter(), {"adv_inputs": [], "labels": [], "preds": []}
        parts["clean_inputs"], correct, total, distances = [], 0, 0, []
        for images, labels in data_loader:
            adv = self(images, labels).cpu()
            preds = self._clean_logits(adv).argmax(1).cpu()
            right = preds == labels.cpu()
            correct, total = correct + int(right.sum()), total + len(labels)
            distances.append((adv - images.cpu()).flatten(1).norm(dim=1)[~right])
            for key, value in zip(parts, (adv, labels.cpu(), preds, images.cpu()), strict=True):
                parts[key].append(value)
        accuracy = 100.0 * correct / max(total, 1)
        l2 = float(torch.cat(distances).mean()) if distances and total > correct else 0.0
        elapsed = time.perf_counter() - started
        if verbose:
            log.info("robust accuracy %.2f%% / L2 %.5f / %.1f s", accuracy, l2, elapsed)
        if save_path is not None:
            if not save_predictions:
                parts.pop("preds")
            if not save_clean_inputs:
                parts.pop("clean_inputs")
            _write(parts, save_path, save_type)
        return (accuracy, l2, elapsed) if return_verbose else None


def _write(parts: dict[str, list[torch.Tensor]], path: str | Path, save_type: str) -> None:
    tensors = {key: torch.cat(chunks).contiguous() for key, chunks in parts.items() if chunks}
    if save_type == "int":
        for key in {"adv_inputs", "clean_inputs"} & set(tensors):
            tensors[key] = (tensors[key] * 255).round().to(torch.uint8)
    save_file(tensors, str(path), metadata={"save_type": save_type})


def load_adversarial(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors written by ``attack.save(loader, path)``; uint8 images come back as [0, 1] floats."""
    tensors = load_file(str(path))
    for key in ("adv_inputs", "clean_inputs"):
        if key in tensors and tensors[key].dtype == torch.uint8:
            tensors[key] = tensors[key].float() / 255
    return tensors

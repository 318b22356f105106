"""torchattacks' ``Attack`` method names on robustlab's own attacks.

robustlab's attacks answer the calls a torchattacks user makes, with robustlab's defaults
(the exact torchattacks classes and defaults are `robustlab.torchattacks`): the targeted modes
(``set_mode_targeted_by_label``, ``_random``, ``_least_likely``, ``_by_function``),
``set_mode_default``, ``set_model_training_mode``, ``set_normalization_used``, ``set_device``,
``get_logits``, ``supported_mode``, ``save(loader, path)`` (torchattacks' file format,
`robustlab.attacks.saving`) and ``load``. `TorchattacksSurface` is what native and
adapted attacks share; `TorchattacksCompat` adds the attack modes of the native ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from robustlab.attacks import normalization, saving
from robustlab.errors import ConfigError
from robustlab.models.inference import model_context

# How far outside [0, 1] an inverse-normalised pixel may be and still count as inside.
ROUNDING = 1e-5

TargetMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TorchattacksSurface:
    """What native and adapted attacks share: normalisation, device, ``save`` and ``load``.

    ``normalization_used``: torchattacks' ``{"mean", "std"}`` or None. The host class
    provides ``model``, ``device`` and ``__call__``.
    """

    model: nn.Module
    device: torch.device
    normalization_used: dict[str, torch.Tensor] | None = None
    _model_normalises = False

    def set_device(self, device: str | torch.device) -> None:
        """Run the attack on ``device`` (the model is not moved, as in torchattacks)."""
        self.device = torch.device(device)

    def _set_normalization(self, mean, std) -> bool:
        """Record the statistics; True when the model normalises inside (then warned)."""
        self.normalization_used = normalization.normalization_stats(mean, std)
        self._model_normalises = normalization.normalises_inside(self.model)
        if self._model_normalises:
            normalization.warn_normalised_inside(type(self).__name__, self.model)
        return self._model_normalises

    def _unit(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs in [0, 1]: normalised inputs mapped back when normalisation is used."""
        if self.normalization_used is None:
            return inputs
        unit = normalization.inverse_normalize(inputs, self.normalization_used)
        # float rounding of normalise-then-invert may leave 0 and 1 a few ulps outside [0, 1]
        near = (unit >= -ROUNDING) & (unit <= 1 + ROUNDING)
        return torch.where(near, unit.clamp(0, 1), unit)

    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images in the caller's space (normalised when normalisation is used)."""
        if self.normalization_used is None:
            return images
        return normalization.normalize(images, self.normalization_used)

    def _model_input(self, images: torch.Tensor) -> torch.Tensor:
        """What the model is given for [0, 1] ``images``."""
        if self.normalization_used is None or self._model_normalises:
            return images
        return normalization.normalize(images, self.normalization_used)

    @torch.no_grad()
    def _predict_unit(self, images: torch.Tensor) -> torch.Tensor:
        with model_context(self.model, "eval") as model:
            return model(self._model_input(images.to(self.device))).argmax(1)

    def _unit_pair(self, inputs: torch.Tensor, labels: torch.Tensor):
        adv = self(inputs, labels).detach()
        return self._unit(adv).cpu(), self._unit(inputs.to(adv.device)).cpu()

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
        """torchattacks' ``save``: attack every ``(inputs, labels)`` batch of ``data_loader``
        and write ``adv_inputs``, ``labels`` (``preds``, ``clean_inputs`` when asked) in [0, 1]
        to ``save_path`` in torchattacks' format (safetensors for a ``.safetensors`` path);
        ``save_type="int"`` stores uint8 images. ``verbose`` prints torchattacks' progress line;
        returns (robust accuracy %, mean L2 of the fooled, seconds) when ``return_verbose``."""
        if save_type not in ("float", "int"):
            raise ConfigError(f"save_type must be 'float' or 'int', got {save_type!r}")
        parts, figures = saving.attack_loader(
            self._unit_pair, self._predict_unit, data_loader, verbose
        )
        if save_path is not None:
            saving.write_adversarial(
                parts, save_path, save_predictions, save_clean_inputs, save_type
            )
        return figures if return_verbose else None

    load = staticmethod(saving.load)

    def __repr__(self) -> str:
        """torchattacks' form: ``Name(model_name=..., device=..., attack_mode=..., ...)``."""
        info = {
            "model_name": type(self.model).__name__,
            "device": self.device,
            "attack_mode": getattr(self, "attack_mode", "default"),
            "targeted": getattr(self, "targeted", False),
            "normalization_used": self.normalization_used is not None,
        }
        info |= {
            key: _short(value)
            for key, value in vars(self).items()
            if not key.startswith("_")
            and key not in ("model", "name", *info)
            and not callable(value)
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in info.items())})"


def _short(value: object) -> object:
    """A tensor of many values as ``tensor(N)``, dicts by their keys; anything else as is."""
    if torch.is_tensor(value) and value.numel() > 1:
        return f"tensor({value.numel()})"
    return list(value) if isinstance(value, dict) else value


class TorchattacksCompat(TorchattacksSurface):
    """Mixin for `robustlab.attacks.Attack`: the attack-mode methods of
    ``torchattacks.Attack``. ``targeted`` / ``attack_mode`` mirror torchattacks' attributes."""

    targeted: bool
    attack_mode = "default"
    supports_targeted = True
    _target_map: TargetMap | None = None
    _kth_min = 1

    @property
    def supported_mode(self) -> list[str]:
        """torchattacks' ``supported_mode``: ``["default", "targeted"]`` or ``["default"]``."""
        return ["default", "targeted"] if self.supports_targeted else ["default"]

    def set_normalization_used(self, mean, std) -> None:
        """Inputs are normalised with ``mean``/``std`` per channel: the attack maps them back to
        [0, 1], normalises what the model sees and returns normalised adversarial inputs, as
        torchattacks does; a model that normalises inside gets a warning and [0, 1] images."""
        self._set_normalization(mean, std)

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
        """Logits of [0, 1] images in eval mode (normalised for the model when asked)."""
        training = self.model.training
        self.model.eval()
        try:
            return self.model(self._model_input(images.to(self.device)))
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

"""The attack base class, its result type and the input contract.

Conventions shared with torchattacks, so that robustlab and torchattacks attacks are
interchangeable: images are float tensors in [0, 1] of shape (N, C, H, W), labels are int64 of
shape (N,), ``attack(images, labels)`` returns adversarial images on the model's device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from robustlab import inputs
from robustlab.attacks.compat import TorchattacksCompat
from robustlab.attacks.geometry import NORMS, row_norms
from robustlab.attacks.losses import (
    LossSpec,
    batch_objective,
    margin_loss,
    per_example_objective,
    validate_loss,
)
from robustlab.attacks.normalization import NormalizedModel
from robustlab.errors import ConfigError
from robustlab.models.inference import check_model_mode, model_context, model_device


@dataclass
class AttackResult:
    """What an attack produced for one batch.

    ``success``: the adversarial image is misclassified (or, targeted, classified as the
    target). ``perturbation_norm``: ``||adv - images||`` in the attack's norm, per example.
    ``grad_evals``: input-gradient evaluations (one per example per forward+backward).
    """

    adv_images: torch.Tensor
    success: torch.Tensor
    perturbation_norm: torch.Tensor
    grad_evals: int


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm (Linf, L2 or L1) of a perturbation batch."""
    return row_norms(delta, norm)


def is_success(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Fooled examples: prediction != label, or == target when ``targeted``."""
    predictions = logits.argmax(dim=1)
    return predictions == labels if targeted else predictions != labels


def check_radii(attack: str, eps: float | torch.Tensor) -> torch.Tensor:
    """eps as a float tensor (0-d or (N,)); ConfigError unless finite and >= 0."""
    value = eps.detach().float().cpu() if isinstance(eps, torch.Tensor) else None
    if value is None and isinstance(eps, int | float) and not isinstance(eps, bool):
        value = torch.tensor(float(eps))
    if value is None or value.ndim > 1 or not torch.isfinite(value).all() or (value < 0).any():
        raise ConfigError(
            f"{attack}: eps must be a number >= 0 or a (N,) tensor of them, got {eps!r}"
        )
    return value


class Attack(TorchattacksCompat):
    """Base class: subclasses implement ``_craft(images, labels, need_success)``.

    ``loss``: ``"ce"``, ``"margin"``, ``"dlr"`` or ``loss(model, adv_images, images, labels) ->
    Tensor[N]`` (maximised). ``targeted=True``: ``labels`` are target classes and the attack
    drives the loss down for them (or use torchattacks' ``set_mode_targeted_*`` methods).
    ``model_mode``: ``"eval"`` (default) or ``"train"`` (batch statistics, BN running statistics
    restored afterwards). The model's modes, BN buffers and parameter gradients are left exactly
    as they were; the input tensors are never modified. Images outside [0, 1] or of a non-float
    dtype are a ValueError.
    """

    norm = "Linf"
    # A Linf eps >= 1 on [0, 1] images is refused (written in 0-255 units by mistake); the
    # torchattacks drop-in turns this off, since torchattacks accepts any eps.
    guard_pixel_eps = True

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        loss: LossSpec = "ce",
        targeted: bool = False,
        model_mode: str = "eval",
    ):
        self.model = model
        self.eps = inputs.check_eps(eps, f"{type(self).__name__}: eps")
        self.loss = validate_loss(loss)
        self.targeted = bool(targeted)
        self.attack_mode = "targeted(label)" if targeted else "default"
        self.model_mode = check_model_mode(model_mode)
        self.train_modules = {"batchnorm": True, "dropout": True}
        self.device = model_device(model)

    def _check_pixel_eps(self) -> None:
        """InputError for a Linf eps >= 1; call once ``norm`` and ``eps`` are final."""
        if self.guard_pixel_eps and self.norm == "Linf":
            radii = self.eps.flatten().tolist() if torch.is_tensor(self.eps) else [self.eps]
            inputs.check_linf_radii(radii)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images for ``images`` (like ``torchattacks.Attack.__call__``; normalised
        in and out after ``set_normalization_used``)."""
        images, labels = self._prepare(self._unit(images), labels)
        with self._context(), self._normalising():
            adv, _, _ = self._craft(images, labels, need_success=False)
        return self._normalised(adv)

    def run(self, images: torch.Tensor, labels: torch.Tensor) -> AttackResult:
        """Attack a batch and report success, perturbation size (in [0, 1] pixel space) and
        gradient cost."""
        images, labels = self._prepare(self._unit(images), labels)
        with self._context(), self._normalising():
            adv, success, grad_evals = self._craft(images, labels, need_success=True)
        norms = perturbation_norm(adv - images, self.norm)
        return AttackResult(self._normalised(adv), success, norms, grad_evals)

    @contextmanager
    def _normalising(self) -> Iterator[None]:
        """While crafting, the model sees normalised images (``set_normalization_used`` on a
        model that does not normalise inside)."""
        if self.normalization_used is None or self._model_normalises:
            yield
            return
        model = self.model
        self.model = NormalizedModel(model, self.normalization_used)
        try:
            yield
        finally:
            self.model = model

    def _craft(
        self, images: torch.Tensor, labels: torch.Tensor, need_success: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        raise NotImplementedError

    @contextmanager
    def _context(self) -> Iterator[nn.Module]:
        """The model in ``model_mode``; in train mode, BN/dropout as ``set_model_training_mode``
        asked. Everything is restored on exit."""
        with model_context(self.model, self.model_mode) as model:
            if self.model_mode == "train":
                for module in model.modules():
                    if isinstance(module, nn.modules.batchnorm._NormBase):
                        module.train(self.train_modules["batchnorm"])
                    elif isinstance(module, nn.modules.dropout._DropoutNd):
                        module.train(self.train_modules["dropout"])
            yield model

    def _prepare(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs.check_images(images, dtype=inputs.model_dtype(self.model))
        inputs.check_labels(labels, len(images))
        # one single-image forward gives the model's classes: an out-of-range label is one
        # InputError line rather than an index error deep inside the loss
        inputs.check_labels(labels, len(images), inputs.output_classes(self.model, images))
        # detach() + to() never writes into the caller's tensors.
        images = images.detach().to(self.device)
        labels = labels.detach().to(self.device, torch.long)
        return images, self._targets(images, labels)

    def gradient(
        self, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the attack's objective w.r.t. ``adv`` and the logits at ``adv``.

        One forward+backward pass; a callable loss that does not call the model on exactly
        ``adv`` costs one more forward for the logits. Call inside the model context.
        """
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            if callable(self.loss):
                logits, value = self._callable_objective(adv, images, labels)
            else:
                logits = self.model(adv)
                independent = self.model_mode == "eval"
                value = batch_objective(self.loss, logits, labels, self.targeted, independent)
            grad = torch.autograd.grad(value, adv)[0]
        return grad, (logits.detach() if logits is not None else self._logits(adv.detach()))

    def _callable_objective(
        self, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        # The logits of the model's call on exactly `adv` are caught so that early stopping
        # needs no extra forward pass.
        caught: list[torch.Tensor] = []

        def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if inputs and inputs[0] is adv and not caught:
                caught.append(output)

        handle = self.model.register_forward_hook(hook)
        try:
            value = self.loss(self.model, adv, images, labels)
        finally:
            handle.remove()
        if value.shape != (len(adv),):
            raise ValueError(
                f"a callable attack loss must return shape (N,), got {tuple(value.shape)}"
            )
        value = value.sum()
        return (caught[0] if caught else None), (-value if self.targeted else value)

    def radii(self, n: int, device: torch.device) -> float | torch.Tensor:
        """The radius of each of ``n`` images: ``eps`` when it is a float, else the (N,) tensor
        of an attack built with one eps per image, on ``device``."""
        if not isinstance(self.eps, torch.Tensor):
            return self.eps
        if len(self.eps) != n:
            raise ValueError(
                f"{type(self).__name__} got {len(self.eps)} eps values for {n} images: pass one "
                "eps per image (shape (N,)) or a float"
            )
        return self.eps.to(device)

    def eps_repr(self) -> str:
        return f"{self.eps:g}" if isinstance(self.eps, float) else f"tensor({len(self.eps)})"

    @torch.no_grad()
    def _logits(self, adv: torch.Tensor) -> torch.Tensor:
        return self.model(adv)

    @torch.no_grad()
    def _score(
        self, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (success, objective value) of finished iterates; one forward pass."""
        logits = self.model(adv)
        success = is_success(logits, labels, self.targeted)
        if callable(self.loss):
            value = self.loss(self.model, adv, images, labels).detach()
            value = -value if self.targeted else value
        else:
            value = per_example_objective(self.loss, logits, labels, self.targeted)
        return success, value


__all__ = [
    "NORMS",
    "Attack",
    "AttackResult",
    "is_success",
    "margin_loss",
    "perturbation_norm",
]

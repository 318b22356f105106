"""The attack base class and its result type.

Conventions shared with torchattacks, so that robustlab and torchattacks attacks are
interchangeable: images are float tensors in [0, 1] of shape (N, C, H, W), labels are int64 of
shape (N,), ``attack(images, labels)`` returns adversarial images on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustlab.attacks.losses import (
    LossSpec,
    batch_objective,
    margin_loss,
    per_example_objective,
    validate_loss,
)
from robustlab.attacks.modes import attack_context, check_model_mode, model_device
from robustlab.errors import ConfigError

NORMS = ("Linf", "L2")


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
    evals_per_example: torch.Tensor | None = None


@dataclass
class Budget:
    """Perturbation budget of one batch: ``eps`` and step ``alpha`` are floats (the whole
    batch) or tensors of shape (N,) broadcast over pixels (one budget per example).

    ``groups`` (int64 (N,), optional) marks rows that are copies of one example at different
    eps: once a row fools the model, the rows of its group at an eps at least as large need no
    further steps (a perturbation inside a small ball is inside every larger one).
    """

    eps: float | torch.Tensor
    alpha: float | torch.Tensor | None = None
    groups: torch.Tensor | None = None

    def take(self, index: torch.Tensor) -> Budget:
        """The budget of the rows ``index``."""
        return Budget(*(v[index] if torch.is_tensor(v) else v for v in vars(self).values()))


def per_pixel(value: float | torch.Tensor, ndim: int) -> float | torch.Tensor:
    """A float as is; a per-example tensor (N,) viewed as (N, 1, ...) to broadcast over pixels."""
    return value.view(-1, *[1] * (ndim - 1)) if torch.is_tensor(value) else value


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example Linf or L2 norm of a perturbation batch."""
    flat = delta.flatten(1)
    if norm == "Linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(len(flat))
    return flat.norm(p=2, dim=1)


def is_success(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Fooled examples: prediction != label, or == target when ``targeted``."""
    predictions = logits.argmax(dim=1)
    return predictions == labels if targeted else predictions != labels


class Attack:
    """Base class: subclasses implement ``_craft(images, labels, need_success)``.

    ``loss``: ``"ce"``, ``"margin"`` or ``loss(model, adv_images, images, labels) -> Tensor[N]``
    (maximised). ``targeted=True``: ``labels`` are target classes and the attack drives the
    loss down for them. ``model_mode``: ``"eval"`` (default) or ``"train"`` (batch statistics,
    BN running statistics restored afterwards). The model's modes, BN buffers and parameter
    gradients are left exactly as they were; the input tensors are never modified.
    """

    norm = "Linf"
    supports_init = False  # whether run() can start from given iterates (warm start)
    supports_per_example_eps = False  # whether run() takes eps/alpha tensors of shape (N,)

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        loss: LossSpec = "ce",
        targeted: bool = False,
        model_mode: str = "eval",
    ):
        if not isinstance(eps, int | float) or eps < 0:
            raise ConfigError(f"{type(self).__name__}: eps must be a number >= 0, got {eps!r}")
        self.model = model
        self.eps = float(eps)
        self.loss = validate_loss(loss)
        self.targeted = bool(targeted)
        self.model_mode = check_model_mode(model_mode)
        self.device = model_device(model)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images for ``images`` (like ``torchattacks.Attack.__call__``)."""
        images, labels = self._prepare(images, labels)
        with attack_context(self.model, self.model_mode):
            adv, _, _ = self._craft(images, labels, False, None, self._budget(len(images)))
        return adv

    def run(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        init: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
        alpha: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> AttackResult:
        """Attack a batch and report success, perturbation size and gradient cost.

        ``init``: starting iterates (projected into the ball) for attacks with
        ``supports_init``, e.g. the previous eps's result in an eps-grid evaluation.
        ``eps``, ``alpha`` (shape (N,)) and ``groups``: per-example budgets for attacks with
        ``supports_per_example_eps``, see :class:`Budget`; by default the attack's own scalars.
        """
        images, labels = self._prepare(images, labels)
        if init is not None:
            init = init.detach().to(self.device)
        budget = self._budget(len(images), eps, alpha, groups)
        with attack_context(self.model, self.model_mode):
            adv, success, evals = self._craft(images, labels, True, init, budget)
        norms = perturbation_norm(adv - images, self.norm)
        return AttackResult(adv, success, norms, int(evals.sum()), evals)

    def _craft(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        need_success: bool,
        init: torch.Tensor | None,
        budget: Budget,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(adv, success or None, gradient evaluations per example (int64 (N,)))."""
        raise NotImplementedError

    def _budget(
        self,
        n: int,
        eps: torch.Tensor | None = None,
        alpha: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> Budget:
        given = {"eps": eps, "alpha": alpha, "groups": groups}
        if any(v is not None for v in given.values()) and not self.supports_per_example_eps:
            raise ConfigError(f"{type(self).__name__} takes no per-example eps, alpha or groups")
        budget = Budget(self.eps, getattr(self, "alpha", None), None)
        for key, value in given.items():
            if value is None:
                continue
            value = torch.as_tensor(value, device=self.device)
            if value.shape != (n,) or (key != "groups" and bool((value < 0).any())):
                raise ValueError(f"per-example {key} must have shape ({n},) and be >= 0")
            is_float = key != "groups"
            setattr(budget, key, value.float() if is_float else value.long())
        return budget

    def _prepare(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"expected images (N, ...) and labels (N,), got {tuple(images.shape)} "
                f"and {tuple(labels.shape)}"
            )
        # detach() + to() never writes into the caller's tensors.
        return images.detach().to(self.device), labels.detach().to(self.device, torch.long)

    def _input_grad(
        self, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Gradient of the objective w.r.t. ``adv``, and the logits of that forward when known."""
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            if callable(self.loss):
                logits, value = self._callable_objective(adv, images, labels)
            else:
                logits = self.model(adv)
                value = batch_objective(self.loss, logits, labels, self.targeted)
            grad = torch.autograd.grad(value, adv)[0]
        return grad, (logits.detach() if logits is not None else None)

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

    def __repr__(self) -> str:
        loss = (
            self.loss if isinstance(self.loss, str) else getattr(self.loss, "__name__", "callable")
        )
        name = type(self).__name__
        return f"{name}(eps={self.eps:g}, norm={self.norm}, loss={loss}, targeted={self.targeted})"


__all__ = [
    "Attack",
    "AttackResult",
    "Budget",
    "NORMS",
    "is_success",
    "margin_loss",
    "perturbation_norm",
    "per_pixel",
]

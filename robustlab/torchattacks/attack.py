"""`Attack`: torchattacks' base class, for the drop-in's attacks and for your own.

It is ``torchattacks.attack.Attack`` itself, subclassed: every public method and attribute
(``set_mode_targeted_*``, ``get_target_label``, ``set_normalization_used``, ``normalize``,
``set_model_training_mode``, ``get_logits``, ``save``, ``load``, ``model_name``,
``supported_mode``, ...) behaves as torchattacks documents it, and every drop-in attack is also
a ``torchattacks.attack.Attack`` (torchattacks' own ``MultiAttack`` accepts it). What robustlab adds
is in `__call__` only: the inputs are checked once (`robustlab.torchattacks.guard`) and the
model is given back exactly as it came in.

A custom attack is written as torchattacks documents it::

    from robustlab.torchattacks.attack import Attack

    class Noise(Attack):
        def __init__(self, model, eps=8 / 255):
            super().__init__("Noise", model)
            self.eps = eps
            self.supported_mode = ["default", "targeted"]

        def forward(self, images, labels):
            images = images.clone().detach().to(self.device)
            noise = torch.empty_like(images).uniform_(-self.eps, self.eps)
            return (images + noise).clamp(0, 1)
"""

from __future__ import annotations

import torch
import torchattacks.attack

from robustlab.torchattacks import guard


class Attack(torchattacks.attack.Attack):
    r"""Base class for all attacks: torchattacks' ``Attack`` with robustlab's input check and
    model restoration around every call.

    Arguments:
        name (str): name of the attack (shown by ``repr``).
        model (nn.Module): model to attack; it takes images in [0, 1] (or normalized ones,
            see ``set_normalization_used``) and returns logits.

    Subclasses implement ``forward(images, labels)`` and return adversarial images in [0, 1];
    ``__call__`` handles normalization, the model's mode and the targeted modes around it.
    """

    def __call__(
        self, inputs: torch.Tensor, labels: torch.Tensor | None = None, *args, **kwargs
    ) -> torch.Tensor:
        """Adversarial inputs for ``inputs`` (normalized in and out after
        ``set_normalization_used``), as torchattacks' ``__call__``; inputs outside [0, 1] or
        labels outside the model's classes are one `robustlab.errors.InputError` line."""
        applied = self._normalization_applied
        unit = self.inverse_normalize(inputs) if applied is True else inputs
        guard.check_call(inputs, labels, self.model, unit)
        try:
            with guard.model_restored(self.model):
                return super().__call__(inputs, labels, *args, **kwargs)
        finally:
            # torchattacks leaves the flag False when forward raises; the next call would then
            # attack normalized inputs as if they were [0, 1] images
            if self._normalization_applied is not applied:
                self._set_normalization_applied(applied)


__all__ = ["Attack"]

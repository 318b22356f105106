"""MultiAttack: several attacks in turn, each on the examples the earlier ones left unbroken."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from robustlab.attacks.compat import TorchattacksSurface
from robustlab.errors import ConfigError
from robustlab.models.inference import model_device


class MultiAttack(TorchattacksSurface):
    r"""torchattacks.MultiAttack's signature and result, for any mix of attacks: robustlab's
    native ones, adapted ones and plain torchattacks instances.

    Each attack runs on the examples that no earlier attack misclassified; an example keeps the
    image of the first attack that fooled it (else its clean image). ``set_normalization_used``,
    ``set_device`` and ``set_model_training_mode`` reach every attack.

    Arguments:
        attacks (list): two or more attacks, all on the same model.
        verbose (bool): print the cumulative success rate after each attack. (Default: False)

    Examples::
        >>> atk = MultiAttack([PGD(model, eps=8/255), torchattacks.CW(model)])
        >>> adv_images = atk(images, labels)
    """

    supported_mode = ["default"]
    attack_mode = "default"
    targeted = False

    def __init__(self, attacks: Sequence[object], verbose: bool = False):
        attacks = list(attacks)
        if len(attacks) < 2:
            raise ValueError(f"MultiAttack needs two or more attacks, got {len(attacks)}")
        if len({id(getattr(attack, "model", None)) for attack in attacks}) != 1:
            raise ValueError("MultiAttack: every attack must reference the same model")
        self.attacks = attacks
        self.model = attacks[0].model
        self.device = model_device(self.model)
        self.verbose = bool(verbose)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The first fooling image of each example over the attacks, in order."""
        images, labels = images.detach().to(self.device), labels.detach().to(self.device)
        final, fails, left = images.clone(), torch.arange(len(images), device=self.device), []
        for attack in self.attacks:
            adv = attack(images[fails], labels[fails]).detach().to(self.device)
            wrong = self._predict_unit(self._unit(adv)) != labels[fails]
            final[fails[wrong]] = adv[wrong]
            fails = fails[~wrong]
            left.append(len(fails))
            if len(fails) == 0:
                break
        if self.verbose:
            rates = " | ".join(f"{100 * (1 - n / max(len(images), 1)):2.2f} %" for n in left)
            print(f"Attack success rate: {rates}")
        return final

    def _each(self, method: str, *args: object, **kwargs: object) -> None:
        for attack in self.attacks:
            getattr(attack, method)(*args, **kwargs)

    def set_normalization_used(self, mean, std) -> None:
        """Inputs are normalised: every attack (and the success check) maps them back."""
        self._set_normalization(mean, std)
        self._each("set_normalization_used", mean, std)

    def set_device(self, device: str | torch.device) -> None:
        """Run every attack on ``device``."""
        super().set_device(device)
        self._each("set_device", device)

    def set_model_training_mode(
        self,
        model_training: bool = False,
        batchnorm_training: bool = False,
        dropout_training: bool = False,
    ) -> None:
        """Every attack crafts with the model in this mode (see ``Attack``)."""
        self._each("set_model_training_mode", model_training, batchnorm_training, dropout_training)

    def set_mode_default(self) -> None:
        """Untargeted, the only mode of MultiAttack."""
        self._each("set_mode_default")

    def _targeted(self, *args: object, **kwargs: object) -> None:
        """Not supported (torchattacks' MultiAttack supports the default mode only)."""
        raise ConfigError("MultiAttack supports only the default (untargeted) mode")

    set_mode_targeted_by_label = set_mode_targeted_by_function = _targeted
    set_mode_targeted_random = set_mode_targeted_least_likely = _targeted

    @torch.no_grad()
    def get_logits(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The model's logits for ``inputs``."""
        return self.model(inputs.to(self.device))


__all__ = ["MultiAttack"]

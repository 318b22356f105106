"""Run any torchattacks attack under robustlab's guarantees, with torchattacks' own surface.

`TorchattacksAttack` builds the torchattacks class it adapts (``port``) from exactly the
arguments torchattacks takes, so ``build_attack("CW", model, c=1, steps=50)`` takes
torchattacks' options. Every method and attribute of the port (``set_mode_targeted_random``,
``get_logits``, ``supported_mode``, ``eps``, ...) is reached through the adapter; setting one
of the port's attributes (``atk.steps = 5``) sets it on the port. The adapter adds what robustlab
promises: the model's modes, BN statistics and parameter gradients are restored (some ports
call ``loss.backward()``), inputs move to the attack's device, ``run`` reports success and
cost like the native attacks, ``save`` writes torchattacks' file format, and
``set_normalization_used`` warns instead of normalising twice for a model that normalises
inside. ``attack``: the wrapped torchattacks instance (torchattacks' own ``attack`` attribute,
the name, is ``name`` here).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from robustlab import inputs as input_checks
from robustlab.attacks.base import AttackResult, is_success, perturbation_norm
from robustlab.attacks.compat import TorchattacksSurface
from robustlab.models.inference import model_context, model_device

L2_ATTACKS = {"cw", "pgdl2", "deepfool", "eaden", "pgdrsl2"}


class GradientCounter:
    """Counts examples forwarded with autograd recording, a proxy for gradient evaluations.

    Third-party attacks do not report their cost; every gradient they take needs such a forward
    pass, so the count is exact for one-gradient-per-forward attacks and an upper bound otherwise.
    """

    def __init__(self, model: nn.Module):
        self.count = 0
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple) -> None:
        if (
            inputs
            and torch.is_tensor(inputs[0])
            and torch.is_grad_enabled()
            and inputs[0].requires_grad
        ):
            self.count += len(inputs[0])

    def remove(self) -> None:
        self._handle.remove()


class TorchattacksAttack(TorchattacksSurface):
    """A torchattacks attack with robustlab's ``__call__``/``run``/``save`` contract.

    Subclasses set ``port`` (see `adapt`); ``TorchattacksAttack.around(instance)`` wraps
    an attack already built.
    """

    port: type | None = None

    def __init__(self, model: nn.Module, *args: object, **kwargs: object):
        if self.port is None:
            raise TypeError("TorchattacksAttack adapts one class: use adapt(torchattacks.X)")
        self._adopt(self.port(model, *args, **kwargs), model, self.port.__name__)

    @classmethod
    def around(cls, attack: object, name: str | None = None) -> TorchattacksAttack:
        """An adapter around the torchattacks instance ``attack``."""
        adapter = cls.__new__(cls)
        adapter._adopt(attack, attack.model, name or type(attack).__name__)
        return adapter

    def _adopt(self, attack: object, model: nn.Module, name: str) -> None:
        own = {"attack": attack, "model": model, "name": name, "device": model_device(model)}
        norm = str(getattr(attack, "norm", "")) or "Linf"
        own["norm"] = "L2" if norm.upper() == "L2" or name.lower() in L2_ATTACKS else "Linf"
        self.__dict__.update(own)
        if hasattr(attack, "set_device"):
            attack.set_device(self.device)

    def __getattr__(self, name: str) -> object:
        # only reached when the adapter itself lacks ``name``: the port's methods and options
        attack = self.__dict__.get("attack")
        if attack is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(attack, name)

    def __setattr__(self, name: str, value: object) -> None:
        attack = self.__dict__.get("attack")
        mine = name in self.__dict__ or hasattr(type(self), name)
        if attack is not None and not mine and name in vars(attack):
            setattr(attack, name, value)
        else:
            object.__setattr__(self, name, value)

    def set_device(self, device: str | torch.device) -> None:
        """Run the attack (and the port) on ``device``."""
        super().set_device(device)
        if hasattr(self.attack, "set_device"):
            self.attack.set_device(self.device)

    def set_normalization_used(self, mean, std) -> None:
        """torchattacks' normalisation (see `robustlab.attacks.normalization`)."""
        if not self._set_normalization(mean, std):
            self.attack.set_normalization_used(mean, std)

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial inputs, like the port's ``__call__``."""
        input_checks.check_images(self._unit(inputs))
        if labels is not None:
            input_checks.check_labels(labels, len(inputs))
            classes = input_checks.output_classes(self.model, self._model_input(self._unit(inputs)))
            input_checks.check_labels(labels, len(inputs), classes)
        inputs = inputs.detach().to(self.device)
        labels = labels.detach().to(self.device) if labels is not None else None
        mode = "train" if getattr(self.attack, "_model_training", False) else "eval"
        with model_context(self.model, mode):
            if self._model_normalises:  # the model normalises: the port gets [0, 1] images
                adv = self._normalised(self.attack(self._unit(inputs), labels))
            else:
                adv = self.attack(inputs, labels)
        return adv.detach()

    def run(self, images: torch.Tensor, labels: torch.Tensor) -> AttackResult:
        """Attack a batch; ``grad_evals`` counts examples forwarded with gradient tracking."""
        images, labels = images.detach().to(self.device), labels.detach().to(self.device)
        counter = GradientCounter(self.model)
        try:
            adv = self(images, labels)
        finally:
            counter.remove()
        unit, clean = self._unit(adv), self._unit(images)
        with torch.no_grad(), model_context(self.model, "eval") as model:
            success = is_success(model(self._model_input(unit)), labels, self.targeted)
        norms = perturbation_norm(unit - clean, self.norm)
        return AttackResult(adv, success, norms, counter.count)

    def __repr__(self) -> str:
        return repr(self.attack)


def adapt(port: type) -> type[TorchattacksAttack]:
    """The adapter class of the torchattacks class ``port``: same name, same signature."""
    doc = inspect.getdoc(port) or ""
    namespace = {
        "port": port,
        "__module__": __name__,
        "__qualname__": port.__name__,
        "__doc__": f"torchattacks.{port.__name__} through robustlab's adapter.\n\n{doc}",
        "__signature__": inspect.signature(port),
    }
    return type(port.__name__, (TorchattacksAttack,), namespace)


__all__ = ["L2_ATTACKS", "GradientCounter", "TorchattacksAttack", "adapt"]

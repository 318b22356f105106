"""``robustlab.torchattacks`` has torchattacks' public surface, compared programmatically with
the installed torchattacks: names, submodules, signatures and defaults, public methods and
attributes, the errors of unsupported modes and the training-mode handling."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys

import pytest
import torch
import torchattacks as reference
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import robustlab.attacks
import robustlab.torchattacks as torchattacks
from robustlab.errors import InputError
from tests.torchattacks_fixtures import cifar_shaped, cifar_shaped_model


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return cifar_shaped_model()


def build(library, name: str, model: nn.Module):
    """An instance built as a script would, with the few arguments a wrapper needs."""
    if name == "MultiAttack":
        return library.MultiAttack([library.FGSM(model), library.PGD(model, steps=1)])
    if name == "LGV":
        images, labels = cifar_shaped(8, seed=2)
        return library.LGV(model, DataLoader(TensorDataset(images, labels)), verbose=False)
    return getattr(library, name)(model)


def test_the_namespace_is_torchattacks():
    assert torchattacks.__all__ == reference.__all__ and len(torchattacks.__all__) == 39
    assert torchattacks.__wrapper__ == reference.__wrapper__
    assert torchattacks.__version__ == reference.__version__
    public = {name for name in vars(torchattacks) if not name.startswith("_")}
    assert public - set(torchattacks.__all__) <= {"attack", "attacks", "wrappers"} | {
        "adapted",
        "guard",
        "native",
    }


@pytest.mark.parametrize("name", reference.__all__)
def test_each_submodule_is_importable_under_the_same_path(name):
    path = getattr(reference, name).__module__.removeprefix("torchattacks.")
    module = importlib.import_module(f"robustlab.torchattacks.{path}")
    assert getattr(module, name) is getattr(torchattacks, name)


@pytest.mark.parametrize("name", reference.__all__)
def test_signature_and_defaults_are_torchattacks(name):
    """Names, order, kinds and defaults (robustlab's native classes add type hints)."""

    def parameters(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]

    assert parameters(getattr(torchattacks, name)) == parameters(getattr(reference, name))


def _surface(attack) -> tuple[set[str], dict[str, object]]:
    methods = {n for n in dir(attack) if not n.startswith("_") and callable(getattr(attack, n))}
    values = {
        key: value
        for key, value in vars(attack).items()
        if not key.startswith("_") and not isinstance(value, nn.Module | list | DataLoader)
    }
    return methods, values


@pytest.mark.parametrize("name", reference.__all__)
def test_public_methods_and_attributes_are_torchattacks(name, model):
    torch.manual_seed(0)
    ours, theirs = build(torchattacks, name, model), build(reference, name, model)
    assert isinstance(ours, torchattacks.attack.Attack) and isinstance(
        ours, reference.attack.Attack
    )
    our_methods, our_values = _surface(ours)
    their_methods, their_values = _surface(theirs)
    assert our_methods == their_methods
    assert our_values.keys() == their_values.keys()
    for key, value in their_values.items():
        if not callable(value) and not torch.is_tensor(value):
            assert our_values[key] == value, key
    assert sorted(vars(ours)) == sorted(vars(theirs))
    assert ours.supported_mode == theirs.supported_mode
    assert ours.model_name == theirs.model_name

    def shown(attack) -> str:  # repr without the addresses of the objects it shows
        return re.sub(r" at 0x[0-9a-f]+", "", repr(attack))

    assert shown(ours) == shown(theirs)


def test_every_base_class_member_is_there():
    assert issubclass(torchattacks.attack.Attack, reference.attack.Attack)
    assert not hasattr(reference, "Attack") and not hasattr(torchattacks, "Attack")
    members = {n for n in dir(reference.attack.Attack) if not n.startswith("__")}
    assert members <= set(dir(torchattacks.attack.Attack))
    for name in ("get_mode", "get_target_label", "normalize", "inverse_normalize", "to_type"):
        assert callable(getattr(torchattacks.attack.Attack, name))


@pytest.mark.parametrize("name", ["APGD", "APGDT", "MultiAttack", "DeepFool"])
def test_unsupported_targeted_mode_raises_as_in_torchattacks(name, model):
    ours, theirs = build(torchattacks, name, model), build(reference, name, model)
    for attack in (ours, theirs):
        with pytest.raises(ValueError, match="Targeted mode is not supported"):
            attack.set_mode_targeted_random(quiet=True)


class Probe(nn.Module):
    """The stand-in with BatchNorm and Dropout, recording their modes at each forward that
    takes a gradient (robustlab's input check adds one no-grad forward in eval mode)."""

    def __init__(self):
        super().__init__()
        self.net = cifar_shaped_model()
        self.drop = nn.Dropout(0.0)
        self.seen: list[tuple[bool, bool, bool]] = []

    def forward(self, x):
        if torch.is_grad_enabled():
            self.seen.append((self.training, self.net[1].training, self.drop.training))
        return self.drop(self.net(x))


@pytest.mark.parametrize("flags", [(True, False, False), (True, True, True), (False, True, True)])
@pytest.mark.parametrize("name", ["PGD", "BIM"])  # native, adapted
def test_training_mode_during_the_attack_is_torchattacks(name, flags):
    images, labels = cifar_shaped(4, seed=3)
    seen = {}
    for library in (torchattacks, reference):
        probe = Probe().eval()
        atk = getattr(library, name)(probe, steps=2)
        atk.set_model_training_mode(*flags)
        atk(images, labels)
        seen[library] = set(probe.seen)
        # robustlab gives the model back as it came; torchattacks leaves it in train mode
        assert probe.training is (library is reference and flags[0])
    assert seen[torchattacks] == seen[reference]
    assert seen[torchattacks] == {(flags[0], flags[0] and flags[1], flags[0] and flags[2])}


def test_the_model_comes_back_as_it_came(model):
    """torchattacks' CW steps its optimizer after ``cost.backward()``, which fills the
    parameters' gradients; train-mode BatchNorm would move its running statistics."""
    images, labels = cifar_shaped(4, seed=3)
    running = model[1].running_mean.clone()
    atk = torchattacks.CW(model, steps=2)
    atk.set_model_training_mode(model_training=True, batchnorm_training=True)
    atk(images, labels)
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert torch.equal(model[1].running_mean, running)


@pytest.mark.parametrize("name", ["PGD", "CW"])
def test_inputs_outside_the_contract_are_one_input_error(name, model):
    images, labels = cifar_shaped(4, seed=3)
    atk = getattr(torchattacks, name)(model)
    with pytest.raises(InputError, match=r"\[0, 1\]") as info:
        atk(images * 255, labels)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"labels must lie in \[0, 10\)") as info:
        atk(images, labels + 10)
    assert "\n" not in str(info.value)
    atk.set_normalization_used(mean=[0.5] * 3, std=[0.25] * 3)
    assert atk((images - 0.5) / 0.25, labels).min() < 0  # normalized inputs are in contract


def test_robustlab_attacks_keeps_its_own_api_only():
    """The torchattacks names live in the drop-in; robustlab.attacks exports robustlab's
    attacks (some named as torchattacks names them) and its catalogue."""
    names = set(robustlab.attacks.__all__)
    assert {"build_attack", "list_attacks", "register_attack"} <= names
    assert "create_attack" not in names
    assert names & set(reference.__all__) == {
        "FGSM",
        "PGD",
        "PGDL2",
        "APGD",
        "APGDT",
        "Square",
        "MultiAttack",
    }
    assert not any(hasattr(robustlab.attacks, n) for n in ("CW", "DeepFool", "AutoAttack"))


def test_importing_the_drop_in_imports_no_app_or_tracking_stack():
    code = (
        "import sys, robustlab.torchattacks; "
        "print(sorted({'hydra', 'omegaconf', 'wandb', 'optuna', 'pandas', 'torchvision'} "
        "& set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

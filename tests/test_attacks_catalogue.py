"""The attack catalogue: names, options, torchattacks interchangeability, import hygiene."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
import torchattacks
from torch import nn

import robustlab.attacks
from robustlab.attacks import (
    FGSM,
    PGD,
    attack_norm,
    attack_options,
    build_attack,
    catalogue,
    list_attacks,
    register_attack,
    takes_eps,
)
from robustlab.errors import ConfigError
from robustlab.registry import Registry
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)


def test_unknown_name_lists_valid_names(model):  # noqa: F811
    with pytest.raises(ConfigError) as info:
        build_attack("fgsn", model)
    message = str(info.value)
    assert "\n" not in message and "fgsn" in message
    for name in ("fgsm", "pgd", "pgd_l2", "CW", "DeepFool", "AutoAttack", "Square"):
        assert name in message


def test_unknown_option_is_a_config_error(model):  # noqa: F811
    with pytest.raises(ConfigError, match="stepz"):
        build_attack("pgd", model, stepz=3)
    with pytest.raises(ConfigError, match="kappa"):
        build_attack("MIFGSM", model, kappa=1.0)


def test_names_are_case_insensitive(model):  # noqa: F811
    assert isinstance(build_attack("FGSM", model), FGSM)
    assert isinstance(build_attack("Pgd", model, steps=3), PGD)
    l2 = build_attack("PGD_L2", model)
    assert isinstance(l2, PGD) and l2.norm == "L2" and l2.eps == 1.0
    assert build_attack("deepfool", model).attack.__class__ is torchattacks.DeepFool
    names = list_attacks()
    assert names[:3] == ["fgsm", "pgd", "pgd_l2"] and "APGDT" in names
    assert len({n.lower() for n in names}) == len(names)


def test_takes_eps():
    assert takes_eps("pgd") and takes_eps("FGSM") and takes_eps("Square") and takes_eps("APGD")
    assert not takes_eps("CW") and not takes_eps("deepfool")


def test_wrapped_attack_equals_torchattacks(model, digits):  # noqa: F811
    images, labels = digits
    ours = build_attack("MIFGSM", model, eps=0.1, alpha=0.02, steps=4)(images, labels)
    theirs = torchattacks.MIFGSM(model, eps=0.1, alpha=0.02, steps=4)(images, labels)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    result = build_attack("MIFGSM", model, eps=0.1, alpha=0.02, steps=4).run(images, labels)
    with torch.no_grad():
        assert torch.equal(result.success, model(result.adv_images).argmax(1) != labels)
    assert result.grad_evals == 4 * len(images)
    assert (result.perturbation_norm <= 0.1 + 1e-6).all()


def test_wrapped_targeted_attack(model, digits):  # noqa: F811
    images, labels = digits
    targets = (labels + 3) % 10
    result = build_attack("BIM", model, eps=0.3, alpha=0.03, steps=20, targeted=True).run(
        images, targets
    )
    with torch.no_grad():
        reached = model(result.adv_images).argmax(1) == targets
    assert torch.equal(result.success, reached) and reached.float().mean() > 0.8


def test_import_pulls_no_heavy_frameworks():
    code = (
        "import sys, robustlab.attacks; "
        "bad = [m for m in ('hydra', 'omegaconf', 'wandb', 'torchvision') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.fixture
def own_catalogue(monkeypatch):
    """A copy of the catalogue, so that attacks registered by a test do not outlive it."""
    copy = Registry("attack")
    for name in catalogue.ATTACKS.names():
        copy.register(name)(catalogue.ATTACKS.get(name))
    monkeypatch.setattr(catalogue, "ATTACKS", copy)
    return copy


def test_a_registered_attack_is_created_listed_and_checked(model, digits, own_catalogue):  # noqa: F811
    images, labels = digits[0][:8], digits[1][:8]

    def uniform_noise(model: nn.Module, eps: float = 0.1, seed: int = 0):
        def attack(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
            return (images + eps * (2 * noise - 1)).clamp(0, 1)

        return attack

    assert register_attack("UniformNoise")(uniform_noise) is uniform_noise
    assert list_attacks()[-1] == "UniformNoise" and takes_eps("uniformnoise")
    assert attack_options("UNIFORMNOISE") == {"eps": 0.1, "seed": 0}
    adv = build_attack("uniformnoise", model, eps=0.05)(images, labels)
    assert 0 < (adv - images).abs().max() <= 0.05 + 1e-6
    with pytest.raises(ConfigError, match="steps"):
        build_attack("UniformNoise", model, steps=3)
    with pytest.raises(ValueError, match="already registered"):
        register_attack("FGSM")(uniform_noise)


def test_variants_fix_their_options_and_torchattacks_names_take_the_prefix(model):  # noqa: F811
    pgd, l2 = attack_options("pgd"), attack_options("pgd_l2")
    assert "norm" not in l2 and (l2["eps"], l2["alpha"]) == (1.0, 0.2) and pgd["norm"] == "Linf"
    assert set(pgd) - set(l2) == {"norm"}
    apgd_t = attack_options("apgd_t")
    assert "targeted" not in apgd_t and apgd_t["loss"] == "dlr"
    assert build_attack("apgd_t", model, steps=2).target_classes == 9  # APGD-T: 9 targets
    assert attack_options("CW") == {"c": 1, "kappa": 0, "steps": 50, "lr": 0.01, "targeted": False}
    cw = build_attack("torchattacks.CW", model, steps=2)
    assert cw.attack.__class__ is torchattacks.CW and cw.name == "CW"
    ported = build_attack("torchattacks.pgd", model, steps=2)
    assert ported.attack.__class__ is torchattacks.PGD and ported.name == "torchattacks.PGD"
    assert (
        attack_norm("PGDL2") == attack_norm("pgd_l2") == "L2" == attack_norm("pgd", {"norm": "L2"})
    )


def test_torchattacks_names_give_robustlab_classes(model, digits):  # noqa: F811
    """A name of torchattacks.__all__ gives robustlab's native class of that name (PGDL2,
    APGDT, MultiAttack) or the adapter; the port of a native one keeps its torchattacks.<Name>
    prefix."""
    assert type(build_attack("PGDL2", model, steps=2)) is robustlab.attacks.PGDL2
    assert type(build_attack("APGDT", model, steps=2)) is robustlab.attacks.APGDT
    assert build_attack("torchattacks.PGDL2", model).attack.__class__ is torchattacks.PGDL2
    assert build_attack("torchattacks.APGDT", model).attack.__class__ is torchattacks.APGDT
    cw = build_attack("CW", model, steps=2)
    assert isinstance(cw, catalogue.ported.CW) and cw.supported_mode == ["default", "targeted"]
    parts = [build_attack("fgsm", model, eps=0.05), build_attack("BIM", model, eps=0.05)]
    multi = build_attack("MultiAttack", model, attacks=parts)
    assert isinstance(multi, robustlab.attacks.MultiAttack) and multi.attacks == parts
    assert attack_options("MultiAttack") == {"attacks": inspect.Parameter.empty, "verbose": False}
    for name in torchattacks.__all__:
        assert name in list_attacks() or name.lower() in list_attacks()

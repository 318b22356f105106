"""The attack catalogue: names, options, torchattacks interchangeability, import hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchattacks

from robustlab.attacks import FGSM, PGD, build_attack, list_attacks, takes_eps
from robustlab.errors import ConfigError
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

"""torchattacks compatibility: a torchattacks script runs with only its import changed."""

from __future__ import annotations

import pytest
import torch
import torchattacks

import robustlab.attacks
import robustlab.evaluation
import robustlab.torchattacks
from robustlab.attacks import FGSM, PGD, load_adversarial
from robustlab.errors import InputError
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)


def torchattacks_script(library, net, images, labels, path):
    """A typical torchattacks user script; ``library`` is the imported module."""
    atk = library.PGD(net, eps=0.3, alpha=0.03, steps=20, random_start=True)
    atk.set_model_training_mode(model_training=False, batchnorm_training=False)
    atk.set_mode_targeted_by_label(quiet=True)
    target = (labels + 1) % 10
    by_label = atk(images, target)
    atk.set_mode_targeted_least_likely(kth_min=1)
    least_likely = atk(images, labels)
    atk.set_mode_targeted_by_function(target_map_function=lambda im, lab: (lab + 2) % 10)
    by_function = atk(images, labels)
    atk.set_mode_targeted_random()
    random_target = atk(images, labels)
    atk.set_mode_default()
    untargeted = atk(images, labels)
    logits = atk.get_logits(images)
    loader = [(images[:32], labels[:32]), (images[32:], labels[32:])]
    robust, _, _ = atk.save(loader, save_path=path, verbose=False, return_verbose=True)
    return {
        "by_label": (by_label, target),
        "least_likely": least_likely,
        "by_function": (by_function, (labels + 2) % 10),
        "random": random_target,
        "untargeted": untargeted,
        "logits": logits,
        "robust": robust,
    }


def test_script_runs_with_only_the_import_changed(model, digits, tmp_path):  # noqa: F811
    """The drop-in gives torchattacks' results under the same seed, file included."""
    images, labels = digits[0][:64], digits[1][:64]
    torch.manual_seed(0)
    ours = torchattacks_script(robustlab.torchattacks, model, images, labels, tmp_path / "ours")
    torch.manual_seed(0)
    theirs = torchattacks_script(torchattacks, model, images, labels, tmp_path / "theirs.pt")
    with torch.no_grad():
        predict = lambda x: model(x).argmax(1)  # noqa: E731
        for key in ("by_label", "by_function"):
            adv, target = ours[key]
            assert (predict(adv) == target).float().mean() > 0.8
            torch.testing.assert_close(adv, theirs[key][0], rtol=0, atol=1e-6)
        for key in ("least_likely", "random", "untargeted", "logits"):
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=1e-6)
        assert (predict(ours["untargeted"]) != labels).float().mean() > 0.9
    assert ours["robust"] == theirs["robust"]
    saved = load_adversarial(tmp_path / "ours")
    assert saved["adv_inputs"].shape == images.shape and torch.equal(saved["labels"], labels)
    # torchattacks' own format: a torch.save dict that loads without unpickling code
    raw = torch.load(tmp_path / "ours", weights_only=True)
    reference = torch.load(tmp_path / "theirs.pt", weights_only=True)
    assert raw.keys() == reference.keys() and raw["save_type"] == "float"
    torch.testing.assert_close(raw["adv_inputs"], reference["adv_inputs"], rtol=0, atol=1e-6)


def test_robustlab_pgd_keeps_the_script_surface(model, digits, tmp_path):  # noqa: F811
    """robustlab.attacks.PGD takes the same calls, with robustlab's defaults (early stop)."""
    images, labels = digits[0][:64], digits[1][:64]
    ours = torchattacks_script(robustlab.attacks, model, images, labels, tmp_path / "ours")
    with torch.no_grad():
        predict = lambda x: model(x).argmax(1)  # noqa: E731
        adv, target = ours["by_label"]
        assert (predict(adv) == target).float().mean() > 0.8
        assert (predict(ours["untargeted"]) != labels).float().mean() > 0.9
    assert torch.equal(ours["logits"], model(images).detach())


def test_a_safetensors_path_gets_safetensors(model, digits, tmp_path):  # noqa: F811
    images, labels = digits[0][:16], digits[1][:16]
    path = tmp_path / "adv.safetensors"
    FGSM(model, eps=0.1).save([(images, labels)], path, verbose=False, save_clean_inputs=True)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    saved = load_adversarial(path)
    assert torch.equal(saved["clean_inputs"], images)
    assert torch.equal(saved["adv_inputs"], FGSM(model, eps=0.1)(images, labels))


def test_least_likely_targets_match_torchattacks(model, digits):  # noqa: F811
    images, labels = digits[0][:32], digits[1][:32]
    ours, theirs = PGD(model), torchattacks.PGD(model)
    for kth in (1, 3):
        ours.set_mode_targeted_least_likely(kth_min=kth)
        theirs.set_mode_targeted_least_likely(kth_min=kth, quiet=True)
        expected = theirs.get_least_likely_label(images, labels)
        assert torch.equal(ours.least_likely_label(images, labels), expected)
    targets = ours.random_target_label(images, labels)
    assert (targets != labels).all() and targets.max() < 10


def test_save_as_uint8(model, digits, tmp_path):  # noqa: F811
    images, labels = digits[0][:16], digits[1][:16]
    FGSM(model, eps=0.1).save([(images, labels)], tmp_path / "adv", verbose=False, save_type="int")
    saved = load_adversarial(tmp_path / "adv")
    expected = FGSM(model, eps=0.1)(images, labels)
    assert (saved["adv_inputs"] - expected).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize(
    "bad", [lambda x: x * 255, lambda x: (x * 255).to(torch.uint8), lambda x: x - 0.5]
)
def test_inputs_outside_the_contract_are_one_value_error(model, digits, bad):  # noqa: F811
    images, labels = digits[0][:8], digits[1][:8]
    for attack in (FGSM(model), PGD(model, steps=2), robustlab.attacks.APGD(model, steps=2)):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            attack(bad(images), labels)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robustlab.evaluation.worst_case(model, bad(images), labels, [0.1], suite="fast")


@pytest.mark.parametrize(
    "build",
    [
        lambda m: FGSM(m),
        lambda m: PGD(m, steps=2),
        lambda m: robustlab.attacks.APGD(m, steps=2),
        lambda m: robustlab.attacks.Square(m, n_queries=2),
        lambda m: robustlab.attacks.build_attack("CW", m, steps=2),  # the adapter
    ],
    ids=["FGSM", "PGD", "APGD", "Square", "CW"],
)
def test_labels_outside_the_model_classes_are_one_input_error(model, digits, build):  # noqa: F811
    images, labels = digits[0][:8], digits[1][:8].clone()
    labels[3] = 10
    with pytest.raises(InputError, match=r"labels must lie in \[0, 10\)") as info:
        build(model)(images, labels)
    assert "\n" not in str(info.value) and "row 3" in str(info.value)


@pytest.mark.parametrize("name", ["FGSM", "PGD", "APGD", "Square"])
def test_a_linf_eps_in_255_units_is_one_input_error(model, name):  # noqa: F811
    cls = getattr(robustlab.attacks, name)
    with pytest.raises(InputError, match="write 8/255, not 8") as info:
        cls(model, eps=8)
    assert "\n" not in str(info.value)
    if name != "FGSM":  # an L2 radius of 8 is a radius
        assert cls(model, eps=8, norm="L2").eps == 8
    # torchattacks takes any eps, and so does the drop-in
    assert getattr(robustlab.torchattacks, name)(model, eps=8).eps == 8

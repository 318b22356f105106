"""``save``/``load`` in torchattacks' file format, both directions, read with ``torch.load``."""

from __future__ import annotations

import pytest
import torch
import torchattacks

import robustlab.attacks
import robustlab.torchattacks
from robustlab.attacks import build_attack, load_adversarial
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)

EPS = 0.1
OPTIONS = {"save_predictions": True, "save_clean_inputs": True}


def batches(digits, n=24, size=8):  # noqa: F811
    images, labels = digits[0][:n], digits[1][:n]
    return [(images[i : i + size], labels[i : i + size]) for i in range(0, n, size)]


def unpack(loader) -> list[torch.Tensor]:
    return [torch.cat(column) for column in zip(*loader, strict=True)]


@pytest.mark.parametrize("save_type", ["float", "int"])
def test_robustlab_file_is_torchattacks_file(model, digits, tmp_path, save_type):  # noqa: F811
    """FGSM is deterministic: robustlab's and torchattacks' files hold the same tensors, and
    each library reads the other's."""
    loader = batches(digits)
    ours, theirs = tmp_path / "ours.pt", tmp_path / "theirs.pt"
    figures = robustlab.attacks.FGSM(model, eps=EPS).save(
        loader, ours, verbose=False, return_verbose=True, save_type=save_type, **OPTIONS
    )
    expected = torchattacks.FGSM(model, eps=EPS).save(
        loader, str(theirs), verbose=False, return_verbose=True, save_type=save_type, **OPTIONS
    )
    assert figures[0] == pytest.approx(expected[0]) and figures[1] == pytest.approx(expected[1])
    mine, reference = (torch.load(path, weights_only=True) for path in (ours, theirs))
    assert mine.keys() == reference.keys() and mine["save_type"] == save_type
    for key in ("adv_inputs", "labels", "preds", "clean_inputs"):
        assert mine[key].dtype == reference[key].dtype
        # torchattacks truncates x 255 to uint8, robustlab rounds: at most one level apart
        level = 1 if save_type == "int" and key.endswith("inputs") else 0
        assert (mine[key].float() - reference[key].float()).abs().max() <= level
    read_by_them = unpack(torchattacks.FGSM.load(str(ours), 8, False, None, True, True))
    read_by_us = unpack(robustlab.attacks.Attack.load(theirs, 8, False, None, True, True))
    for ours_col, theirs_col in zip(read_by_them, read_by_us, strict=True):
        assert (ours_col.float() - theirs_col.float()).abs().max() <= 1 / 255 + 1e-6


def test_torchattacks_file_read_by_load_adversarial(model, digits, tmp_path):  # noqa: F811
    path = tmp_path / "pgd.pt"
    torchattacks.PGD(model, eps=EPS, alpha=0.02, steps=3).save(
        batches(digits), str(path), verbose=False, return_verbose=True, **OPTIONS
    )  # torchattacks computes preds only when it reports figures
    raw = torch.load(path, weights_only=True)
    saved = load_adversarial(path)
    assert set(saved) == {"adv_inputs", "labels", "preds", "clean_inputs"}
    for key, value in saved.items():
        assert torch.equal(value, raw[key])
    assert (saved["adv_inputs"] - saved["clean_inputs"]).abs().max() <= EPS + 1e-6


def test_adapted_attacks_and_multiattack_save_the_same_format(model, digits, tmp_path):  # noqa: F811
    loader = batches(digits)
    mixed = robustlab.attacks.MultiAttack(
        [robustlab.attacks.FGSM(model, eps=EPS), torchattacks.FGSM(model, eps=2 * EPS)]
    )
    by_name = build_attack("MIFGSM", model, eps=EPS, steps=3)  # robustlab's adapter
    drop_in = robustlab.torchattacks.MIFGSM(model, eps=EPS, steps=3)
    for attack in (by_name, drop_in, mixed):
        attack.save(loader, tmp_path / "adv.pt", verbose=False)
        raw = torch.load(tmp_path / "adv.pt", weights_only=True)
        assert raw["adv_inputs"].shape == (24, 1, 8, 8) and torch.equal(
            raw["labels"], digits[1][:24]
        )


def test_verbose_prints_torchattacks_progress(model, digits, capsys):  # noqa: F811
    robustlab.attacks.FGSM(model, eps=EPS).save(batches(digits), verbose=True)
    printed = capsys.readouterr().out
    assert "- Save progress: 33.33 % / Robust accuracy:" in printed
    assert "- Save progress: 100.00 %" in printed and printed.endswith("\n")
    robustlab.attacks.FGSM(model, eps=EPS).save(batches(digits), verbose=False)
    assert capsys.readouterr().out == ""


def test_load_names_what_a_file_lacks(model, digits, tmp_path):  # noqa: F811
    robustlab.attacks.FGSM(model).save(batches(digits), tmp_path / "a.pt", verbose=False)
    with pytest.raises(robustlab.errors.ConfigError, match="preds"):
        robustlab.attacks.FGSM.load(tmp_path / "a.pt", load_predictions=True)

"""SE channel attention under attack, and the explain_robustness report end to end."""

from __future__ import annotations

import json

import numpy as np
import torch

from robustlab.attacks import PGD
from robustlab.explain import (
    explain_robustness,
    plot_explanations,
    plot_se_attention,
    record_excitations,
    se_attention_shift,
    se_blocks,
)
from robustlab.explain.se_attention import channel_correlation
from robustlab.fileio import json_safe
from robustlab.models import SqueezeExcite, create_model
from tests.attack_fixtures import digits_split

PNG = b"\x89PNG\r\n\x1a\n"


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=10, in_channels=1, width=0.5).eval()


def test_excitations_are_what_each_se_block_multiplies_by():
    model = _model("se_resnet20")
    images = digits_split()[2][:12]
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [
        block.register_forward_hook(lambda m, i, o, key=name: seen.__setitem__(key, (i[0], o)))
        for name, block in se_blocks(model).items()
    ]
    records = record_excitations(model, images, batch_size=12)
    for handle in handles:
        handle.remove()
    assert len(records) == 9 == sum(isinstance(m, SqueezeExcite) for m in model.modules())
    for name, s in records.items():
        block_in, block_out = seen[name]
        assert s.shape == (12, block_in.shape[1]) and ((s > 0) & (s < 1)).all()
        assert torch.equal(block_out, block_in * s[:, :, None, None])


def test_no_excitations_for_a_model_without_se():
    model = _model("resnet20")
    images = digits_split()[2][:4]
    assert record_excitations(model, images) == {}
    assert (
        se_attention_shift(model, images, images, torch.zeros(4, dtype=torch.long), num_classes=10)
        is None
    )


def test_unchanged_inputs_do_not_move_attention():
    model = _model("se_resnet20")
    images, labels = digits_split()[2][:20], digits_split()[3][:20]
    shift = se_attention_shift(model, images, images.clone(), labels, num_classes=10)
    assert all(b.mean_abs_delta == 0 and abs(b.cosine - 1) < 1e-6 for b in shift.blocks)
    assert set(shift.stages()) == {"0", "1", "2"}


def test_channel_correlation_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(30, 5, generator=gen)
    labels = torch.arange(30) % 2
    corr = channel_correlation(s, labels, num_classes=3)
    expected = torch.from_numpy(np.corrcoef(s[labels == 1].T.numpy())).float()
    assert torch.allclose(corr[1], expected, atol=1e-5)
    assert torch.isnan(corr[2]).all()  # no example of class 2


def test_explain_robustness_report_figures_and_determinism(tmp_path):
    model = _model("se_resnet20")
    images, labels = digits_split()[2][:24], digits_split()[3][:24]
    labels = model(images).argmax(1)  # an untrained model: explain what it predicts
    adversarial = PGD(model, eps=0.1, alpha=0.02, steps=5)(images, labels)
    state = torch.get_rng_state()
    report = explain_robustness(model, images, adversarial, labels, max_examples=8, n_display=2)
    assert torch.equal(state, torch.get_rng_state())
    again = explain_robustness(model, images, adversarial, labels, max_examples=8, n_display=2)
    body = json.loads(json.dumps(json_safe(report.to_results()), allow_nan=False))["explanations"]
    repeat = json.loads(json.dumps(json_safe(again.to_results())))["explanations"]
    assert body.pop("seconds") > 0 and repeat.pop("seconds") > 0
    assert body == repeat  # seeded: SmoothGrad noise, tie-breaking, randomised model
    assert body["n_examples"] == 8 and set(body["fragility"]) == set(body["methods"])
    assert set(body["faithfulness"]) == set(body["methods"]) | {"random"}
    assert set(body["sanity"]) == set(body["methods"]) and "ig_completeness_error" in body
    assert set(body["se_attention"]["stages"]) == {"0", "1", "2"}
    assert plot_explanations(report.display, tmp_path / "maps.png").read_bytes()[:8] == PNG
    assert plot_se_attention(report.se_attention, tmp_path / "se.png").read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.png", "se.png"]


def test_resnet_report_has_no_se_section(tmp_path):
    model = _model("resnet20")
    images = digits_split()[2][:6]
    labels = model(images).argmax(1)
    report = explain_robustness(
        model, images, images.clone(), labels, methods=["saliency", "cam"], sanity=False
    )
    body = report.to_results()["explanations"]
    assert "se_attention" not in body and body["sanity"] == {}
    assert body["fragility"]["saliency"]["topk_intersection"] == 1.0
    assert plot_se_attention(report.se_attention, tmp_path / "se.png") is None

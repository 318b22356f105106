"""Dead SE bottlenecks: blocks whose excitation does not depend on the input are named."""

from __future__ import annotations

import torch

from robustlab.attacks import PGD
from robustlab.explain import se_attention_shift
from robustlab.explain.se_attention import dead_se_blocks, record_hidden_activity
from robustlab.models import create_model
from tests.attack_fixtures import digits_split

KILLED = "stages.0.2.se"


def _model_with_a_dead_block() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=10, in_channels=1, se_reduction=4).eval()
    block = dict(model.named_modules())[KILLED]
    with torch.no_grad():
        block.fc1.weight.zero_()
        block.fc1.bias.fill_(-1.0)  # every hidden unit negative for every input
    return model


def test_a_block_with_every_hidden_unit_negative_is_dead_and_the_others_are_not():
    model = _model_with_a_dead_block()
    images = digits_split()[2][:24]
    assert dead_se_blocks(model, images) == [KILLED]
    activity = record_hidden_activity(model, images)
    assert not activity[KILLED].any()
    assert all(bool(active.any()) for name, active in activity.items() if name != KILLED)


def test_the_shift_report_names_the_dead_block_instead_of_a_bare_zero():
    model = _model_with_a_dead_block()
    images, labels = digits_split()[2][:24], digits_split()[3][:24]
    adversarial = PGD(model, eps=0.1, alpha=0.025, steps=5)(images, labels)
    shift = se_attention_shift(model, images, adversarial, labels, num_classes=10)
    blocks = {b.name: b for b in shift.blocks}
    assert blocks[KILLED].dead and blocks[KILLED].mean_abs_delta == 0.0
    assert not any(b.dead for name, b in blocks.items() if name != KILLED)
    results = shift.to_results()
    assert results["dead_blocks"] == [KILLED] and results["blocks"][KILLED]["dead"] is True
    (warning,) = shift.warnings()
    assert KILLED in warning and "dead" in warning


def test_a_constant_input_set_makes_every_block_look_dead_by_zero_variance():
    # zero variance over the evaluated inputs is the other half of the definition
    model = _model_with_a_dead_block()
    same = digits_split()[2][:1].repeat(5, 1, 1, 1)
    assert len(dead_se_blocks(model, same)) == 9

"""MgNet: shapes, gradients, SE placement, the documented parameter formula, shared A."""

from __future__ import annotations

import pytest
import torch

from robustlab.errors import ConfigError
from robustlab.fileio import write_tensors_atomic
from robustlab.models import MgNet, SqueezeExcite, create_model, list_models, model_param_count
from robustlab.training.state_io import load_tensors

NAMES = ("mgnet", "se_mgnet")


def _formula(widths, iterations, in_channels, classes, se_r=None) -> int:
    """The parameter count documented in robustlab/models/mgnet.py, term by term."""
    total = 9 * in_channels * widths[0] + 2 * widths[0]
    for level, (c, nu) in enumerate(zip(widths, iterations, strict=True)):
        total += 9 * c * c + nu * (9 * c * c + 4 * c)
        if level > 0:
            total += 18 * widths[level - 1] * c
        if se_r is not None:
            h = max(1, c // se_r)
            total += nu * (2 * c * h + h + c)
    return total + classes * (widths[-1] + 1)


def _count_se(model) -> int:
    return sum(isinstance(m, SqueezeExcite) for m in model.modules())


def test_registered():
    assert set(NAMES) <= set(list_models())


@pytest.mark.parametrize(
    "name,options",
    [("mgnet", {}), ("se_mgnet", {}), ("mgnet", {"widths": (8, 16), "iterations": (1, 3)})],
)  # fmt: skip
@pytest.mark.parametrize("in_channels,size", [(1, 8), (3, 32)])
def test_forward_backward_every_parameter_gets_finite_grad(name, options, in_channels, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=in_channels, **options).train()
    logits = model(torch.rand(2, in_channels, size, size))
    assert logits.shape == (2, 7)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
        # An SE gate of 16 channels has one hidden ReLU unit, which can be off for a whole
        # small batch; every other parameter must receive signal.
        assert ".se." in pname or param.grad.abs().sum() > 0, pname


def test_se_present_only_when_asked():
    assert _count_se(create_model("mgnet", 10, 1)) == 0
    assert _count_se(create_model("se_mgnet", 10, 1)) == 6  # one per smoothing iteration
    assert _count_se(create_model("mgnet", 10, 1, se_reduction=8)) == 6
    assert _count_se(create_model("se_mgnet", 10, 1, se_reduction=None)) == 0
    model = create_model("se_mgnet", 10, 1, iterations=(1, 2, 3), se_reduction=4)
    assert {m.reduction for m in model.modules() if isinstance(m, SqueezeExcite)} == {4}
    assert _count_se(model) == 6


@pytest.mark.parametrize("in_channels,classes", [(1, 10), (3, 7)])
def test_param_count_one_iteration_shared_a_matches_formula(in_channels, classes):
    model = create_model("mgnet", classes, in_channels, iterations=(1, 1, 1))
    assert model_param_count(model) == _formula((16, 32, 64), (1, 1, 1), in_channels, classes)
    # The same count written out for these widths: 18 c^2 + 4 c per level, 18 c c' per restriction.
    closed = 9 * in_channels * 16 + 32 + sum(18 * c * c + 4 * c for c in (16, 32, 64))
    assert model_param_count(model) == closed + 18 * (16 * 32 + 32 * 64) + classes * 65


@pytest.mark.parametrize(
    "name,options,se_r",
    [("mgnet", {}, None), ("se_mgnet", {}, 16), ("mgnet", {"iterations": (2, 3, 1)}, None),
     ("se_mgnet", {"widths": (8, 24), "iterations": (3, 2), "se_reduction": 4}, 4)],
)  # fmt: skip
def test_param_count_matches_formula_for_every_option(name, options, se_r):
    model = create_model(name, 10, 1, **options)
    widths = options.get("widths", (16, 32, 64))
    iterations = options.get("iterations", (2, 2, 2))
    assert model_param_count(model) == _formula(widths, iterations, 1, 10, se_r)


def test_smaller_than_resnet20():
    for mg, rn in (("mgnet", "resnet20"), ("se_mgnet", "se_resnet20")):
        ratio = model_param_count(create_model(mg, 10, 1)) / model_param_count(
            create_model(rn, 10, 1)
        )
        assert 0.6 < ratio < 0.8


def test_a_is_one_module_per_level_and_used_by_every_iteration():
    model = create_model("mgnet", 10, 1)
    calls = []
    for level in model.stages:
        level.operator.register_forward_hook(lambda m, i, o: calls.append(m))
    model(torch.rand(1, 1, 8, 8))
    # Per level: one call per smoothing, plus the restriction's A' * u and, from the fine
    # level, its A * u (levels 1 and 2 are fine levels).
    counts = [sum(c is level.operator for c in calls) for level in model.stages]
    assert counts == [2 + 1, 2 + 1 + 1, 2 + 1]


def test_coarse_a_cancels_right_after_restriction():
    """f - A' * (Pi u) = R (f - A u): with one smoothing on the coarsest level, its A is unused."""
    torch.manual_seed(0)
    model = create_model("mgnet", 10, 1, widths=(8, 16), iterations=(2, 1)).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        before = model(x)
        model.stages[-1].operator.weight.normal_()
        torch.testing.assert_close(model(x), before)
        model.stages[0].operator.weight.normal_()
        assert not torch.allclose(model(x), before)


def test_forward_equals_head_of_last_feature_and_levels_halve():
    torch.manual_seed(0)
    model = create_model("se_mgnet", 10, 3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)).eval()
    x = torch.rand(3, 3, 28, 28)
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model(x), model.forward_head(feats[-1]))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 28, 28), (32, 14, 14), (64, 7, 7)]
    assert model.num_features == [16, 32, 64]


def test_normalisation_happens_inside():
    torch.manual_seed(0)
    model = create_model("mgnet", 10, 1, mean=0.3, std=0.2).eval()
    plain = create_model("mgnet", 10, 1).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    plain.load_state_dict(state, strict=False)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain((x - 0.3) / 0.2), rtol=1e-4, atol=1e-5)


def test_state_dict_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = create_model("se_mgnet", 10, 1).eval()
    write_tensors_atomic(tmp_path / "w.safetensors", model.state_dict())
    other = create_model("se_mgnet", 10, 1).eval()
    other.load_state_dict(load_tensors(tmp_path / "w.safetensors"))
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x))


def test_bad_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="one width per level"):
        create_model("mgnet", 10, 1, widths=(16, 32), iterations=(1, 1, 1))
    with pytest.raises(ConfigError, match=">= 1"):
        MgNet(widths=(16, 0), iterations=(1, 1))

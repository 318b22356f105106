"""Model zoo: shapes, gradients, SE placement, normalisation, registry errors, param counts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from robustlab.errors import ConfigError
from robustlab.models import (
    BasicBlock,
    PreActBlock,
    SqueezeExcite,
    create_model,
    list_models,
    model_param_count,
)

EXPECTED_MODELS = {
    "resnet20", "resnet32", "resnet56", "se_resnet20", "se_resnet32", "se_resnet56",
    "preact_resnet18", "se_preact_resnet18", "small_cnn",
}  # fmt: skip
# Expected SE count = number of residual blocks: 3 stages x n for CIFAR, 4 x 2 for PreAct-18.
SE_BLOCKS = {"se_resnet20": 9, "se_resnet32": 15, "se_resnet56": 27, "se_preact_resnet18": 8}


def _count_se(model: nn.Module) -> int:
    return sum(isinstance(m, SqueezeExcite) for m in model.modules())


def _cifar_resnet_params(n: int, in_channels: int, num_classes: int, se_r: int | None) -> int:
    """Parameter count of a 6n+2 CIFAR ResNet with option-B shortcuts, from first principles."""

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout

    def bn(c: int) -> int:
        return 2 * c  # affine weight + bias

    def se(c: int) -> int:
        h = max(1, c // se_r)
        return c * h + h + h * c + c

    total = conv(3, in_channels, 16) + bn(16)
    cin = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv(3, cin, width) + bn(width) + conv(3, width, width) + bn(width)
            if cin != width:
                total += conv(1, cin, width) + bn(width)
            if se_r is not None:
                total += se(width)
            cin = width
    return total + 64 * num_classes + num_classes


def test_registry_lists_all_contract_names():
    assert EXPECTED_MODELS <= set(list_models())


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
@pytest.mark.parametrize("in_channels,size", [(1, 8), (3, 32)])
def test_forward_backward_every_parameter_gets_finite_grad(name, in_channels, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=in_channels)
    model.train()
    x = torch.rand(2, in_channels, size, size)
    logits = model(x)
    assert logits.shape == (2, 7)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_se_modules_present_iff_se_reduction(name):
    model = create_model(name, 10, 3)
    assert _count_se(model) == SE_BLOCKS.get(name, 0)


def test_se_option_on_baseline_and_override_on_se_model():
    assert _count_se(create_model("resnet20", 10, 3, se_reduction=8)) == 9
    model = create_model("se_resnet20", 10, 3, se_reduction=4)
    assert {m.reduction for m in model.modules() if isinstance(m, SqueezeExcite)} == {4}
    assert _count_se(create_model("se_resnet20", 10, 3, se_reduction=None)) == 0


@pytest.mark.parametrize("in_channels", [1, 3])
def test_resnet20_param_count_matches_architecture(in_channels):
    base = model_param_count(create_model("resnet20", 10, in_channels))
    se = model_param_count(create_model("se_resnet20", 10, in_channels))
    assert base == _cifar_resnet_params(3, in_channels, 10, None)
    assert se == _cifar_resnet_params(3, in_channels, 10, 16)
    assert 0.26e6 < base < 0.28e6  # the well-known "0.27M" of ResNet-20
    assert 0 < (se - base) / base < 0.02  # SE is a small, positive overhead


def test_resnet56_param_count_matches_architecture():
    model = create_model("resnet56", 10, 3)
    assert model_param_count(model) == _cifar_resnet_params(9, 3, 10, None)


@pytest.mark.parametrize("name", ["resnet20", "se_preact_resnet18", "small_cnn"])
def test_forward_equals_head_of_last_feature(name):
    torch.manual_seed(0)
    model = create_model(name, 10, 3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model(x), model.forward_head(feats[-1]))
    assert [f.shape[1] for f in feats] == model.num_features
    sizes = [f.shape[-1] for f in feats]
    assert sizes[0] <= 32 and all(a > b for a, b in zip(sizes, sizes[1:], strict=False))


def test_feature_channels_per_stage():
    assert create_model("resnet20", 10, 1).num_features == [16, 32, 64]
    assert create_model("preact_resnet18", 10, 1).num_features == [64, 128, 256, 512]
    assert create_model("preact_resnet18", 10, 1, width=0.25).num_features == [16, 32, 64, 128]
    assert create_model("resnet20", 10, 1, width=2.0).num_features == [32, 64, 128]


@pytest.mark.parametrize("name", ["se_resnet20", "preact_resnet18", "small_cnn"])
def test_normalisation_happens_inside(name):
    torch.manual_seed(0)
    mean, std = (0.3, 0.5, 0.7), (0.2, 0.4, 0.1)
    model = create_model(name, 10, 3, mean=mean, std=std).eval()
    plain = create_model(name, 10, 3).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    plain.load_state_dict(state, strict=False)
    x = torch.rand(2, 3, 16, 16)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain((x - m) / s), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(model(x), plain(x))


def test_state_dict_holds_mean_std_buffers():
    model = create_model("resnet20", 10, 3, mean=0.5, std=(0.1, 0.2, 0.3))
    state = model.state_dict()
    torch.testing.assert_close(state["normalize.mean"].flatten(), torch.full((3,), 0.5))
    torch.testing.assert_close(state["normalize.std"].flatten(), torch.tensor([0.1, 0.2, 0.3]))
    default = create_model("resnet20", 10, 1).state_dict()
    assert default["normalize.mean"].flatten().tolist() == [0.0]
    assert default["normalize.std"].flatten().tolist() == [1.0]
    assert "normalize.mean" not in dict(model.named_parameters())


@pytest.mark.parametrize("kwargs", [{"mean": (0.1, 0.2)}, {"std": (0.0, 1.0, 1.0)}])
def test_bad_mean_std_is_config_error(kwargs):
    with pytest.raises(ConfigError):
        create_model("resnet20", 10, 3, **kwargs)


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        create_model("resnet21", 10, 3)
    message = str(info.value)
    assert "resnet21" in message and "resnet20" in message and "small_cnn" in message
    assert "\n" not in message


def test_unknown_kwarg_lists_valid_options():
    with pytest.raises(ConfigError) as info:
        create_model("se_resnet20", 10, 3, se_ratio=8)
    message = str(info.value)
    assert "se_ratio" in message and "se_reduction" in message and "width" in message
    assert "\n" not in message


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_invalid_se_reduction_is_config_error(value):
    with pytest.raises(ConfigError):
        create_model("se_resnet20", 10, 3, se_reduction=value)


@pytest.mark.parametrize("name", ["se_resnet20", "se_preact_resnet18"])
def test_eval_mode_is_deterministic(name):
    model = create_model(name, 10, 3, width=0.25) if "preact" in name else create_model(name, 10, 3)
    model.eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_se_gate_in_unit_interval_and_zero_weights_give_half():
    torch.manual_seed(0)
    se = SqueezeExcite(32, 16)
    assert se.hidden == 2 and SqueezeExcite(8, 16).hidden == 1
    x = torch.randn(4, 32, 5, 5)
    gate = se.gate(x)
    assert gate.shape == (4, 32) and (gate > 0).all() and (gate < 1).all()
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
    nn.init.zeros_(se.fc2.weight)
    nn.init.zeros_(se.fc2.bias)
    torch.testing.assert_close(se.gate(x), torch.full((4, 32), 0.5))
    torch.testing.assert_close(se(x), 0.5 * x)


def test_se_gate_depends_on_channel_means_only():
    torch.manual_seed(0)
    se = SqueezeExcite(16, 4)
    x = torch.randn(2, 16, 6, 6)
    shuffled = x.flatten(2)[:, :, torch.randperm(36)].view_as(x)
    torch.testing.assert_close(se.gate(x), se.gate(shuffled))


@pytest.mark.parametrize("block_cls", [BasicBlock, PreActBlock])
@pytest.mark.parametrize("stride,cin", [(1, 16), (2, 8)])
def test_se_scales_residual_branch_before_addition(block_cls, stride, cin):
    torch.manual_seed(0)
    block = block_cls(cin, 16, stride=stride, se_reduction=4).eval()
    nn.init.zeros_(block.se.fc2.weight)
    nn.init.zeros_(block.se.fc2.bias)
    captured = {}
    block.se.register_forward_hook(lambda mod, inp, out: captured.update(branch=inp[0].clone()))
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        out = block(x)
        if block_cls is BasicBlock:
            expected = torch.relu(0.5 * captured["branch"] + block.shortcut(x))
        else:
            pre = torch.relu(block.bn1(x))
            identity = x if block.shortcut is None else block.shortcut(pre)
            expected = 0.5 * captured["branch"] + identity
    torch.testing.assert_close(out, expected)
    # Without SE the same weights give the unscaled branch, so the gate really acted on it.
    plain = copy.deepcopy(block)
    plain.se = None
    with torch.no_grad():
        assert not torch.allclose(plain(x), out)


@pytest.mark.parametrize(
    "name,kwargs",
    [("resnet56", {"stem": "imagenet"}), ("preact_resnet18", {"stem": "imagenet"}),
     ("preact_resnet18", {}), ("small_cnn", {})],
)  # fmt: skip
def test_tiny_inputs_never_collapse(name, kwargs):
    model = create_model(name, 10, 1, **kwargs).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.rand(2, 1, 5, 5))
        assert model(torch.rand(2, 1, 5, 5)).shape == (2, 10)
    assert len(feats) == len(model.num_features)
    assert all(min(f.shape[-2:]) >= 1 for f in feats)

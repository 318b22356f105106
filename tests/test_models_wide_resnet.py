"""WideResNets: published parameter counts (built on meta), the family contract, options."""

from __future__ import annotations

import pytest
import torch

from robustlab.errors import ConfigError
from robustlab.models import SqueezeExcite, create_model, list_models, model_param_count


def _wrn_params(depth: int, k: int, num_classes: int = 10, in_channels: int = 3) -> int:
    """Parameter count of the TRADES/RobustBench WRN-depth-k, layer by layer."""
    n = (depth - 4) // 6
    total, cin = 9 * in_channels * 16, 16  # 3x3 stem, no BN (pre-activation)
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += 2 * cin + 9 * cin * width + 2 * width + 9 * width * width  # BN conv BN conv
            total += cin * width if cin != width else 0  # 1x1 projection shortcut
            cin = width
    return total + 2 * cin + cin * num_classes + num_classes  # final BN + linear


@pytest.mark.parametrize(
    "name,depth,k,published",
    [("wrn28_10", 28, 10, 36.5e6), ("wrn34_10", 34, 10, 46.2e6), ("wrn70_16", 70, 16, 266.8e6)],
)
def test_param_counts_match_published_architectures(name, depth, k, published):
    with torch.device("meta"):
        model = create_model(name, 10, 3)
    count = model_param_count(model)
    assert count == _wrn_params(depth, k)
    assert round(count / 1e5) == round(published / 1e5)


def test_known_exact_counts():
    with torch.device("meta"):
        assert model_param_count(create_model("wrn28_10", 10, 3)) == 36_479_194
        assert model_param_count(create_model("wrn34_10", 10, 3)) == 46_160_474


def test_registered_and_options():
    assert {"wrn28_10", "wrn34_10", "wrn70_16", "wide_resnet"} <= set(list_models())
    with torch.device("meta"):
        model = create_model("wrn28_10", 10, 3, depth=10, widen_factor=2)
    assert model_param_count(model) == _wrn_params(10, 2)
    assert model.num_features == [32, 64, 128]


def test_small_wrn_contract_features_logits_and_normalisation_inside():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    model = create_model("wide_resnet", 7, 3, mean=mean, std=std, depth=10, widen_factor=1).eval()
    x = torch.rand(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert [f.shape[1:] for f in feats] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert torch.allclose(model(x), model.forward_head(feats[-1]))
    bare = create_model("wide_resnet", 7, 3, depth=10, widen_factor=1).eval()
    identity = {k: v for k, v in bare.state_dict().items() if k.startswith("normalize.")}
    bare.load_state_dict({**model.state_dict(), **identity})
    normalized = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(model(x), bare(normalized), atol=1e-5)


def test_se_option_adds_one_gate_per_block():
    with torch.device("meta"):
        model = create_model("wrn28_10", 10, 3, se_reduction=16)
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 12


def test_block_dropout_acts_in_training_only():
    model = create_model("wide_resnet", 10, 3, depth=10, widen_factor=1, block_dropout=0.5)
    x = torch.rand(2, 3, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize(
    "kwargs", [{"depth": 27}, {"depth": 4}, {"widen_factor": 0}, {"block_dropout": 1.0}]
)
def test_bad_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        create_model("wide_resnet", 10, 3, **kwargs)

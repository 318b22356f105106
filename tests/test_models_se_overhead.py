"""The SE parameter overhead: exact count against the models themselves, Eq. 5 in closed form."""

from __future__ import annotations

import pytest

from robustlab.models import create_model, model_param_count
from robustlab.models.se_overhead import se_block_params, se_overhead


@pytest.mark.parametrize("reduction", [2, 4, 8, 16])
def test_exact_overhead_is_the_parameter_difference_to_the_plain_resnet(reduction):
    plain = create_model("resnet20", num_classes=10, in_channels=1)
    se = create_model("se_resnet20", num_classes=10, in_channels=1, se_reduction=reduction)
    overhead = se_overhead(se)
    assert overhead.exact == model_param_count(se) - model_param_count(plain)
    assert overhead.blocks == 9
    # resnet20: three stages of three blocks with 16, 32 and 64 channels
    expected = 3 * sum(se_block_params(c, reduction) for c in (16, 32, 64))
    assert overhead.exact == expected
    assert overhead.eq5 == pytest.approx(2 / reduction * 3 * (16**2 + 32**2 + 64**2))


def test_a_one_unit_bottleneck_is_counted_with_its_biases():
    assert se_block_params(16, 16) == 2 * 16 * 1 + 1 + 16 == 49
    assert se_block_params(16, 32) == 49  # the bottleneck never drops below one unit
    assert se_block_params(64, 4) == 2 * 64 * 16 + 16 + 64


def test_no_overhead_without_se_blocks():
    assert se_overhead(create_model("resnet20", num_classes=10, in_channels=1)) is None

"""The named checks, each on a model whose answer is known: softmax outputs, a sign layer's zero
gradients, a NaN pixel (an input error), Square's breaks, a rising loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.errors import InputError
from robustlab.evaluation import gradient_health, large_eps_check
from robustlab.evaluation.checks import (
    gradient_free_breaks,
    gradient_free_warnings,
    large_eps_verdict,
    probability_outputs,
    zero_gradients,
)
from robustlab.evaluation.checks_optimization import still_rising
from robustlab.evaluation.worst_case_result import WorstCaseResult


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()


class Sign(nn.Module):
    """A sign (quantisation) layer first: its input gradient is exactly zero everywhere."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.sign(x - 0.5))


def _data(n: int = 32):
    x = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return x, torch.arange(n) % 3


def test_probability_outputs_flags_a_softmax_model_only():
    x, _ = _data()
    logits = _linear()(x).detach()
    assert probability_outputs(logits.softmax(1)).status == "warn"
    assert probability_outputs(logits).status == "pass"
    # rows in [0, 1] that do not sum to 1 (independent sigmoids) are not a softmax
    assert probability_outputs(logits.sigmoid()).status == "pass"


def test_zero_gradients_flags_a_sign_layer_and_not_a_linear_model():
    x, y = _data()
    masked = gradient_health(Sign(_linear()), x, y)
    assert masked.zero_fraction == 1.0 and masked.nonfinite_fraction == 0.0
    assert zero_gradients(masked).status == "warn"
    healthy = gradient_health(_linear(), x, y)
    assert healthy.zero_fraction == 0.0 and zero_gradients(healthy).status == "pass"


def test_a_nan_pixel_is_an_input_error_not_masking():
    x, y = _data()
    x[3, 0, 1, 1] = float("nan")
    with pytest.raises(InputError, match="row 3"):
        gradient_health(_linear(), x, y)


def test_large_eps_flags_an_attack_that_cannot_move():
    x, y = _data()
    model = Sign(_linear())
    y = model(x).argmax(1)  # every example correct: only the attack can lower the accuracy
    stuck = large_eps_check(model, x, y, eps=0.5, steps=5)
    # zero gradients: only PGD's random start moves the images, and half of them stay correct
    assert stuck > 0.3 and large_eps_verdict(0.5, stuck).status == "warn"
    linear = _linear()
    y = linear(x).argmax(1)
    moved = large_eps_check(linear, x, y, eps=0.5, steps=5)
    assert moved == 0.0 and large_eps_verdict(0.5, moved).status == "pass"


def _result(square: int, n: int = 100, eps: float = 0.1) -> WorstCaseResult:
    broken = torch.full((n,), float("inf"), dtype=torch.float64)
    broken[:square] = eps
    by = ["square"] * square + [None] * (n - square)
    result = WorstCaseResult("fast", "Linf", [eps], broken, by)
    result.attack_cost = {"apgd_ce": {}, "apgd_t": {}, "square": {}}
    return result


def test_gradient_free_breaks_tolerates_a_stray_break_and_flags_many():
    assert gradient_free_breaks(_result(0)).status == "pass"
    assert gradient_free_breaks(_result(1)).status == "pass"  # one missed example is noise
    assert not _result(2).masking and gradient_free_warnings(_result(2)) == []
    assert gradient_free_breaks(_result(3)).status == "warn"
    assert _result(3).masking and "Square" in gradient_free_warnings(_result(3))[0]
    # at n = 1000 the share (2%) decides: 19 breaks pass, 20 warn
    assert gradient_free_breaks(_result(19, n=1000)).status == "pass"
    assert gradient_free_breaks(_result(20, n=1000)).status == "warn"


def test_still_rising_tells_a_climbing_loss_from_a_converged_one():
    steps = torch.arange(101, dtype=torch.float32)[:, None]
    climbing = 0.05 * steps  # linear growth: +1 over the last fifth
    converged = 2 - torch.exp(-steps / 5)  # flat long before the end
    noisy_flat = 1 + 0.01 * torch.sin(steps)  # oscillates, never climbs
    rising = still_rising(torch.cat([climbing, converged, noisy_flat], 1))
    assert rising.tolist() == [True, False, False]

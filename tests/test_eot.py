"""Randomized models: detection, the EOT gradient against its closed form, EOT stronger than
one draw, and the majority vote that defines their robust accuracy."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks import APGD
from robustlab.evaluation import InputNoise, MajorityVote, robust_accuracy
from robustlab.evaluation.eot import is_stochastic


class PhaseNoiseLinear(nn.Module):
    """Two-class logits ``[0, w.x + b] + A sin(omega u.x + phi) [0, 1]``, ``phi ~ U(0, 2 pi)`` per
    draw and example. The sine moves the logits by at most ``A`` (tiny) but its gradient,
    ``A omega cos(.) u``, swamps ``w`` on one draw; over draws it averages to zero, so the EOT
    gradient of the logits is exactly ``w`` (a textbook randomized-gradient defense)."""

    def __init__(self, w: torch.Tensor, b: float, u: torch.Tensor, amplitude: float, omega: float):
        super().__init__()
        self.w, self.b, self.u = w, b, u
        self.amplitude, self.omega = amplitude, omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        phi = 2 * math.pi * torch.rand(len(x), device=x.device)
        z = flat @ self.w + self.b + self.amplitude * torch.sin(self.omega * flat @ self.u + phi)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _model_and_data(n: int = 48, seed: int = 0, omega: float = 6e3):
    gen = torch.Generator().manual_seed(seed)
    d = 16
    w = torch.randn(d, generator=gen)
    u = torch.randint(0, 2, (d,), generator=gen).float() - 0.5  # +-1/2: unrelated to w
    model = PhaseNoiseLinear(w, 0.0, u, amplitude=1e-3, omega=omega)
    x = torch.rand(n, 1, 4, 4, generator=gen) * 0.6 + 0.2
    margin = x.flatten(1) @ w
    return model, x, (margin > 0).long(), w


def test_a_randomized_forward_is_detected():
    model, x, _, _ = _model_and_data()
    assert is_stochastic(model, x[:8])
    assert is_stochastic(InputNoise(nn.Flatten(), 0.1), x[:8])
    assert not is_stochastic(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), x[:8])


def test_apgd_eot_gradient_matches_its_closed_form():
    torch.manual_seed(0)
    model, x, y, w = _model_and_data(n=6)
    draws = 4000
    attack = APGD(model, eps=0.1, steps=1, eot_iter=draws)
    grad, _, _ = attack._loss_grad(x, x, y, None)  # the gradient APGD steps along
    # APGD ascends CE in its log-odds form, z_other - z_label: linear in the logits, so
    # E[grad] = (1 - 2 y) w exactly, the sine's gradient averaging out over phi
    expected = (1 - 2 * y.float())[:, None] * w[None, :]
    # Monte-Carlo error of the sine's part: A omega |u_j| / sqrt(2 draws) = 0.034 per entry
    assert torch.allclose(grad.flatten(1), expected, atol=0.15)
    one_draw = APGD(model, eps=0.1, steps=1, eot_iter=1)._loss_grad(x, x, y, None)[0]
    assert (one_draw.flatten(1) - expected).abs().max() > 1.0  # one draw is mostly noise


def test_eot_breaks_more_than_one_draw():
    torch.manual_seed(0)
    model, x, y, w = _model_and_data(n=48, omega=12e3)  # one draw's noise: 6x w's scale
    judge = MajorityVote(model, draws=5)
    eps = 0.05

    def accuracy(eot_iter: int) -> float:
        def factory(e):
            return APGD(model, eps=e, steps=10, eot_iter=eot_iter, seed=1)

        return robust_accuracy(judge, x, y, factory, [eps], batch_size=48).points[0].accuracy

    # the linear part alone: breakable exactly when |w.x| < eps ||w||_1 (the Linf optimum)
    breakable = (x.flatten(1) @ w).abs() < eps * w.abs().sum()
    assert 0.2 < float(breakable.float().mean()) < 0.9
    with_eot, one_draw = accuracy(200), accuracy(1)
    assert with_eot <= 1 - float(breakable.float().mean()) + 0.05  # EOT finds ~ every break
    assert with_eot < one_draw - 0.1


def test_majority_vote_is_the_most_frequent_class():
    class Coin(nn.Module):
        """Class 1 with probability 0.7, else class 0 (logits say so sharply)."""

        def forward(self, x):
            ones = (torch.rand(len(x)) < 0.7).float()
            return torch.stack([1 - ones, ones], 1) * 10.0

    torch.manual_seed(0)
    votes = MajorityVote(Coin(), draws=101)(torch.zeros(400, 1, 1, 1)).argmax(1)
    # P(majority of 101 draws is class 1) > 0.9999 at p = 0.7
    assert bool((votes == 1).all())


def test_input_noise_is_on_in_eval_mode_and_unclipped():
    torch.manual_seed(0)
    noisy = InputNoise(nn.Identity(), sigma=0.5).eval()
    out = noisy(torch.zeros(2000, 1, 2, 2))
    assert out.min() < 0 and abs(float(out.std()) - 0.5) < 0.02
    assert F.mse_loss(InputNoise(nn.Identity(), 0.0)(out), out) == 0

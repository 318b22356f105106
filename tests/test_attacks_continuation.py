"""The eps-continuation schedule of the eps-grid evaluator (robustlab.evaluation.continuation)."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from robustlab.attacks import FGSM, PGD, madry_step_size
from robustlab.errors import ConfigError
from robustlab.evaluation import robust_accuracy
from tests.attack_fixtures import digits, model, trained_tiny_cnn  # noqa: F401


def pgd_factory(net, steps=20, **kwargs):
    return lambda eps: PGD(net, eps=eps, alpha=madry_step_size(eps, steps), steps=steps, **kwargs)


def linear_binary_problem(n=300, seed=0):
    """A linear two-class model whose exact Linf robustness radius is known per example.

    Inputs lie in [0.3, 0.7] so that no eps <= 0.3 is clipped by [0, 1]; the smallest Linf
    perturbation that flips example i is then margin_i / ||w_y - w_other||_1.
    """
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(2, 64, generator=gen) * 0.1)
        net[1].bias.zero_()
    images = 0.3 + 0.4 * torch.rand(n, 1, 8, 8, generator=gen)
    with torch.no_grad():
        logits = net(images)
    labels = logits.argmax(1)
    weight_gap = (net[1].weight[0] - net[1].weight[1]).abs().sum().item()
    radius = (logits[:, 0] - logits[:, 1]).abs() / weight_gap
    return net.eval(), images, labels, radius


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("schedule", ["continuation", "full"])
def test_curve_equals_exact_robust_accuracy_of_a_linear_model(loss, schedule):
    net, images, labels, radius = linear_binary_problem()
    # grid points well away from every example's radius, so PGD's answer is not borderline
    grid = torch.quantile(radius, torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])).tolist()
    gaps = (radius[:, None] - torch.tensor(grid)[None]).abs()
    keep = (gaps > 2e-3).all(dim=1)
    images, labels, radius = images[keep], labels[keep], radius[keep]
    torch.manual_seed(0)
    curve = robust_accuracy(
        net, images, labels, pgd_factory(net, loss=loss), grid, batch_size=64, schedule=schedule
    )
    assert curve.schedule == schedule
    exact = [int((radius > eps).sum()) / len(radius) for eps in grid]
    assert curve.accuracy == pytest.approx(exact, abs=1e-9)


def test_continuation_is_at_least_as_strong_as_independent_pgd(model, digits):  # noqa: F811
    images, labels = digits
    grid = [0.03, 0.05, 0.075, 0.1, 0.15]
    torch.manual_seed(0)
    curve = robust_accuracy(model, images, labels, pgd_factory(model), grid, batch_size=64)
    assert curve.schedule == "continuation"
    independent = []
    for eps in grid:
        adv = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 20, steps=20)(images, labels)
        with torch.no_grad():
            independent.append((model(adv).argmax(1) == labels).float().mean().item())
    # Random starts differ, and on this model they alone move PGD-20 by up to 3 examples of
    # 200 at one eps: allow that per eps, but not a systematic gap over the curve.
    for ours, theirs in zip(curve.accuracy, independent, strict=True):
        assert ours <= theirs + 0.035
    assert sum(curve.accuracy) / len(grid) <= sum(independent) / len(grid) + 0.01
    assert curve.accuracy[-1] < curve.accuracy[0] < curve.clean_accuracy


def test_gradient_evaluations_follow_the_budget(model, digits):  # noqa: F811
    images, labels = digits
    grid, steps, more = [0.02, 0.05, 0.1, 0.2], 10, 3
    curve = robust_accuracy(
        model, images, labels, pgd_factory(model, steps), grid, continuation_steps=more
    )
    attacked = round(curve.clean_accuracy * len(labels))
    # eps 0: every correct example is evaluated once per step plus a last check
    assert attacked <= curve.points[0].grad_evals <= (steps + 1) * attacked
    for before, point in zip(curve.points, curve.points[1:], strict=False):
        survivors = round(before.accuracy * len(labels))
        # each survivor: its stretched start, then up to `more` steps, each checked
        assert survivors <= point.grad_evals <= (more + 1) * survivors
    assert curve.accuracy == sorted(curve.accuracy, reverse=True)


def test_zero_eps_is_the_clean_accuracy_and_costs_nothing(model, digits):  # noqa: F811
    images, labels = digits
    curve = robust_accuracy(model, images, labels, pgd_factory(model), [0.0, 0.1])
    assert curve.points[0].accuracy == pytest.approx(curve.clean_accuracy)
    assert curve.points[0].grad_evals == 0
    assert curve.points[1].accuracy < curve.clean_accuracy


def test_l2_continuation_runs_and_lowers_accuracy(model, digits):  # noqa: F811
    images, labels = digits
    curve = robust_accuracy(model, images, labels, pgd_factory(model, norm="L2"), [0.25, 0.5, 1.0])
    assert curve.schedule == "continuation" and curve.norm == "L2"
    assert curve.accuracy == sorted(curve.accuracy, reverse=True)
    assert curve.accuracy[-1] < curve.clean_accuracy - 0.2


@pytest.mark.parametrize(
    "factory",
    [
        lambda m: lambda eps: FGSM(m, eps=eps),
        lambda m: lambda eps: torchattacks.PGD(m, eps=eps, alpha=eps / 4, steps=5),
        lambda m: pgd_factory(m, steps=5, restarts=2),
        lambda m: pgd_factory(m, steps=5, model_mode="train"),
        lambda m: pgd_factory(m, steps=5, early_stop=False),
    ],
    ids=["fgsm", "torchattacks", "restarts", "train-mode", "no-early-stop"],
)
def test_attacks_that_cannot_continue_run_eps_by_eps(model, digits, factory):  # noqa: F811
    images, labels = digits[0][:64], digits[1][:64]
    curve = robust_accuracy(model, images, labels, factory(model), [0.05, 0.1])
    assert curve.schedule == "full"


def test_schedule_options_are_checked(model, digits):  # noqa: F811
    images, labels = digits[0][:16], digits[1][:16]
    with pytest.raises(ConfigError, match="unknown schedule"):
        robust_accuracy(model, images, labels, pgd_factory(model), [0.1], schedule="fast")
    with pytest.raises(ConfigError, match="continuation_steps"):
        robust_accuracy(model, images, labels, pgd_factory(model), [0.1], continuation_steps=0)
    forced = robust_accuracy(model, images, labels, pgd_factory(model, 5), [0.1], schedule="full")
    assert forced.schedule == "full"


def test_continuation_leaves_the_model_as_it_was(digits):  # noqa: F811
    images, labels = digits[0][:64], digits[1][:64]
    net = trained_tiny_cnn()
    net.train()
    buffers = [b.clone() for b in net.buffers()]
    try:
        robust_accuracy(net, images, labels, pgd_factory(net, 5), [0.05, 0.1, 0.2])
        assert net.training
        assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers(), strict=True))
        assert all(p.grad is None and p.requires_grad for p in net.parameters())
    finally:
        net.eval()


def test_per_example_radius_projects_like_the_scalar_one(model, digits):  # noqa: F811
    images = digits[0][:6]
    far = (images + torch.randn_like(images)).clamp(0, 1)
    radii = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.3, 1.0])
    for norm in ("Linf", "L2"):
        attack = PGD(model, eps=0.1, norm=norm)
        rows = attack.project(far, images, radii)
        for i, eps in enumerate(radii.tolist()):
            # the radius goes to project itself: a Linf attack built with eps 1 is refused
            single = attack.project(far[i : i + 1], images[i : i + 1], eps)
            assert torch.allclose(rows[i : i + 1], single, atol=1e-6)


class Saturated(nn.Module):
    """Logits scaled by 1000: the softmax saturates and cross-entropy gradients underflow to 0
    wherever the model is confident, as in a defensively distilled network."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1000.0 * self.inner(x)


@pytest.mark.parametrize("schedule", ["continuation", "full"])
def test_masked_gradients_do_not_freeze_larger_eps(model, digits, schedule):  # noqa: F811
    images, labels = digits
    masked = Saturated(model).eval()
    grid = [0.05, 0.1, 0.2, 0.3]
    torch.manual_seed(0)
    curve = robust_accuracy(masked, images, labels, pgd_factory(masked), grid, schedule=schedule)
    for point in curve.points:
        attack = torchattacks.PGD(masked, eps=point.eps, alpha=2.5 * point.eps / 20, steps=20)
        adv = attack(images, labels)
        with torch.no_grad():
            independent = (masked(adv).argmax(1) == labels).float().mean().item()
        # a fresh random start at each eps escapes the flat region; a frozen iterate would not
        assert point.accuracy <= independent + 0.035

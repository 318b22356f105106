"""Per-example budgets in the native engine and the batched eps-grid schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torchattacks

from robustlab.attacks import FGSM, PGD, robust_accuracy
from robustlab.errors import ConfigError
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)

GRID = [0.02, 0.05, 0.1, 0.2]


def _norm(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "Linf" else flat.norm(dim=1)


def _pgd_factory(net, steps=5):
    return lambda e: PGD(net, eps=e, alpha=2.5 * e / steps, steps=steps)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_per_example_eps_stays_in_each_ball(model, digits, norm):  # noqa: F811
    images, labels = digits
    scale = 1.0 if norm == "Linf" else 10.0
    eps = scale * torch.tensor(GRID).repeat(math.ceil(len(images) / len(GRID)))[: len(images)]
    eps[:7] = 0.0  # a zero budget leaves the image untouched
    attack = PGD(model, eps=0.5 * scale, alpha=0.1, steps=6, norm=norm, early_stop=False)
    result = attack.run(images, labels, eps=eps, alpha=eps / 2)
    assert (result.perturbation_norm <= eps + 1e-5).all()
    assert (_norm(result.adv_images - images, norm) <= eps + 1e-5).all()
    assert torch.equal(result.adv_images[:7], images[:7])
    assert result.adv_images.min() >= 0 and result.adv_images.max() <= 1
    # The big budgets are used: the largest-eps rows move further than the smallest ones.
    big, small = eps == eps.max(), (eps > 0) & (eps == eps[eps > 0].min())
    assert result.perturbation_norm[big].mean() > result.perturbation_norm[small].mean()
    fgsm = FGSM(model, eps=1.0).run(images, labels, eps=eps / scale)
    assert (_norm(fgsm.adv_images - images, "Linf") <= eps / scale + 1e-6).all()


def test_scalar_eps_tensor_matches_scalar_attack(model, digits):  # noqa: F811
    images, labels = digits
    attack = PGD(model, eps=0.1, alpha=0.025, steps=4, random_start=False)
    scalar = attack.run(images, labels)
    n = len(images)
    tensor = attack.run(images, labels, eps=torch.full((n,), 0.1), alpha=torch.full((n,), 0.025))
    assert torch.allclose(scalar.adv_images, tensor.adv_images, atol=1e-6)
    assert torch.equal(scalar.evals_per_example, tensor.evals_per_example)
    with pytest.raises(ValueError):
        attack.run(images, labels, eps=torch.full((n - 1,), 0.1))
    with pytest.raises(ConfigError):
        torchattacks_like = FGSM(model, eps=0.1)
        torchattacks_like.supports_per_example_eps = False
        torchattacks_like.run(images, labels, eps=torch.full((n,), 0.1))


def test_grad_evals_per_example_and_pruning(model, digits):  # noqa: F811
    images, labels = digits
    n = len(images)
    x, y = images.repeat(2, 1, 1, 1), labels.repeat(2)
    # Copy 0 of each example attacks (eps 0.2); copy 1 has a larger ball but a zero step, so it
    # can only stop early through its group.
    eps = torch.tensor([0.2, 0.3]).repeat_interleave(n)
    alpha = torch.tensor([0.05, 0.0]).repeat_interleave(n)
    groups = torch.arange(n).repeat(2)
    attack = PGD(model, eps=0.2, alpha=0.05, steps=8, random_start=False)
    counts = []
    handle = model.register_forward_pre_hook(
        lambda _m, inputs: counts.append(len(inputs[0])) if inputs[0].requires_grad else None
    )
    try:
        pruned = attack.run(x, y, eps=eps, alpha=alpha, groups=groups)
    finally:
        handle.remove()
    assert pruned.grad_evals == sum(counts) == int(pruned.evals_per_example.sum())
    full = attack.run(x, y, eps=eps, alpha=alpha)
    assert pruned.grad_evals < full.grad_evals
    per_copy, success = pruned.evals_per_example.view(2, n), pruned.success.view(2, n)
    assert success[0].any() and (per_copy <= 8).all() and (per_copy >= 1).all()
    # A copy at the larger eps never runs longer than the fooled copy of its example.
    assert (per_copy[1][success[0]] <= per_copy[0][success[0]]).all()
    assert (full.evals_per_example.view(2, n)[1][~success[1]] == 8).all()


def _monotone(accuracies):
    return all(b <= a for a, b in zip(accuracies, accuracies[1:], strict=False))


def test_batched_and_sequential_schedules_agree(model, digits):  # noqa: F811
    images, labels = digits
    factory = _pgd_factory(model)
    torch.manual_seed(0)
    sequential = robust_accuracy(model, images, labels, factory, GRID, schedule="sequential")
    torch.manual_seed(0)
    batched = robust_accuracy(model, images, labels, factory, GRID, batch_size=64)
    assert _monotone(sequential.accuracy) and _monotone(batched.accuracy)
    assert batched.accuracy[0] > batched.accuracy[-1]
    n = len(labels)
    for a, b in zip(sequential.points, batched.points, strict=True):
        # Two independent random-start runs: allow three standard errors plus one example.
        p = (a.accuracy + b.accuracy) / 2
        assert abs(a.accuracy - b.accuracy) <= 3 * math.sqrt(p * (1 - p) / n) + 1 / n
        assert b.grad_evals > 0 and b.seconds >= 0


def test_batched_accounting_matches_the_gradient_forwards(model, digits):  # noqa: F811
    images, labels = digits
    counts = []
    handle = model.register_forward_pre_hook(
        lambda _m, inputs: counts.append(len(inputs[0])) if inputs[0].requires_grad else None
    )
    try:
        curve = robust_accuracy(model, images, labels, _pgd_factory(model), GRID, 64)
    finally:
        handle.remove()
    assert sum(p.grad_evals for p in curve.points) == sum(counts)
    # Survivors only: each eps costs at most steps x the examples correct before any attack.
    correct = round(curve.clean_accuracy * len(labels))
    assert all(0 < p.grad_evals <= 5 * correct for p in curve.points)
    total = sum(p.seconds for p in curve.points)
    for point in curve.points:  # wall time split in proportion to the gradient evaluations
        share = point.grad_evals / sum(p.grad_evals for p in curve.points)
        assert point.seconds == pytest.approx(total * share, rel=1e-6, abs=1e-9)


def test_schedule_choice(model, digits):  # noqa: F811
    images, labels = digits[0][:32], digits[1][:32]

    def theirs(e):
        return torchattacks.PGD(model, eps=e, alpha=e / 4, steps=2)

    with pytest.raises(ConfigError):
        robust_accuracy(model, images, labels, theirs, [0.1], schedule="batched")
    with pytest.raises(ConfigError):
        robust_accuracy(model, images, labels, _pgd_factory(model), [0.1], schedule="fast")
    targeted = robust_accuracy(  # targeted attacks are judged by the evaluator, sequentially
        model, images, labels, lambda e: PGD(model, eps=e, targeted=True), [0.1]
    )
    assert len(targeted.points) == 1
    curve = robust_accuracy(model, images, labels, theirs, [0.05, 0.1])  # falls back quietly
    assert _monotone(curve.accuracy)

"""The native Square attack: ball and box, model and RNG untouched, strength against
torchattacks.Square, a closed-form linear case, early stop and its cost count."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from robustlab.attacks import Square, build_attack, square_search
from robustlab.errors import ConfigError
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "Linf" else flat.norm(dim=1)


def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(images).argmax(1) == labels).float().mean().item()


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 0.6)])
def test_stays_in_ball_and_box_with_per_row_eps(model, digits, norm, eps):  # noqa: F811
    images, labels = digits[0][:60], digits[1][:60]
    radii = torch.tensor([0.0, eps / 4, eps] * 20)
    for radius in (eps, radii):
        adv = Square(model, eps=radius, norm=norm, n_queries=60)(images, labels)
        assert adv.min() >= 0 and adv.max() <= 1
        assert (norms(adv - images, norm) <= radius + 1e-5).all()
    assert torch.equal(adv[0::3], images[0::3])  # eps 0 leaves the image as it is
    with pytest.raises(ValueError, match="one eps per image"):
        Square(model, eps=radii[:7], norm=norm)(images, labels)


def test_model_and_global_rng_untouched(model, digits):  # noqa: F811
    images, labels = digits[0][:40], digits[1][:40]
    model.train()
    model.features[1].eval()  # a mixed-mode model stays mixed
    flags = [m.training for m in model.modules()]
    state = torch.get_rng_state()
    try:
        first = Square(model, eps=0.1, n_queries=50, seed=3)(images, labels)
        assert [m.training for m in model.modules()] == flags
        assert torch.equal(torch.get_rng_state(), state)
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
        # Its own seeded generator: the same call gives the same images.
        assert torch.equal(first, Square(model, eps=0.1, n_queries=50, seed=3)(images, labels))
    finally:
        model.eval()


@pytest.mark.slow  # 16 attack runs: about 8 s per norm on a quiet machine
@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 0.6)])
def test_at_least_as_strong_as_torchattacks(model, digits, norm, eps):  # noqa: F811
    """Same budget, seeds 0-7: a single seed's accuracy moves by about 3 of 200 examples
    either way for both attacks, so the means are compared, with a margin of one example or two
    standard errors of their difference (measured here), whichever is larger."""
    images, labels = digits
    ours, theirs = [], []
    for seed in range(8):
        options = dict(eps=eps, norm=norm, n_queries=150, seed=seed)
        ours.append(accuracy(model, Square(model, **options)(images, labels), labels))
        theirs.append(
            accuracy(model, torchattacks.Square(model, **options)(images, labels), labels)
        )
    ours_t, theirs_t = torch.tensor(ours), torch.tensor(theirs)
    error = ((ours_t.var() + theirs_t.var()) / len(ours)).sqrt()
    assert ours_t.mean() < accuracy(model, images, labels) - 0.2  # the budget breaks examples
    assert ours_t.mean() <= theirs_t.mean() + max(1 / len(labels), 2 * error)


def test_linear_model_reaches_the_adversarial_corner():
    """Logits (w.x + b, 0), label 0: in the Linf ball the lowest margin is at x - eps sign(w),
    eps ||w||_1 below the clean one. Rows whose clean margin is 0.5 or 0.9 of that drop have an
    adversarial there (0.9: only near the corner), rows at 1.1 or 1.5 have none. The windows of
    the reference never cover the last row and column (corners are drawn in [0, 8 - s)), so w
    is zero there."""
    eps, generator = 0.1, torch.Generator().manual_seed(0)
    weights = torch.randn(1, 1, 8, 8, generator=generator)
    weights[..., -1, :], weights[..., :, -1] = 0, 0
    fraction = torch.tensor([0.5, 0.9, 1.1, 1.5]).repeat(10)
    images = 0.5 + eps * fraction.view(-1, 1, 1, 1) * weights.sign()  # in [eps, 1 - eps]
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        linear[1].weight.zero_()
        linear[1].weight[0] = weights.flatten()
        linear[1].bias.copy_(torch.tensor([-0.5 * float(weights.sum()), 0.0]))
    labels = torch.zeros(len(images), dtype=torch.long)
    assert accuracy(linear, images, labels) == 1.0
    result = Square(linear, eps=eps, n_queries=1000).run(images, labels)
    assert torch.equal(result.success, fraction < 1)
    assert (norms(result.adv_images - images, "Linf") <= eps + 1e-6).all()


def test_early_stop_changes_no_other_row(model, digits):  # noqa: F811
    """A row's draws depend on its index only: rows never fooled end where they end without
    early stop; fooled rows are misclassified in the returned images either way."""
    images, labels = digits[0][:80], digits[1][:80]
    options = dict(eps=0.06, n_queries=150)
    early = Square(model, **options).run(images, labels)
    full = Square(model, early_stop=False, **options).run(images, labels)
    assert torch.equal(early.success, full.success)
    assert 0 < int(early.success.sum()) < len(labels)
    kept = ~early.success
    assert torch.equal(early.adv_images[kept], full.adv_images[kept])
    with torch.no_grad():
        assert torch.equal(model(early.adv_images).argmax(1) != labels, early.success)


def test_memo_changes_nothing_and_cost_is_counted(model, digits, monkeypatch):  # noqa: F811
    """Skipping proposals known to lose (Linf) changes no result, only the number of forwards,
    which ``forward_evals`` counts exactly (grad_evals stays 0)."""
    images, labels = digits[0][:80], digits[1][:80]
    seen = []
    handle = model.register_forward_pre_hook(lambda _m, inputs: seen.append(len(inputs[0])))
    try:
        attack = Square(model, eps=0.05, n_queries=400)
        result = attack.run(images, labels)
        counted = sum(seen)
        monkeypatch.setattr(square_search.LinfMemo, "fits", staticmethod(lambda *_: False))
        plain = Square(model, eps=0.05, n_queries=400)
        assert torch.equal(plain(images, labels), result.adv_images)
    finally:
        handle.remove()
    # every forward is counted but the input check's one-image probe of the model's classes
    assert attack.forward_evals == counted - 1 and result.grad_evals == 0
    assert attack.forward_evals < plain.forward_evals < (400 + 3) * len(images)


def test_catalogue_and_bad_input(model, digits):  # noqa: F811
    images, labels = digits[0][:4], digits[1][:4]
    attack = build_attack("Square", model, eps=0.1, norm="L2", n_queries=10, seed=1)
    assert isinstance(attack, Square) and attack.norm == "L2"
    assert build_attack("torchattacks.Square", model).attack.__class__ is torchattacks.Square
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(images * 255, labels)
    with pytest.raises(ConfigError, match="norm"):
        Square(model, norm="L1")
    with pytest.raises(ConfigError, match="eps"):
        Square(model, eps=-0.1)

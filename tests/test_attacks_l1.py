"""L1 PGD: the projection onto the L1 ball ∩ [0, 1], the sparse step, the attack end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.app.builders import attack_spec
from robustlab.app.validate import validate_config
from robustlab.attacks import PGD
from robustlab.attacks.catalogue import attack_factory, attack_norm, build_attack
from robustlab.attacks.geometry import project, random_start, row_norms
from robustlab.attacks.l1 import sparse_ascent_step
from robustlab.errors import ConfigError
from robustlab.evaluation import robust_accuracy
from tests.app_helpers import compose_tiny
from tests.attack_fixtures import digits, model  # noqa: F401


def reference_projection(v: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """Exact box-constrained L1 projection of one row in float64 by enumerating breakpoints:
    ||d(lam)||_1 is piecewise linear in lam with kinks at |v_i| and |v_i| - room_i, so the
    root lies on the segment between two consecutive kinks and is solved for in closed form."""
    room = np.where(v > 0, 1 - x, x)
    mag = np.abs(v)

    def d_of(lam: float) -> np.ndarray:
        return np.sign(v) * np.minimum(np.maximum(mag - lam, 0), room)

    if np.abs(d_of(0.0)).sum() <= eps:
        return d_of(0.0)
    kinks = np.unique(np.clip(np.concatenate([mag, mag - room, [0.0]]), 0, None))
    masses = np.array([np.abs(d_of(k)).sum() for k in kinks])
    j = np.argmax(masses <= eps)  # first kink inside the budget; mass(kinks[j - 1]) > eps
    lo, hi = kinks[j - 1], kinks[j]
    m_lo, m_hi = masses[j - 1], masses[j]
    lam = lo + (m_lo - eps) * (hi - lo) / (m_lo - m_hi)
    return d_of(lam)


def random_case(rows=12, dim=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(rows, 1, dim, generator=gen, dtype=torch.float64)
    images[:, :, :5] = 0.0  # pixels on the box bound, as in digits
    images[:, :, 5:10] = 1.0
    adv = images + torch.randn(rows, 1, dim, generator=gen, dtype=torch.float64) * 0.6
    return images, adv


@pytest.mark.parametrize("per_row_eps", [False, True])
def test_projection_matches_the_exact_reference(per_row_eps):
    images, adv = random_case()
    eps = torch.linspace(0.05, 20.0, len(images), dtype=torch.float64) if per_row_eps else 1.5
    projected = project(adv, images, eps, "L1")
    radii = eps if per_row_eps else torch.full((len(images),), eps, dtype=torch.float64)
    for i in range(len(images)):
        want = reference_projection(
            (adv[i] - images[i]).flatten().numpy(), images[i].flatten().numpy(), float(radii[i])
        )
        np.testing.assert_allclose((projected[i] - images[i]).flatten().numpy(), want, atol=1e-9)
    # the large radii leave rows inside the ball, where only the box acts
    inside = row_norms((adv - images).clamp(-images, 1 - images), "L1") <= radii
    assert per_row_eps == bool(inside.any())
    if per_row_eps:
        torch.testing.assert_close(projected[inside], adv[inside].clamp(0, 1))


def test_projection_lands_in_ball_and_box_and_is_idempotent():
    images, adv = random_case(rows=20, dim=64, seed=1)
    images, adv = images.float(), adv.float()
    eps = torch.rand(20, generator=torch.Generator().manual_seed(2)) * 4
    once = project(adv, images, eps, "L1")
    assert (row_norms(once - images, "L1") <= eps * (1 + 1e-5) + 1e-6).all()
    assert once.min() >= 0 and once.max() <= 1
    torch.testing.assert_close(project(once, images, eps, "L1"), once, atol=1e-6, rtol=0)
    # a point already inside both sets is not moved at all
    inside = images + (once - images) * 0.5
    torch.testing.assert_close(project(inside, images, eps, "L1"), inside)


def test_sparse_step_moves_only_top_movable_coordinates_with_l1_length_alpha():
    adv = torch.tensor([[0.0, 1.0, 0.5, 0.5, 0.5, 0.2]])
    grad = torch.tensor([[-9.0, 8.0, 3.0, -2.0, 1.0, 0.0]])  # first two are pinned by the box
    step = sparse_ascent_step(adv, grad, 0.6, quantile=0.6) - adv  # k = ceil(0.4 * 6) = 3
    torch.testing.assert_close(step, torch.tensor([[0.0, 0.0, 0.2, -0.2, 0.2, 0.0]]))
    top = sparse_ascent_step(adv, grad, 0.5, quantile=0.99) - adv  # k = 1
    torch.testing.assert_close(top, torch.tensor([[0.0, 0.0, 0.5, 0.0, 0.0, 0.0]]))


def test_random_start_is_inside_ball_and_box(digits):  # noqa: F811
    images, _ = digits
    torch.manual_seed(0)
    start = random_start(images, 2.0, "L1")
    norms = row_norms(start - images, "L1")
    assert (norms <= 2.0 + 1e-5).all() and norms.std() > 0.1
    assert start.min() >= 0 and start.max() <= 1


class DensePGD(PGD):
    """The same PGD stepping along grad / ||grad||_1 * alpha (the dense L1-normalised step)."""

    def step(self, adv, images, grad, eps=None, alpha=None):
        alpha = self.alpha if alpha is None else alpha
        scale = row_norms(grad, "L1").clamp(min=1e-12).reshape(-1, 1, 1, 1)
        return self.project(adv.detach() + alpha * grad / scale, images, eps)


def accuracy(net, images, labels):
    with torch.no_grad():
        return (net(images).argmax(1) == labels).float().mean().item()


def test_pgd_l1_stays_in_ball_and_beats_the_dense_step(model, digits):  # noqa: F811
    images, labels = digits
    eps, kwargs = 2.0, dict(alpha=0.25, steps=20, norm="L1", random_start=False)
    sparse = build_attack("pgd", model, eps=eps, **kwargs)
    assert attack_norm("pgd", {"norm": "L1"}) == "L1" and sparse.norm == "L1"
    result = sparse.run(images, labels)
    assert (result.perturbation_norm <= eps * (1 + 1e-5)).all()
    assert result.adv_images.min() >= 0 and result.adv_images.max() <= 1
    dense = DensePGD(model, eps=eps, **kwargs)(images, labels)
    clean, ours, theirs = (accuracy(model, x, labels) for x in (images, result.adv_images, dense))
    assert ours < clean - 0.3
    assert ours <= theirs


def test_pgd_l1_runs_through_the_eps_grid(model, digits):  # noqa: F811
    images, labels = digits
    torch.manual_seed(0)
    curve = robust_accuracy(
        model, images, labels, lambda e: PGD(model, e, 0.1 * e, 20, norm="L1"), [0.5, 1.0, 2.0]
    )
    assert curve.schedule == "continuation" and curve.norm == "L1"
    assert curve.accuracy == sorted(curve.accuracy, reverse=True)
    assert curve.accuracy[-1] < curve.clean_accuracy - 0.3


def test_bad_l1_options_are_rejected(model):  # noqa: F811
    with pytest.raises(ConfigError, match="l1_quantile"):
        PGD(model, norm="L1", l1_quantile=1.0)
    with pytest.raises(ConfigError, match="APGD norm"):
        build_attack("apgd", model, norm="L0")


def test_pgd_l1_config_builds_the_l1_attack(tmp_path, model):  # noqa: F811
    cfg = compose_tiny(tmp_path, "+attack@eval.attacks.l1=pgd_l1")
    validate_config(cfg)
    spec = attack_spec(cfg.eval.attacks.l1)
    attack = attack_factory(spec, model)(2.0)
    assert spec.eps == [1.0, 2.0, 4.0] and attack_norm(spec.name, spec.kwargs) == "L1"
    assert isinstance(attack, PGD) and attack.norm == "L1" and attack.alpha == pytest.approx(0.2)

"""Operator norms against the SVD of the explicit im2col matrix, the network bound against
Jacobian norms, and the margin certificate against exact distances and attacks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks import PGD
from robustlab.certify import lipschitz_bound, margin_certificate, operator_norm
from robustlab.models import create_model
from tests.certify_fixtures import (  # noqa: F401 (autouse fixture)
    digits_test,
    linear_classifier,
    linear_distance,
    one_thread,
    trained_small_cnn,
)


def im2col_matrix(conv: nn.Conv2d, shape: tuple[int, int, int]) -> torch.Tensor:
    """The convolution as an explicit matrix: S = W . phi(Z), phi = im2col (F.unfold) of every
    basis image, one block per group; rows (out channel, output position), columns input pixels."""
    c_in, n = shape[0], math.prod(shape)
    basis = torch.eye(n, dtype=torch.float64).view(n, *shape)
    groups, per_in = conv.groups, c_in // conv.groups
    weight = conv.weight.detach().double()
    per_out = weight.shape[0] // groups
    blocks = []
    for g in range(groups):
        cols = F.unfold(
            basis[:, g * per_in : (g + 1) * per_in],
            conv.kernel_size,
            conv.dilation,
            conv.padding,
            conv.stride,
        )  # (n, per_in * k * k, L): phi(Z) of each basis image
        w = weight[g * per_out : (g + 1) * per_out].reshape(per_out, -1)
        blocks.append(torch.einsum("oj,njl->oln", w, cols).reshape(-1, n))
    return torch.cat(blocks)


CONVS = [
    dict(in_channels=3, out_channels=5, kernel_size=3, padding=1),
    dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1),
    dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding=0, dilation=2),
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2),
    dict(in_channels=2, out_channels=3, kernel_size=1, stride=2),
]


@pytest.mark.parametrize("spec", CONVS)
def test_power_iteration_equals_svd_of_im2col_matrix(spec):
    torch.manual_seed(0)
    conv = nn.Conv2d(**spec, bias=True)
    shape = (spec["in_channels"], 7, 7)
    matrix = im2col_matrix(conv, shape)
    x = torch.rand(1, *shape, dtype=torch.float64)
    w = conv.weight.double()
    direct = F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    assert torch.allclose(matrix @ x.flatten(), direct.flatten())  # the matrix is the conv
    expected = float(torch.linalg.svdvals(matrix)[0])
    assert operator_norm(conv, shape) == pytest.approx(expected, rel=1e-5)


def test_batchnorm_folded_into_convolution():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3).eval()
    bn.running_var.uniform_(0.2, 3.0)
    bn.weight.data.uniform_(-2.0, 2.0)
    scale = (bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()).detach()
    shape = (2, 5, 5)
    matrix = im2col_matrix(conv, shape).view(3, 25, -1) * scale.detach().view(3, 1, 1)
    expected = float(torch.linalg.svdvals(matrix.reshape(75, -1))[0])
    assert operator_norm(conv, shape, bn=bn) == pytest.approx(expected, rel=1e-5)
    assert operator_norm(bn, (3, 5, 5)) == pytest.approx(float(scale.abs().max()), rel=1e-9)


def _randomise_batchnorm(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.3)
    return model.eval()


@pytest.mark.parametrize("name", ["small_cnn", "resnet20", "se_resnet20", "preact_resnet18"])
def test_bound_exceeds_jacobian_norm(name):
    torch.manual_seed(0)
    kwargs = {"widths": (4, 8)} if name == "small_cnn" else {"width": 0.25}
    model = create_model(name, num_classes=10, in_channels=1, mean=0.3, std=0.4, **kwargs)
    model = _randomise_batchnorm(model)
    bound = lipschitz_bound(model, (1, 8, 8)).bound
    for x in torch.rand(3, 1, 1, 8, 8):
        jac = torch.autograd.functional.jacobian(model, x).reshape(10, 64)
        assert float(torch.linalg.svdvals(jac)[0]) <= bound


def test_linear_model_bound_is_exact_and_certificate_below_distance():
    torch.manual_seed(0)
    weight, bias = torch.randn(10, 64) * 0.3, torch.randn(10) * 0.1
    model = linear_classifier(weight, bias)
    bound = lipschitz_bound(model, (1, 8, 8)).bound
    assert bound == pytest.approx(float(torch.linalg.svdvals(weight)[0]), rel=1e-6)
    x = torch.rand(50, 1, 8, 8)
    radii = margin_certificate(model, x, bound)
    exact = linear_distance(weight, bias, x, dual=2.0).double()
    assert (radii <= exact + 1e-9).all() and (radii > 0).all()


def test_margin_certificate_holds_against_pgd():
    model = trained_small_cnn()
    images, labels = digits_test(12)
    bound = lipschitz_bound(model, (1, 8, 8)).bound
    radii = margin_certificate(model, images, bound, labels)
    assert (radii > 0).sum() >= 8
    for i in torch.nonzero(radii > 0)[:, 0].tolist():
        eps = float(radii[i])
        attack = PGD(model, eps=eps, alpha=eps / 4, steps=20, norm="L2", loss="margin")
        assert not bool(attack.run(images[i : i + 1], labels[i : i + 1]).success[0])


def test_unsupported_layer_is_a_clear_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(72, 3))
    with pytest.raises(ValueError, match="GELU"):
        lipschitz_bound(model, (1, 8, 8))

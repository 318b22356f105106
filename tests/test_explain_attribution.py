"""Attribution maps: closed forms on linear models and GAP + linear heads, IG completeness,
batching, target choice, the layers the CAM family hooks, and methods by name."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import ConfigError
from robustlab.explain import (
    attribute,
    attribution_options,
    create_attribution,
    importance,
    list_attributions,
    register_attribution,
    registry,
    stage_layer,
)
from robustlab.models import create_model
from robustlab.registry import Registry
from tests.attack_fixtures import digits_split, trained_tiny_cnn


def _registered(name: str, seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_classes=10, in_channels=1, **options).eval()


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _reference_cam(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CAM at the last stage's resolution from its definition: sum_k w_ck A_k."""
    with torch.no_grad():
        features = model.forward_features(images)[-1]
    return (model.head.fc.weight[target][:, :, None, None] * features).sum(1)


def test_no_torchvision_import():
    assert "torchvision" not in sys.modules


def test_saliency_of_linear_model_is_abs_weight_of_chosen_class():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    images = torch.rand(4, 3, 4, 4)
    weights = model[1].weight.detach().view(5, 3, 4, 4)
    target = torch.tensor([0, 3, 3, 4])
    maps = attribute(model, images, target, method="saliency")
    assert torch.allclose(maps, weights[target].abs().amax(1))
    single = attribute(model, images, 2, method="saliency")
    assert torch.allclose(single, weights[2].abs().amax(0).expand(4, 4, 4))
    predicted = model(images).argmax(1)
    assert torch.allclose(
        attribute(model, images, method="saliency"), weights[predicted].abs().amax(1)
    )


def test_integrated_gradients_completeness_within_one_percent():
    model = trained_tiny_cnn()
    images = digits_split()[2][:8]
    target = model(images).argmax(1)
    maps = attribute(model, images, target, method="ig", steps=256)
    with torch.no_grad():
        gain = model(images) - model(torch.zeros_like(images))
    expected = gain.gather(1, target[:, None])[:, 0]
    relative = (maps.flatten(1).sum(1) - expected).abs() / expected.abs()
    assert relative.max() < 0.01, relative


@pytest.mark.parametrize("name", ["resnet20", "small_cnn"])
def test_cam_decomposes_the_logit_exactly(name):
    model = _registered(name)
    images = _images()
    target = torch.arange(6) % 10
    maps = attribute(model, images, target, method="cam")
    with torch.no_grad():
        logits = model(images).gather(1, target[:, None])[:, 0]
    # mean-preserving upsampling: mean_ij CAM + b_c is the logit (GAP + linear head)
    assert torch.allclose(maps.mean((1, 2)) + model.head.fc.bias[target], logits, atol=1e-5)


@pytest.mark.parametrize(
    "name,options",
    [
        ("resnet20", {}),
        ("small_cnn", {"widths": (8, 16)}),
        ("se_preact_resnet18", {"width": 0.125}),
    ],
)
def test_gradcam_at_last_stage_equals_cam(name, options):
    model = _registered(name, **options)
    images, target = _images(), torch.tensor([1, 2, 3, 4, 5, 6])
    reference = _reference_cam(model, images, target)
    hw = reference.shape[-2] * reference.shape[-1]
    cam = attribute(model, images, target, method="cam")
    signed = attribute(model, images, target, method="gradcam", relu=False)
    assert torch.allclose(signed * hw, cam, atol=1e-5)
    relu = attribute(model, images, target, method="gradcam")
    expected = F.interpolate(reference.clamp_min(0)[:, None] / hw, size=(8, 8), mode="bilinear")
    assert torch.allclose(relu, expected[:, 0], atol=1e-6)


def test_gradcampp_closed_form_for_gap_linear_head():
    model = _registered("resnet20")
    images, target = _images(), torch.tensor([0, 1, 2, 7, 8, 9])
    with torch.no_grad():
        acts = model.forward_features(images)[-1]
    hw = acts.shape[-2] * acts.shape[-1]
    grad = model.head.fc.weight[target] / hw  # dY_c/dA_k(i, j), constant over positions
    total = acts.sum((2, 3))
    weights = hw * grad.clamp_min(0) / (2 + total * grad)
    low = (weights[:, :, None, None] * acts).sum(1).clamp_min(0)
    expected = F.interpolate(low[:, None], size=(8, 8), mode="bilinear")[:, 0]
    assert torch.allclose(attribute(model, images, target, method="gradcampp"), expected, atol=1e-5)


@pytest.mark.parametrize(
    "name,options", [("resnet20", {}), ("se_preact_resnet18", {"width": 0.125})]
)
def test_stage_layer_output_is_forward_features(name, options):
    model = _registered(name, **options)
    images = _images(3)
    features = model.forward_features(images)
    for stage in range(len(features)):
        seen: list[torch.Tensor] = []
        hook = stage_layer(model, stage).register_forward_hook
        handle = hook(lambda m, i, o, out=seen: out.append(o))
        model(images)
        handle.remove()
        assert torch.equal(seen[-1], features[stage])
    with pytest.raises(ConfigError, match="out of range"):
        stage_layer(model, len(features))


@pytest.mark.parametrize("method", list_attributions())
def test_batched_on_device_and_model_left_untouched(method):
    model = _registered("se_resnet20", width=0.5)
    model.train()
    images, target = _images(7), torch.tensor([3] * 7)
    torch.manual_seed(1)
    whole = attribute(model, images, target, method=method)
    torch.manual_seed(1)
    parts = attribute(
        model, images, target, method=method, batch_size=7 if method == "smoothgrad" else 3
    )
    assert whole.shape == (7, 8, 8) and whole.device == images.device
    assert torch.allclose(whole, parts, atol=1e-6)
    assert model.training and all(p.grad is None and p.requires_grad for p in model.parameters())


def test_intermediate_stage_and_bad_input_errors():
    model = _registered("resnet20")
    images = _images(2)
    assert attribute(model, images, method="gradcam", stage=0).shape == (2, 8, 8)
    assert attribute(model, images, method="gradcampp", stage=1).shape == (2, 8, 8)
    with pytest.raises(ConfigError, match="unknown attribution method"):
        attribute(model, images, method="lime")
    with pytest.raises(ConfigError, match="no option"):
        attribute(model, images, method="saliency", steps=3)
    with pytest.raises(ConfigError, match="target classes"):
        attribute(model, images, torch.tensor([0, 10]), method="saliency")
    with pytest.raises(ConfigError, match="CAM needs"):
        attribute(trained_tiny_cnn(), images, method="cam")


@pytest.fixture
def own_methods(monkeypatch):
    """A copy of the method registry, so that a test's registrations do not outlive it."""
    copy = Registry("attribution method")
    for name in list_attributions():
        copy.register(name)(registry.ATTRIBUTIONS.get(name))
    monkeypatch.setattr(registry, "ATTRIBUTIONS", copy)
    return copy


def test_create_attribution_binds_options_and_checks_them():
    assert list_attributions() == ["cam", "gradcam", "gradcampp", "ig", "saliency", "smoothgrad"]
    assert attribution_options("ig") == {"steps": 32, "baseline": 0.0}
    assert attribution_options("gradcam") == {"stage": -1, "layer": None, "relu": True}
    model, images = trained_tiny_cnn(), digits_split()[2][:4]
    target = torch.tensor([0, 1, 2, 3])
    ig = create_attribution("IG", steps=8)
    assert torch.equal(
        ig(model, images.clone().requires_grad_(True), target),
        attribute(model, images, target, method="ig", steps=8),
    )
    with pytest.raises(ConfigError, match="did you mean ig"):
        create_attribution("igg")
    with pytest.raises(ConfigError, match="no option"):
        create_attribution("saliency", steps=3)


def test_a_registered_method_runs_through_attribute(own_methods):
    @register_attribution("gradient_x_input", rank_by_magnitude=True)
    def gradient_x_input(model: nn.Module, images: torch.Tensor, target: torch.Tensor):
        (grad,) = torch.autograd.grad(model(images).gather(1, target[:, None]).sum(), images)
        return (grad * images).sum(1)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4))
    images = torch.rand(5, 2, 3, 3)
    target = torch.tensor([0, 1, 2, 3, 1])
    weights = model[1].weight.detach().view(4, 2, 3, 3)
    maps = attribute(model, images, target, method="Gradient_X_Input", batch_size=2)
    assert torch.allclose(maps, (weights[target] * images).sum(1), atol=1e-6)  # linear: w * x
    assert torch.equal(importance(maps, "gradient_x_input"), maps.abs())
    assert torch.equal(importance(maps, "cam"), maps)  # CAM ranks by value
    assert "gradient_x_input" in list_attributions()

"""Feature inversion and class visualisation against closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.errors import ConfigError
from robustlab.explain.inversion import invert, layer_output, visualize_class
from robustlab.explain.regularizers import l2_prior, total_variation
from robustlab.models import create_model

SHAPE = (1, 4, 4)


class LinearFeatures(nn.Module):
    """One 'stage' that is an invertible linear map of the flattened input, then a linear head."""

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        singular = torch.linspace(1.0, 0.5, dim)  # condition number 2
        self.map = nn.Linear(dim, dim, bias=True)
        self.head = nn.Linear(dim, 3)
        with torch.no_grad():
            self.map.weight.copy_(q @ torch.diag(singular) @ q.T)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.map(x.flatten(1))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[-1])


def _images(n: int = 3, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 + 0.8 * torch.rand(n, *SHAPE, generator=generator)  # inside the box


def test_inverting_an_invertible_linear_layer_without_prior_returns_the_input():
    model = LinearFeatures(16)
    images = _images()
    result = invert(model, images, layer=0, weight=0.0, steps=400, lr=0.05)
    assert result.images.shape == images.shape
    assert torch.allclose(result.images, images, atol=2e-3)
    assert float(result.pixel_error.max()) < 2e-3
    assert float(result.feature_error.max()) < 2e-3


def test_errors_are_measured_against_the_original():
    model = LinearFeatures(16)
    images = _images()
    result = invert(model, images, layer=0, weight=0.0, steps=3, lr=0.01)
    expected_pixel = (result.images - images).pow(2).flatten(1).mean(1).sqrt()
    assert torch.allclose(result.pixel_error, expected_pixel, atol=1e-6)
    with torch.no_grad():
        target = model.forward_features(images)[0]
        reached = model.forward_features(result.images)[0]
    expected_feature = (reached - target).norm(dim=1) / target.norm(dim=1)
    assert torch.allclose(result.feature_error, expected_feature, atol=1e-5)
    assert float(result.feature_error.min()) > 0.01  # three small steps do not get there


def test_total_variation_gradient_matches_finite_differences():
    images = torch.rand(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: total_variation(x).sum(), (images,))
    assert torch.autograd.gradcheck(lambda x: l2_prior(x).sum(), (images,))


def test_total_variation_closed_forms():
    constant = torch.full((1, 1, 4, 4), 0.3)
    assert torch.allclose(total_variation(constant, smoothing=1e-3), torch.tensor([1e-3]))
    ramp = torch.arange(4.0).repeat(4, 1)[None, None] / 10  # dx = 0.1 except the last column
    expected = (12 * (0.1**2 + 1e-6) ** 0.5 + 4 * 1e-3) / 16
    assert torch.allclose(total_variation(ramp), torch.tensor([expected]), atol=1e-7)


def test_a_tv_prior_gives_smoother_reconstructions_than_none():
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    images = _images(2).repeat_interleave(2, -1).repeat_interleave(2, -2)  # 8x8
    plain = invert(model, images, layer="logits", weight=0.0, steps=60, start="noise")
    smooth = invert(model, images, layer="logits", weight=1.0, steps=60, start="noise")
    assert total_variation(smooth.images).mean() < total_variation(plain.images).mean()
    assert float(smooth.images.min()) >= 0.0 and float(smooth.images.max()) <= 1.0


def test_visualizing_a_class_of_a_linear_model_reaches_the_box_vertex():
    # max_x w_t . x over [0, 1]^D is x = 1 where w_t > 0 and 0 where w_t < 0
    model = LinearFeatures(16)
    seeds = torch.full((2, *SHAPE), 0.5)
    result = visualize_class(model, 1, seeds, weight=0.0, steps=200, lr=0.05)
    expected = (model.head.weight[1] @ model.map.weight > 0).float().reshape(SHAPE)
    assert torch.equal(result.images[0].round(), expected)
    assert torch.equal(result.target, torch.tensor([1, 1]))
    assert float(result.probability.min()) > 0.0


def test_bad_layers_and_options_are_one_clear_error():
    model = LinearFeatures(16)
    with pytest.raises(ConfigError, match="out of range"):
        layer_output(model, _images(), 3)
    with pytest.raises(ConfigError, match="stage index or 'logits'"):
        layer_output(model, _images(), "conv1")
    with pytest.raises(ConfigError, match="regularizer"):
        invert(model, _images(), 0, regularizer="tv2")
    with pytest.raises(ConfigError, match="start"):
        invert(model, _images(), 0, start="zeros")
    with pytest.raises(ConfigError, match="targets"):
        visualize_class(model, [0, 1, 2], torch.rand(2, *SHAPE))


def test_the_model_is_given_back_as_it_was():
    model = LinearFeatures(16).train()
    invert(model, _images(), layer=0, steps=2)
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_the_study_inverts_every_stage_and_saves_arrays_numpy_can_read(tmp_path):
    from safetensors.numpy import load_file

    from robustlab.explain.inversion_study import INVERSIONS_FILE, inversion_study

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_channels=1, width=0.25).train()
    images = _images(2).repeat_interleave(2, -1).repeat_interleave(2, -2)
    study = inversion_study(model, images, steps=3)
    assert list(study.inversions) == ["stage0", "stage1", "stage2", "logits"]
    assert model.training  # the stage count did not switch the model to eval for good
    results = study.to_results()
    assert results["n_images"] == 2 and set(results["layers"]) == set(study.inversions)
    arrays = load_file(str(study.save(tmp_path)))
    assert (tmp_path / INVERSIONS_FILE).exists()
    assert set(arrays) == {"originals", "stage0", "stage1", "stage2", "logits"}
    assert arrays["stage1"].shape == images.shape
    assert torch.equal(torch.from_numpy(arrays["logits"]), study.inversions["logits"].images)

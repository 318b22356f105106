"""The one input check behind every public entry: one clear line, never a silent number."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from robustlab.attacks import PGD, AttackSpec, attack_factory
from robustlab.certify import Smooth, operator_norm
from robustlab.detection import MahalanobisDetector
from robustlab.devices import resolve_device
from robustlab.errors import ConfigError, InputError
from robustlab.evaluation import evaluate_robustness, robust_accuracy, worst_case
from robustlab.explain import attribute
from robustlab.inputs import check_batch, check_eps, check_images, check_labels, row_list


class Features(nn.Module):
    """A linear classifier on 8x8 images that also exposes one feature stage (detectors)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return Features().eval(), torch.rand(12, 1, 8, 8), torch.arange(12) % 3


def suite_only(model, images, labels, eps_grid):
    return evaluate_robustness(
        model, images, labels, {}, eps_grid, suite="fast", check_gradients=False
    )


def curve(model, images, labels, eps_grid):
    return robust_accuracy(model, images, labels, lambda e: PGD(model, e, e / 4, 2), eps_grid)


ENTRIES = [
    lambda m, x, y, g: worst_case(m, x, y, g, suite="fast"),
    suite_only,
    curve,
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    ("eps_grid", "message"),
    [([-0.1], "eps_grid must be a finite number >= 0"), ([0.1, float("nan")], "got nan")],
)
def test_a_bad_eps_is_refused_instead_of_a_perfect_accuracy(batch, entry, eps_grid, message):
    model, images, labels = batch
    with pytest.raises(InputError, match=message):
        entry(model, images, labels, eps_grid)


@pytest.mark.parametrize("entry", ENTRIES)
def test_labels_outside_the_model_classes_are_named(batch, entry):
    model, images, labels = batch
    bad = labels.clone()
    bad[[3, 7]] = torch.tensor([5, -1])
    with pytest.raises(InputError, match=r"labels must lie in \[0, 3\).* rows 3, 7"):
        entry(model, images, bad, [0.1])


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, y: (x.double(), y), r"images are torch.float64 .*images.to\(torch.float32\)"),
        (lambda x, y: (x[:, 0], y), r"\(N, C, H, W\), got \(12, 8, 8\).*unsqueeze\(1\)"),
        (lambda x, y: (x, y.float()), r"labels must be an integer tensor.*labels.long\(\)"),
        (lambda x, y: (x, y[:5]), r"labels must be int64 of shape \(12,\)"),
        (lambda x, y: (x * 255, y), r"images must lie in \[0, 1\]"),
    ],
)
def test_malformed_inputs_fail_in_one_line_before_torch(batch, entry, change, message):
    model, images, labels = batch
    images, labels = change(images, labels)
    with pytest.raises(InputError, match=message) as caught:
        entry(model, images, labels, [0.1])
    assert "\n" not in str(caught.value)


def test_nan_pixels_are_an_input_error_naming_the_rows(batch):
    model, images, labels = batch
    bad = images.clone()
    bad[3, 0, 1, 1], bad[9, 0, 0, 0] = float("nan"), float("inf")
    with pytest.raises(InputError, match="NaN or inf values in rows 3, 9.*not the model's"):
        worst_case(model, bad, labels, [0.1], suite="fast")
    with pytest.raises(ValueError, match="rows 3, 9"):  # an InputError is a ValueError
        PGD(model, 0.1, 0.02, 2)(bad, labels)


def test_row_list_shortens_long_lists():
    assert row_list(torch.tensor([False, True])) == "row 1"
    assert row_list(torch.arange(8)) == "rows 0, 1, 2, 3, 4 and 3 more"


def test_checks_return_their_input_unchanged(batch):
    model, images, labels = batch
    assert check_batch(images, labels, [0.0, 0.1], model=model) == (images, labels)
    assert check_images(images) is images and check_labels(labels, 12, 3) is labels
    assert check_eps(0) == 0.0
    # a float64 model takes float64 images
    assert check_batch(images.double(), labels, 0.1, model=Features().double())[0].dtype == (
        torch.float64
    )
    for eps in (-1e-3, float("inf"), True, "0.1"):
        with pytest.raises(InputError):
            check_eps(eps)


def test_attacks_check_eps_and_labels(batch):
    model, images, labels = batch
    with pytest.raises(ConfigError, match="finite number >= 0"):
        PGD(model, float("inf"), 0.1)
    with pytest.raises(InputError, match="integer tensor"):
        PGD(model, 0.1, 0.02, 2)(images, labels.float())


def test_alpha_and_step_size_together_are_refused(batch):
    model = batch[0]
    with pytest.raises(ConfigError, match="both alpha=0.01 and step_size=0.25"):
        attack_factory(AttackSpec("pgd", {"alpha": 0.01, "step_size": 0.25}), model)
    assert attack_factory(AttackSpec("pgd", {"step_size": 0.25}), model)(0.2).alpha == 0.05


def test_the_library_suite_default_is_the_pipeline_default():
    from robustlab.app.schema import EvalConfig

    default = inspect.signature(evaluate_robustness).parameters["suite"].default
    assert default == EvalConfig().suite == "standard"


def test_explain_certify_and_detection_check_their_images(batch):
    model, images, labels = batch
    with pytest.raises(InputError, match="float64"):
        attribute(model, images.double())
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        Smooth(model, 3, sigma=0.25).predict(images - 0.5, n=10, alpha=0.001)
    flat = images.flatten(1)
    with pytest.raises(InputError, match="integer tensor"):
        MahalanobisDetector().fit(FlatFeatures(), flat, labels.float())
    detector = MahalanobisDetector().fit(FlatFeatures(), flat, labels)
    bad = flat.clone()
    bad[4, 0] = float("nan")
    with pytest.raises(InputError, match="row 4"):
        detector.layer_scores(bad)


class FlatFeatures(nn.Module):
    """Features as input: the detector sees the flattened image itself."""

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :3]


def test_operator_norm_takes_a_batch_axis():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3, padding=1)
    assert operator_norm(conv, (1, 1, 8, 8)) == pytest.approx(operator_norm(conv, (1, 8, 8)))
    linear = nn.Linear(5, 4)
    exact = float(torch.linalg.matrix_norm(linear.weight.detach().double(), ord=2))
    assert operator_norm(linear, (7, 5)) == pytest.approx(exact, rel=1e-6)
    with pytest.raises(ValueError, match=r"does not fit Conv2d: pass \(1, H, W\)"):
        operator_norm(conv, (3, 8, 8))


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_a_missing_accelerator_is_one_line():
    with pytest.raises(ConfigError, match="device=mps .* MPS .* not available: use device=auto"):
        resolve_device("mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device(torch.device("cuda"))

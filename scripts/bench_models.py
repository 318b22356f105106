"""The benchmark's trained models: digits resnet20 (none, pgd_at at eps 0.1) and MNIST small
CNNs (none, pgd_at and trades at eps 0.3), trained once and cached under ``--checkpoint``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from robustlab.attacks import madry_step_size
from robustlab.data import TensorLoader, load_dataset
from robustlab.devices import seed_everything
from robustlab.models import create_model
from robustlab.training import (
    TRADES,
    AdversarialTraining,
    CrossEntropy,
    build_optimizer,
    fit,
    load_weights,
    save_weights,
)
from robustlab.training.checkpoint import WEIGHTS_FILE


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: data set, architecture (and its options), defense, training eps,
    epochs, the eps grid it is evaluated on."""

    dataset: str
    architecture: str
    defense: str
    train_eps: float
    epochs: int
    grid: tuple[float, ...]
    options: tuple[tuple[str, object], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.defense}"


# MNIST at eps 0.3 (Madry et al.'s threat model) with a small CNN (8 and 16 channels), so that
# the original AutoAttack on a few hundred images fits a CPU; PGD-AT/TRADES warm eps up.
SMALL = (("widths", (8, 16)),)
BENCH_MODELS = {
    "digits/none": BenchModel("digits", "resnet20", "none", 0.0, 10, (0.05, 0.1, 0.2)),
    "digits/pgd_at": BenchModel("digits", "resnet20", "pgd_at", 0.1, 10, (0.05, 0.1, 0.2)),
    "mnist5k/none": BenchModel("mnist5k", "small_cnn", "none", 0.0, 6, (0.05, 0.1), SMALL),
    "mnist5k/pgd_at": BenchModel("mnist5k", "small_cnn", "pgd_at", 0.3, 12, (0.3,), SMALL),
    "mnist5k/trades": BenchModel("mnist5k", "small_cnn", "trades", 0.3, 12, (0.3,), SMALL),
}
TRAIN_STEPS = 7  # PGD / TRADES steps while training


def objective(spec: BenchModel):
    if spec.defense == "none":
        return CrossEntropy()
    alpha = madry_step_size(spec.train_eps, TRAIN_STEPS)
    if spec.defense == "trades":
        return TRADES(spec.train_eps, alpha, TRAIN_STEPS)
    warmup = spec.epochs // 3 if spec.dataset == "mnist5k" else 0
    return AdversarialTraining(spec.train_eps, alpha, TRAIN_STEPS, warmup_epochs=warmup)


def trained(spec: BenchModel, checkpoint: str | None, seed: int = 0) -> nn.Module:
    """The model of ``spec``, from ``checkpoint/<dataset>/<defense>`` when it is there, else
    trained (and saved there)."""
    seed_everything(seed)
    model = create_model(spec.architecture, num_classes=10, in_channels=1, **dict(spec.options))
    weights = Path(checkpoint, spec.dataset, spec.defense) if checkpoint else None
    if weights is not None and (weights / WEIGHTS_FILE).exists():
        load_weights(weights, model)
        return model.eval()
    images, labels = load_dataset(spec.dataset, split="train")
    loader = TensorLoader(images, labels, batch_size=128, seed=seed)
    optimizer = build_optimizer(model, "adam", lr=3e-3, weight_decay=0.0)
    fit(model, loader, objective(spec), optimizer, epochs=spec.epochs)
    if weights is not None:
        save_weights(weights, model, {"defense": spec.defense, "epochs": spec.epochs})
    return model.eval()

"""Turn config nodes into library objects and plain values: the data, the model, the defense,
the attack specifications and what every stage after training shares (``StageInputs``).

Each stage module reads its own node only (``evaluation_stage``: ``eval``, ``detection_stage``:
``detector``, ...); what a stage needs from another comes in as plain values, wired by the
pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robustlab.attacks import AttackSpec
from robustlab.data import (
    Augmentation,
    DatasetInfo,
    TensorLoader,
    dataset_info,
    load_dataset,
    stratified_subset,
    train_val_split,
)
from robustlab.training import Defense, create_defense


@dataclass
class DataBundle:
    """Train/validation/test tensors of one data set, plus its metadata."""

    info: DatasetInfo
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


@dataclass
class StageInputs:
    """What the stages after training share, as plain values: the trained model, the data, the
    evaluation's test subset (``eval.max_examples`` stratified, seeded: the rows of every kept
    adversarial tensor, in this order), the seed and the attacks' batch size."""

    model: nn.Module
    bundle: DataBundle
    test: tuple[torch.Tensor, torch.Tensor]
    seed: int
    batch_size: int


def stage_inputs(cfg: DictConfig, model: nn.Module, bundle: DataBundle) -> StageInputs:
    """The inputs of the stages after training (``eval.max_examples``, ``eval.batch_size``)."""
    test = stratified_subset(*bundle.test, cfg.eval.max_examples, seed=cfg.seed)
    return StageInputs(model, bundle, test, cfg.seed, cfg.eval.batch_size)


def build_data(cfg: DictConfig) -> DataBundle:
    """Load the data set, carve a seeded stratified validation split off the training set."""
    data = cfg.data
    images, labels = load_dataset(data.name, root=data.root, split="train")
    test = load_dataset(data.name, root=data.root, split="test")
    train_x, train_y, val_x, val_y = train_val_split(
        images, labels, data.val_fraction, seed=cfg.seed
    )
    train_x, train_y = stratified_subset(train_x, train_y, data.max_train, seed=cfg.seed)
    return DataBundle(dataset_info(data.name), (train_x, train_y), (val_x, val_y), test)


def build_loader(cfg: DictConfig, bundle: DataBundle, device: torch.device) -> TensorLoader:
    """The in-memory training loader on the target device."""
    augment = None
    if cfg.data.crop_padding or cfg.data.horizontal_flip:
        augment = Augmentation(
            crop_padding=cfg.data.crop_padding, horizontal_flip=cfg.data.horizontal_flip
        )
    images, labels = bundle.train
    return TensorLoader(
        images,
        labels,
        batch_size=cfg.data.batch_size,
        shuffle=True,
        seed=cfg.seed,
        augment=augment,
        device=device,
    )


def build_model(cfg: DictConfig, info: DatasetInfo, device: torch.device) -> nn.Module:
    """Instantiate ``cfg.model`` (its ``_target_`` is robustlab.models.create_model)."""
    options = {
        k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if v is not None
    }
    model = instantiate(
        options,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        mean=list(info.mean),
        std=list(info.std),
    )
    return model.to(device)


def build_defense(defense: DictConfig) -> Defense:
    """The defense of a ``defense`` node: its name and its options as plain keyword arguments."""
    options = OmegaConf.to_container(defense, resolve=True)
    return create_defense(options.pop("name"), **options)


def attack_specs(evaluation: DictConfig) -> dict[str, AttackSpec]:
    """The attack specifications of an ``eval`` node, keyed by their key in ``eval.attacks``."""
    return {key: attack_spec(attack) for key, attack in evaluation.attacks.items()}


def attack_spec(attack: DictConfig) -> AttackSpec:
    """One attack node as an AttackSpec: ``options`` and the other keys of its schema (the
    native PGD's ``steps``, ``step_size``, ``loss``, ...) as keyword options, unless null;
    ``eps``: the attack's own grid (null: the evaluation's)."""
    settings: dict[str, Any] = OmegaConf.to_container(attack, resolve=True)
    name, eps = settings.pop("name"), settings.pop("eps", None)
    kwargs = dict(settings.pop("options", {}))
    kwargs.update({key: value for key, value in settings.items() if value is not None})
    return AttackSpec(name=name, kwargs=kwargs, eps=eps)


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (for checkpoints, results and W&B)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)

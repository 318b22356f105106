"""Turn a composed config into library objects; the only place that reads config nodes."""

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
from robustlab.errors import ConfigError


@dataclass
class DataBundle:
    """Train/validation/test tensors of one data set, plus its metadata."""

    info: DatasetInfo
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


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


def attack_specs(cfg: DictConfig, keys: list[str] | None = None) -> dict[str, AttackSpec]:
    """Attack specifications for the evaluator, keyed by their name in ``eval.attacks``."""
    specs = {}
    for key, attack in cfg.eval.attacks.items():
        if keys is not None and key not in keys:
            continue
        specs[key] = attack_spec(attack)
    return specs


def attack_spec(attack: DictConfig) -> AttackSpec:
    """One attack config node as an AttackSpec (step size relative to eps, own eps grid)."""
    kwargs: dict[str, Any] = dict(OmegaConf.to_container(attack.options, resolve=True))
    name = attack.name.lower()
    if name in ("pgd", "pgd_l2"):
        kwargs.update(loss=attack.loss, restarts=attack.restarts, early_stop=attack.early_stop)
        if name == "pgd_l2" and attack.norm not in (None, "L2"):
            raise ConfigError(
                f"attack pgd_l2 is the L2 PGD: drop norm={attack.norm} or use name: pgd"
            )
        if name == "pgd" and attack.norm is not None:
            kwargs["norm"] = attack.norm
    elif attack.loss != "ce" or attack.norm is not None or attack.restarts != 1:
        raise ConfigError(
            f"attack {attack.name}: loss, norm and restarts are options of the native PGD; "
            "set other attacks' settings under options:"
        )
    if attack.steps is not None:
        kwargs["steps"] = attack.steps
    if attack.step_size is not None:
        kwargs["step_size"] = attack.step_size
    return AttackSpec(
        name=attack.name, kwargs=kwargs, eps=list(attack.eps) if attack.eps is not None else None
    )


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (for checkpoints, results and W&B)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)

"""Structured-config schemas: every config group is typed, so typos and wrong types fail early.

Ranges and choices live in each field's ``metadata`` and are checked by
``robustlab.app.validate`` right after composition, because OmegaConf checks types only. The
groups whose options differ in their keys (defense, attack, explain, certify, logger) are
typed per option: see ``robustlab.app.option_schemas``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Dict, List, Optional, get_type_hints  # noqa: UP035 (OmegaConf generics)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from robustlab.app.option_schemas import (
    DetectorConfig,
    ExternalModelConfig,
    bounded,
    lib_default,
    one_of,
    register_option_schemas,
)
from robustlab.app.resolvers import register_resolvers
from robustlab.data import list_datasets
from robustlab.evaluation import evaluate_robustness
from robustlab.evaluation.l0 import DEFAULT_ATTACKS as L0_ATTACKS
from robustlab.evaluation.suite import SUITES
from robustlab.models import list_models, model_options
from robustlab.training import build_optimizer, build_scheduler
from robustlab.training.optim import SCHEDULES


@dataclass
class DataConfig:
    name: str = one_of("digits", *list_datasets())
    root: Optional[str] = None
    val_fraction: float = bounded(0.15, 0.01, 0.9)
    batch_size: int = bounded(64, 1)
    crop_padding: int = bounded(0, 0)
    horizontal_flip: bool = False
    max_train: Optional[int] = bounded(None, 1)


def _model_config() -> type:
    """``_target_``, ``name`` and every option of every registered model, None by default.

    None means "the model's own default" (``build_model`` drops it), so every option can be
    set from the command line (``model.width=2``) while the defaults live in the model code;
    ``validate_config`` rejects an option the chosen model does not have.
    """
    options = sorted({option for name in list_models() for option in model_options(name)})
    fields = [("_target_", str, "robustlab.models.create_model"), ("name", str, "resnet20")]
    fields += [(option, Optional[Any], None) for option in options]
    hints = get_type_hints(ExternalModelConfig)  # model=external's keys, null for the others
    fields += [
        (spec.name, hints[spec.name], field(default=None, metadata=spec.metadata))
        for spec in dataclasses.fields(ExternalModelConfig)
    ]
    return make_dataclass("ModelConfig", fields)


ModelConfig = _model_config()


@dataclass
class TrainConfig:
    epochs: int = bounded(15, 1)
    optimizer: str = one_of("sgd", "sgd", "adam", "adamw")
    lr: float = bounded(lib_default(build_optimizer, "lr"), 0.0, exclusive_low=True)
    momentum: float = bounded(lib_default(build_optimizer, "momentum"), 0.0, 0.999)
    weight_decay: float = bounded(lib_default(build_optimizer, "weight_decay"), 0.0)
    nesterov: bool = lib_default(build_optimizer, "nesterov")
    scheduler: str = one_of("cosine", *SCHEDULES)
    warmup_epochs: float = bounded(0.0, 0.0)
    # scheduler=piecewise: the epochs (0-based) from which the lr is multiplied by lr_gamma
    milestones: List[int] = field(default_factory=list, metadata={"range": (1, None)})
    lr_gamma: float = bounded(lib_default(build_scheduler, "gamma"), 0.0, 1.0, exclusive_low=True)
    amp: bool = False  # bf16 autocast on CUDA (no effect on a CPU)
    compile: bool = False  # torch.compile the model (CUDA only)
    # under torchrun/SLURM: BatchNorm statistics over the global batch (the one-process ones)
    sync_bn: bool = True


@dataclass
class L0EvalConfig:
    # pixel budgets (changed pixels) of the L0 curves; null or [] = no L0 evaluation
    budgets: Optional[List[int]] = field(default=None, metadata={"range": (0, None)})
    # catalogue names of the sparse attacks, keyed in results.json by their lower-case name
    attacks: List[str] = field(default_factory=lambda: [s.name for s in L0_ATTACKS.values()])
    options: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per attack name
    max_examples: Optional[int] = bounded(None, 1)  # null: every example the evaluation attacks


@dataclass
class EvalConfig:
    eps: List[float] = field(
        default_factory=lambda: [0.05, 0.1, 0.2], metadata={"range": (0.0, None)}
    )
    # key -> an attack option (``attack@eval.attacks.<key>: <option>``), typed by its own schema
    attacks: Dict[str, Any] = field(default_factory=dict)
    max_examples: Optional[int] = bounded(None, 1)
    batch_size: int = bounded(512, 1)
    large_eps: Optional[float] = bounded(0.5, 0.0, exclusive_low=True)
    # eps-grid schedule for PGD: "continuation" (one stream, survivors go on with a few more
    # steps at each larger eps) or "full" (the whole attack again at every eps)
    schedule: str = one_of(lib_default(evaluate_robustness, "schedule"), "continuation", "full")
    # null: a quarter of the attack's steps
    continuation_steps: Optional[int] = bounded(
        lib_default(evaluate_robustness, "continuation_steps"), 1
    )
    # the worst-case suite on the survivors of the configured attacks: "standard" (APGD-CE,
    # APGD-T, Square: AutoAttack's strength), "fast" (a cheaper schedule), "none"
    suite: str = one_of(lib_default(evaluate_robustness, "suite"), *SUITES)
    # attacks craft under bf16 autocast on CUDA; every example they find is re-checked in fp32
    amp: bool = False
    # Gaussian input noise (std) kept on at inference, e.g. a defense=gaussian_noise model
    # evaluated as it was trained; a randomized forward is evaluated with EOT (below)
    inference_noise: Optional[float] = bounded(None, 0.0)
    # randomized forwards: APGD gradients averaged per step, and the draws whose majority is a
    # prediction (null: 20 and 101 when the forward is randomized, else 1)
    eot_iter: Optional[int] = bounded(None, 1)
    draws: Optional[int] = bounded(None, 1)
    # continue from the state file beside results.json (eval_state.safetensors) when one is
    # there for the same model, data and settings; false: start afresh (and overwrite it)
    resume: bool = True
    l0: L0EvalConfig = field(default_factory=L0EvalConfig)


@dataclass
class PathsConfig:
    checkpoints: str = "checkpoints"
    checkpoint: Optional[str] = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # each option of these groups brings its own schema (robustlab.app.option_schemas)
    defense: Any = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    explain: Any = MISSING
    certify: Any = MISSING
    logger: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = bounded(0, 0)
    device: str = "auto"
    threads: Optional[int] = bounded(None, 1)  # torch CPU threads; 1 for parallel launchers
    reuse_checkpoints: bool = True


def register_schemas() -> None:
    """Store the schema (``conf/config.yaml`` names it first in its defaults list) and every
    option's own schema (each option's yaml names it first)."""
    ConfigStore.instance().store(name="schema", node=Config)
    register_option_schemas()
    register_resolvers()

"""Structured-config schemas: every config group is typed, so typos and wrong types fail early.

Ranges and choices live in each field's ``metadata`` and are checked by
``robustlab.app.validate`` right after composition, because OmegaConf checks types only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf needs typing generics)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from robustlab.app.defenses import OBJECTIVES
from robustlab.certify import certify_model
from robustlab.data import list_datasets
from robustlab.detection import DEFAULT_NOISE_GRID, DetectionProtocol, list_detectors
from robustlab.evaluation import evaluate_robustness
from robustlab.evaluation.l0 import DEFAULT_ATTACKS as L0_ATTACKS
from robustlab.evaluation.suite import SUITES
from robustlab.explain import explain_robustness
from robustlab.models import list_models, model_options
from robustlab.training import build_optimizer
from robustlab.training.objectives import TRADES, AdversarialTraining
from robustlab.training.robust_monitor import HeldOutRobustness

DEFENSES = tuple(OBJECTIVES)  # one entry per objective the app can build


def _lib(function: Callable, name: str) -> Any:
    """The library's default of ``function``'s parameter ``name``: the one source of it."""
    return inspect.signature(function).parameters[name].default


def _range(default: Any, low: float | None = None, high: float | None = None, **kw: Any) -> Any:
    return field(default=default, metadata={"range": (low, high), **kw})


def _choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class DataConfig:
    name: str = _choice("digits", *list_datasets())
    root: Optional[str] = None
    val_fraction: float = _range(0.15, 0.01, 0.9)
    batch_size: int = _range(64, 1)
    crop_padding: int = _range(0, 0)
    horizontal_flip: bool = False
    max_train: Optional[int] = _range(None, 1)


def _model_config() -> type:
    """``_target_``, ``name`` and every option of every registered model, None by default.

    None means "the model's own default" (``build_model`` drops it), so every option can be
    set from the command line (``model.width=2``) while the defaults live in the model code;
    ``validate_config`` rejects an option the chosen model does not have.
    """
    options = sorted({option for name in list_models() for option in model_options(name)})
    fields = [("_target_", str, "robustlab.models.create_model"), ("name", str, "resnet20")]
    fields += [(option, Optional[Any], None) for option in options]
    return make_dataclass("ModelConfig", fields)


ModelConfig = _model_config()


@dataclass
class TrainConfig:
    epochs: int = _range(15, 1)
    optimizer: str = _choice("sgd", "sgd", "adam", "adamw")
    lr: float = _range(_lib(build_optimizer, "lr"), 0.0, exclusive_low=True)
    momentum: float = _range(_lib(build_optimizer, "momentum"), 0.0, 0.999)
    weight_decay: float = _range(_lib(build_optimizer, "weight_decay"), 0.0)
    nesterov: bool = _lib(build_optimizer, "nesterov")
    scheduler: str = _choice("cosine", "constant", "cosine", "step", "onecycle")
    warmup_epochs: float = _range(0.0, 0.0)
    amp: bool = False


@dataclass
class DefenseConfig:
    name: str = _choice("none", *DEFENSES)
    eps: float = _range(0.1, 0.0, 1.0)
    steps: int = _range(7, 1)
    step_size: float = _range(0.25, 0.0, exclusive_low=True)  # alpha = step_size * eps
    random_start: bool = _lib(AdversarialTraining, "random_start")
    mix: float = _range(_lib(AdversarialTraining, "mix"), 0.0, 1.0)
    model_mode: str = _choice(_lib(AdversarialTraining, "model_mode"), "eval", "train")
    eps_warmup_epochs: int = _range(_lib(AdversarialTraining, "warmup_epochs"), 0)
    beta: float = _range(_lib(TRADES, "beta"), 0.0)
    temperature: float = _range(20.0, 0.0, exclusive_low=True)
    sigma: float = _range(0.25, 0.0)  # gaussian_noise: std of the training noise
    teacher_epochs: Optional[int] = _range(None, 1)
    monitor_heldout: bool = False
    heldout_size: int = _range(128, 1)
    heldout_steps: int = _range(_lib(HeldOutRobustness, "steps"), 1)


@dataclass
class AttackConfig:
    name: str = MISSING
    steps: Optional[int] = _range(None, 1)
    step_size: Optional[float] = _range(None, 0.0, exclusive_low=True)  # alpha = step_size * eps
    restarts: int = _range(1, 1)
    loss: str = _choice("ce", "ce", "margin")
    norm: Optional[str] = _choice(None, "Linf", "L2", "L1")  # None: the attack's own (pgd_l2: L2)
    early_stop: bool = True
    eps: Optional[List[float]] = field(default=None, metadata={"range": (0.0, None)})  # own grid
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class L0EvalConfig:
    # pixel budgets (changed pixels) of the L0 curves; null or [] = no L0 evaluation
    budgets: Optional[List[int]] = field(default=None, metadata={"range": (0, None)})
    # catalogue names of the sparse attacks, keyed in results.json by their lower-case name
    attacks: List[str] = field(default_factory=lambda: [s.name for s in L0_ATTACKS.values()])
    options: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per attack name
    max_examples: Optional[int] = _range(None, 1)  # null: every example the evaluation attacks


@dataclass
class EvalConfig:
    eps: List[float] = field(
        default_factory=lambda: [0.05, 0.1, 0.2], metadata={"range": (0.0, None)}
    )
    attacks: Dict[str, AttackConfig] = field(default_factory=dict)
    max_examples: Optional[int] = _range(None, 1)
    batch_size: int = _range(512, 1)
    large_eps: Optional[float] = _range(0.5, 0.0, exclusive_low=True)
    # eps-grid schedule for PGD: "continuation" (one stream, survivors go on with a few more
    # steps at each larger eps) or "full" (the whole attack again at every eps)
    schedule: str = _choice(_lib(evaluate_robustness, "schedule"), "continuation", "full")
    # null: a quarter of the attack's steps
    continuation_steps: Optional[int] = _range(_lib(evaluate_robustness, "continuation_steps"), 1)
    # the worst-case suite on the survivors of the configured attacks: "standard" (APGD-CE,
    # APGD-T, Square: AutoAttack's strength), "fast" (a cheaper schedule), "none"
    suite: str = _choice("standard", *SUITES)
    l0: L0EvalConfig = field(default_factory=L0EvalConfig)


@dataclass
class DetectorConfig:
    name: str = _choice("none", "none", *list_detectors(), "all")
    attacks: List[str] = field(default_factory=lambda: ["fgsm", "pgd"])
    eps: List[float] = field(default_factory=lambda: [0.1], metadata={"range": (0.0, None)})
    fit_on: Optional[str] = "fgsm"
    unseen: List[str] = field(default_factory=list)
    adaptive: bool = True
    adaptive_weight: float = _range(DetectionProtocol.adaptive_weight, 0.0)
    noise_grid: List[float] = field(default_factory=lambda: list(DEFAULT_NOISE_GRID))
    max_examples: Optional[int] = _range(400, 1)


@dataclass
class ExplainConfig:
    name: str = _choice("none", "none", "default")
    eps: Optional[float] = _range(None, 0.0, exclusive_low=True)  # null: the middle eval eps
    methods: List[str] = field(default_factory=lambda: list(_lib(explain_robustness, "methods")))
    max_examples: int = _range(_lib(explain_robustness, "max_examples"), 1)
    k: Optional[int] = _range(_lib(explain_robustness, "k"), 1)  # null: an eighth of the pixels
    faithfulness_steps: int = _range(_lib(explain_robustness, "faithfulness_steps"), 2)
    sanity: bool = _lib(explain_robustness, "sanity")


@dataclass
class CertifyConfig:
    name: str = _choice("none", "none", "default")
    sigma: Optional[float] = _range(None, 0.0, exclusive_low=True)  # null: defense.sigma
    n0: int = _range(_lib(certify_model, "n0"), 1)
    n: int = _range(_lib(certify_model, "n"), 1)
    alpha: float = _range(_lib(certify_model, "alpha"), 0.0, 1.0, exclusive_low=True)
    radii: List[float] = field(
        default_factory=lambda: list(_lib(certify_model, "radii")), metadata={"range": (0.0, None)}
    )
    batch_size: int = _range(_lib(certify_model, "batch_size"), 1)
    lipschitz: bool = _lib(certify_model, "lipschitz")
    min_norm: List[str] = field(default_factory=lambda: list(_lib(certify_model, "min_norm")))
    min_norm_steps: int = _range(_lib(certify_model, "min_norm_steps"), 1)
    max_examples: Optional[int] = _range(None, 1)


@dataclass
class LoggerConfig:
    name: str = _choice("wandb", "wandb", "none")
    mode: str = _choice("offline", "offline", "online", "disabled")
    project: str = "robustlab"
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    log_checkpoints: bool = False


@dataclass
class PathsConfig:
    checkpoints: str = "checkpoints"
    checkpoint: Optional[str] = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    certify: CertifyConfig = field(default_factory=CertifyConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = _range(0, 0)
    device: str = "auto"
    threads: Optional[int] = _range(None, 1)  # torch CPU threads; 1 for parallel launchers
    reuse_checkpoints: bool = True


def register_schemas() -> None:
    """Store the schema so that ``conf/config.yaml`` can name it first in its defaults list."""
    ConfigStore.instance().store(name="schema", node=Config)

"""The sweeper's structured config, registered as ``hydra/sweeper=robustlab_optuna``."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RobustlabOptunaSweeperConf:
    """Settings of a study; every key can be overridden (``hydra.sweeper.n_trials=2``)."""

    _target_: str = "hydra_plugins.robustlab_optuna_sweeper.optuna_sweeper.RobustlabOptunaSweeper"
    # the sampler is built by the study, which offsets its seed by the trials already run:
    # a re-run with the same seed must not draw the points of the first run again
    _recursive_: bool = False
    study_name: str = "study"
    # a file path: Optuna's journal file (safe for several processes, also on NFS);
    # a URL (sqlite:///path/study.db, postgresql://...): an SQL storage
    storage: str = "${hydra.sweep.dir}/optuna_journal.log"
    # names in the dict a job returns, one per objective, and their directions
    objectives: List[str] = field(default_factory=lambda: ["clean_accuracy"])
    directions: List[str] = field(default_factory=lambda: ["maximize"])
    # new trials this run adds to the study (a re-run continues it)
    n_trials: int = 10
    # trials asked and launched together (the launcher's parallelism: joblib, SLURM arrays)
    n_jobs: int = 1
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.NSGAIISampler", "seed": None}
    )
    # a returned value that, when true, marks a trial untrustworthy: it is told as pruned, so it
    # never sits on the study's Pareto front nor breeds the next generation
    flag_key: Optional[str] = None
    # key -> Hydra sweep syntax: interval(a, b), tag(log, interval(a, b)), range(a, b), choice(...)
    params: Dict[str, str] = field(default_factory=dict)
    # key -> value -> params searched only when ``key`` takes ``value`` (e.g. per defense)
    conditional: Dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="robustlab_optuna",
    node=RobustlabOptunaSweeperConf,
    provider="robustlab_optuna_sweeper",
)

"""The Hydra entry of the sweeper; Optuna is imported only when a study runs, since Hydra
imports every plugin module at each start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class RobustlabOptunaSweeper(Sweeper):
    """Asks Optuna for trials, launches them through the configured launcher, tells the
    returned objectives back, and keeps the study in ``storage`` so a re-run continues it."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from hydra_plugins.robustlab_optuna_sweeper._study import run_study

        assert self.config is not None and self.launcher is not None
        # as Hydra's basic sweeper does: the report and the W&B group read the sweep's config
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        settings = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in self.settings.items()
        }
        run_study(settings, arguments, self.launcher, str(sweep_dir))

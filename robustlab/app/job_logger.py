"""The W&B logger of a job, named and grouped after its Hydra sweep."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from robustlab.app.builders import plain_config
from robustlab.app.jobs import in_multirun
from robustlab.app.option_schemas import LoggerConfig
from robustlab.tracking.wandb_logger import WandbLogger


def make_logger(cfg: DictConfig, out: Path, job_type: str) -> WandbLogger:
    """A W&B run in a group named after the sweep; a disabled no-op for ``logger=none``."""
    settings = cfg.logger
    if settings.name == "none":  # a disabled run with the W&B defaults: every call a no-op
        settings = OmegaConf.structured(LoggerConfig(name="none", mode="disabled"))
    group = settings.group
    if group is None and in_multirun():
        group = Path(HydraConfig.get().sweep.dir).name
    return WandbLogger(
        project=settings.project,
        config=plain_config(cfg),
        mode=settings.mode,
        group=group,
        job_type=job_type,
        name=f"{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}",
        tags=list(settings.tags) + [cfg.model.name, cfg.defense.name, cfg.data.name],
        directory=out,
        log_checkpoints=settings.log_checkpoints,
    )


@contextmanager
def job_logger(cfg: DictConfig, out: Path, job_type: str) -> Iterator[WandbLogger]:
    """A W&B run that is always finished, with a failure exit code if the body raised."""
    logger = make_logger(cfg, out, job_type)
    exit_code = 1
    try:
        yield logger
        exit_code = 0
    finally:
        logger.finish(exit_code)

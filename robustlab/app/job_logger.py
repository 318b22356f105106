"""The W&B logger of a job, named and grouped after its Hydra sweep."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from robustlab.app.builders import plain_config
from robustlab.app.jobs import in_multirun
from robustlab.app.option_schemas import LoggerConfig
from robustlab.tracking.wandb_logger import WandbLogger

# job_type names the command a run came from (W&B panels filter and group on it)
COMMANDS = {"pipeline": "train", "evaluate": "eval", "detect": "detect"}
SWEEP_FILE = "multirun.yaml"  # Hydra writes it in the sweep folder when the sweep starts


def sweep_started(sweep_dir: Path) -> dt.datetime:
    """When the sweep started: the time Hydra wrote ``multirun.yaml`` (every job of the sweep,
    in any process, reads the same one); now, when there is none yet."""
    try:
        return dt.datetime.fromtimestamp((sweep_dir / SWEEP_FILE).stat().st_mtime)
    except OSError:
        return dt.datetime.now()


def sweep_group(cfg: DictConfig) -> str | None:
    """The W&B group of a job: ``logger.group`` as given in a single run; in a sweep, that group
    (or the experiment's name) plus the sweep's start, e.g. ``tradeoff-2026-12-02-0617``, so
    that runs of one study on two days never share a group."""
    group = cfg.logger.get("group")
    if not in_multirun():
        return group
    hydra = HydraConfig.get()
    base = group or hydra.runtime.choices.get("experiment") or "sweep"
    return f"{base}-{sweep_started(Path(hydra.sweep.dir)):%Y-%m-%d-%H%M}"


def make_logger(cfg: DictConfig, out: Path, job_type: str) -> WandbLogger:
    """A W&B run in a group named after the sweep; a disabled no-op for ``logger=none``."""
    settings = cfg.logger
    if settings.name == "none":  # a disabled run with the W&B defaults: every call a no-op
        settings = OmegaConf.structured(LoggerConfig(name="none", mode="disabled"))
    return WandbLogger(
        project=settings.project,
        config=plain_config(cfg),
        mode=settings.mode,
        group=sweep_group(cfg) if cfg.logger.name != "none" else None,
        job_type=COMMANDS.get(job_type, job_type),
        name=f"{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}",
        tags=list(settings.tags) + [cfg.model.name, cfg.defense.name, cfg.data.name],
        directory=out,
        log_checkpoints=settings.log_checkpoints,
    )


@contextmanager
def job_logger(cfg: DictConfig, out: Path, job_type: str) -> Iterator[WandbLogger]:
    """A W&B run that is always finished, with a failure exit code if the body raised; an
    offline run ends with one line saying where it is and how to upload it."""
    logger = make_logger(cfg, out, job_type)
    exit_code = 1
    try:
        yield logger
        exit_code = 0
    finally:
        offline = logger.offline_dir
        logger.finish(exit_code)
        if offline is not None:
            print(f"W&B offline run: {offline} (upload: wandb sync {offline})")

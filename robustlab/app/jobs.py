"""Running one job safely: start-up, one-line errors, a failed results.json, no broken sweep."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from torch import nn

from robustlab.app.card_stage import publish_card
from robustlab.app.validate import validate_config
from robustlab.devices import resolve_device, seed_everything
from robustlab.distributed import init_distributed, is_main_process
from robustlab.errors import RobustlabError
from robustlab.models import model_param_count, se_overhead
from robustlab.tracking.results import (
    RESULTS_FILE,
    JobIdentity,
    JobResults,
    StageResult,
    failed_payload,
    results_payload,
    write_results,
)
from robustlab.tracking.wandb_logger import WandbLogger

log = logging.getLogger(__name__)
R = TypeVar("R", bound=StageResult)


def job_dir() -> Path:
    """This job's Hydra output directory."""
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    """Whether this job is part of a Hydra multirun (a sweep); False outside Hydra."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_identity(cfg: DictConfig, out: Path, device: torch.device | None = None) -> JobIdentity:
    """The keys that name a job; the overrides are Hydra's when run by Hydra, else none."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return JobIdentity(
        dataset=cfg.data.name,
        model=cfg.model.name,
        defense=cfg.defense.name,
        seed=cfg.seed,
        overrides=overrides,
        job_dir=str(out),
        device=None if device is None else str(device),
    )


def start_job(cfg: DictConfig) -> torch.device:
    """The prologue of every job: check the config, seed everything, pick the device and,
    under torchrun/SLURM, join the process group (each rank on the GPU of its local rank)."""
    validate_config(cfg)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, threads=cfg.threads)
    env = init_distributed(device)
    if env is not None and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
    return device


def run_stage(job: JobResults, name: str, stage: Callable[[], R]) -> R:
    """Run one stage, record its typed result and its wall time under ``name``."""
    started = time.perf_counter()
    result = stage()
    job.add(name, result, time.perf_counter() - started)
    return result


def publish_results(job: JobResults, out: Path, logger: WandbLogger) -> dict[str, Any]:
    """Write the job's results.json atomically (and the files its stages keep beside it, e.g.
    the per-example worst-case record), and send the same numbers to W&B; results.json says
    what the W&B run actually did (``logger_mode``)."""
    job.identity.logger_mode = logger.mode
    payload = results_payload(job)
    written: list[Path] = []
    for result in job.stages.values():
        save = getattr(result, "save_artifacts", None)  # optional part of a stage result
        if save is not None:
            written += save(out)
    write_results(out / RESULTS_FILE, payload)
    logger.log_results(payload)
    logger.log_images(written)
    log.info("results: %s", out / RESULTS_FILE)
    publish_card(payload, out, logger)  # evaluation_card.md/.json, W&B table, printed table
    return payload


def run_job(
    cfg: DictConfig, task: Callable[[DictConfig, Path], dict[str, Any]]
) -> dict[str, Any] | None:
    """Run ``task``; on failure write a failed results.json and, in a sweep, carry on.

    A user error (RobustlabError) in a single run prints one line and exits with code 2; an
    unexpected error keeps its traceback. In a multirun both are logged and recorded as a
    failed job so the remaining jobs and the sweep report still happen.
    """
    out = job_dir()
    try:
        return task(cfg, out)
    except Exception as err:
        trace = None if isinstance(err, RobustlabError) else traceback.format_exc(limit=8)
        failed = failed_payload(job_identity(cfg, out), f"{type(err).__name__}: {err}", trace)
        try:
            if is_main_process():  # under DDP every rank fails alike; rank 0 records it
                write_results(out / RESULTS_FILE, failed)
        except OSError as write_err:
            log.error("could not record the failure in %s: %s", out, write_err)
        if in_multirun():
            log.error("job failed: %s", failed["error"])
            return None
        if isinstance(err, RobustlabError):
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise


def record_model(job: JobResults, model: nn.Module, checkpoint: str) -> None:
    """What results.json says of the model the stages ran on: parameters, checkpoint and, for
    SE models, the SE parameter overhead."""
    overhead = se_overhead(model)
    job.params, job.checkpoint = model_param_count(model), checkpoint
    job.se_overhead = overhead.to_results() if overhead is not None else None

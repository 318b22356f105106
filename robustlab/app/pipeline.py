"""The pipeline of one config: train (or reuse) -> evaluate attacks -> detector -> results.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from robustlab.app.builders import build_data
from robustlab.app.detection_stage import detect_stage
from robustlab.app.evaluation_stage import evaluate_stage
from robustlab.app.jobs import RESULTS_FILE, identity
from robustlab.app.logging_setup import job_logger, record_results
from robustlab.app.training_stage import train_stage
from robustlab.app.validate import validate_config
from robustlab.models import model_param_count
from robustlab.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


def training_cost(trained_results: dict[str, Any]) -> dict[str, Any]:
    """Wall time and gradient evaluations per example, the teacher's included for distillation."""
    teacher = trained_results.get("teacher") or {}
    evals = (trained_results.get("grad_evals_per_example") or 0) + (
        teacher.get("grad_evals_per_example") or 0
    )
    seconds = (trained_results.get("train_seconds") or 0) + (teacher.get("train_seconds") or 0)
    return {
        "grad_evals_per_example": evals,
        "train_seconds": seconds,
        "epochs": trained_results.get("epochs"),
        "best_epoch": trained_results.get("best_epoch"),
        "reused_checkpoint": trained_results.get("reused_checkpoint", False),
    }


def run_pipeline(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Run every stage of one job and write its results.json; W&B is always closed."""
    validate_config(cfg)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, threads=cfg.threads)
    results: dict[str, Any] = {"status": "running", **identity(cfg), "device": str(device)}
    with job_logger(cfg, out, job_type="pipeline") as logger:
        bundle = build_data(cfg)
        trained = train_stage(cfg, bundle, device, log_metrics=logger.log_epoch)
        model = trained.model
        results.update(params=model_param_count(model), checkpoint=str(trained.directory))
        results["training_cost"] = training_cost(trained.results)
        results["timing_s"] = {"train": trained.results["stage_seconds"]}
        results["warnings"] = list(trained.results.get("warnings", []))

        started = time.perf_counter()
        results.update(evaluate_stage(cfg, model, bundle, merge_warnings=results["warnings"]))
        results["timing_s"]["evaluate"] = time.perf_counter() - started

        if cfg.detector.name != "none":
            started = time.perf_counter()
            results["detection"] = detect_stage(cfg, model, bundle)
            results["timing_s"]["detect"] = time.perf_counter() - started
        record_results(results, out, logger)
        logger.log_checkpoint(
            trained.directory, name=f"{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}"
        )
    log.info("results: %s", out / RESULTS_FILE)
    return results

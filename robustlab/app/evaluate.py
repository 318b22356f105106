"""``robustlab-eval``: evaluate a saved checkpoint under the configured attacks."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.builders import build_data
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.evaluation_stage import evaluate_stage
from robustlab.app.jobs import RESULTS_FILE, identity, run_job
from robustlab.app.logging_setup import make_logger
from robustlab.app.saved_model import load_saved_model, with_saved_identity
from robustlab.app.schema import register_schemas
from robustlab.app.validate import validate_config
from robustlab.fileio import write_json_atomic
from robustlab.models import model_param_count
from robustlab.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


def run_evaluation(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Load the checkpoint, evaluate it, write results.json and log to W&B."""
    validate_config(cfg)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, threads=cfg.threads)
    saved = load_saved_model(cfg, device)
    job_cfg = with_saved_identity(cfg, saved.config)
    results: dict[str, Any] = {"status": "running", **identity(job_cfg), "checkpoint": str(saved.directory)}
    logger = make_logger(job_cfg, out, job_type="evaluate")
    exit_code = 1
    try:
        bundle = build_data(job_cfg)
        started = time.perf_counter()
        results["params"] = model_param_count(saved.model)
        results.update(evaluate_stage(job_cfg, saved.model, bundle))
        results["timing_s"] = {"evaluate": time.perf_counter() - started}
        results["status"] = "ok"
        write_json_atomic(out / RESULTS_FILE, results)
        logger.log_results(results)
        exit_code = 0
        return results
    finally:
        logger.finish(exit_code)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _evaluate(cfg: DictConfig) -> Any:
    results = run_job(cfg, run_evaluation)
    return None if results is None else results.get("clean_accuracy")


def main() -> None:
    register_schemas()
    _evaluate()


if __name__ == "__main__":
    main()

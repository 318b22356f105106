"""``robustlab-detect``: fit and evaluate the Mahalanobis detector for a saved checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.builders import build_data
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.detection_stage import detect_stage
from robustlab.app.jobs import RESULTS_FILE, identity, run_job
from robustlab.app.logging_setup import make_logger
from robustlab.app.saved_model import load_saved_model, with_saved_identity
from robustlab.app.schema import register_schemas
from robustlab.app.validate import validate_config
from robustlab.errors import ConfigError
from robustlab.fileio import write_json_atomic
from robustlab.runtime import resolve_device, seed_everything


def run_detection(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Load the checkpoint, fit the detector on its training split, evaluate, write results."""
    validate_config(cfg)
    if cfg.detector.name == "none":
        raise ConfigError("detector=none: choose detector=mahalanobis for robustlab-detect")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, threads=cfg.threads)
    saved = load_saved_model(cfg, device)
    job_cfg = with_saved_identity(cfg, saved.config)
    results: dict[str, Any] = {"status": "running", **identity(job_cfg), "checkpoint": str(saved.directory)}
    logger = make_logger(job_cfg, out, job_type="detect")
    exit_code = 1
    try:
        started = time.perf_counter()
        results["detection"] = detect_stage(job_cfg, saved.model, build_data(job_cfg))
        results["timing_s"] = {"detect": time.perf_counter() - started}
        results["status"] = "ok"
        write_json_atomic(out / RESULTS_FILE, results)
        logger.log_results(results)
        exit_code = 0
        return results
    finally:
        logger.finish(exit_code)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _detect(cfg: DictConfig) -> Any:
    run_job(cfg, run_detection)


def main() -> None:
    register_schemas()
    _detect()


if __name__ == "__main__":
    main()

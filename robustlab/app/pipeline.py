"""One config's pipeline: train -> evaluate -> detect / explain / certify -> results.json.

Callable from plain Python with a composed config (``run_pipeline(cfg, Path("out"))``); under
``robustlab-train`` Hydra supplies the config and the output directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from robustlab.app.builders import build_data
from robustlab.app.certify_stage import certify_stage
from robustlab.app.detection_stage import detect_stage
from robustlab.app.evaluation_stage import evaluate_stage, kept_pairs
from robustlab.app.explain_stage import explain_stage
from robustlab.app.job_logger import job_logger
from robustlab.app.jobs import job_identity, publish_results, run_stage, start_job
from robustlab.app.training_stage import train_stage
from robustlab.models import model_param_count
from robustlab.tracking.results import JobResults


def run_pipeline(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Run every stage of one job, write its results.json and return it; W&B is always closed."""
    device = start_job(cfg)
    out = Path(out)
    job = JobResults(job_identity(cfg, out, device))
    with job_logger(cfg, out, job_type="pipeline") as logger:
        bundle = build_data(cfg)
        started = time.perf_counter()
        trained = train_stage(cfg, bundle, device, logger.log_epoch)
        job.add("train", trained.summary, time.perf_counter() - started)
        model = trained.model
        job.params, job.checkpoint = model_param_count(model), str(trained.directory)
        # the evaluation keeps the adversarial examples later stages use: one accuracy per attack
        keep = kept_pairs(cfg)
        report = run_stage(job, "evaluate", lambda: evaluate_stage(cfg, model, bundle, keep))
        if cfg.detector.name != "none":
            run_stage(job, "detect", lambda: detect_stage(cfg, model, bundle, report))
        if cfg.explain.name != "none":
            run_stage(job, "explain", lambda: explain_stage(cfg, model, bundle, report))
        if cfg.certify.name != "none":
            run_stage(job, "certify", lambda: certify_stage(cfg, model, bundle, report))
        payload = publish_results(job, out, logger)
        logger.log_checkpoint(
            trained.directory, name=f"{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}"
        )
    return payload

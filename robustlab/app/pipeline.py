"""One config's pipeline: train -> evaluate -> detect / explain / certify -> results.json.

Callable from plain Python with a composed config (``run_pipeline(cfg, Path("out"))``); under
``robustlab-train`` Hydra supplies the config and the output directory. Each stage reads its
own config node; what it needs from another stage (the evaluation's attacks and report, the
training noise) is passed to it here as plain values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from robustlab.app.builders import attack_specs, build_data, stage_inputs
from robustlab.app.certify_stage import certify_stage
from robustlab.app.detection_stage import detect_stage, detection_pairs
from robustlab.app.evaluation_stage import evaluate_stage
from robustlab.app.explain_stage import explain_eps, explain_stage, explained_pairs
from robustlab.app.external_model import refuse_training
from robustlab.app.job_logger import job_logger
from robustlab.app.jobs import job_identity, publish_results, record_model, run_stage, start_job
from robustlab.app.training_stage import train_stage
from robustlab.distributed import is_main_process
from robustlab.tracking.results import JobResults, results_payload


def later_stage_pairs(cfg: DictConfig) -> list[tuple[str, float]]:
    """The ``(attack, eps)`` adversarials the evaluation keeps for the later stages (one robust
    accuracy per attack in the job): the detector's pairs, then the explanation stage's."""
    specs, grid = attack_specs(cfg.eval), list(cfg.eval.eps)
    pairs = detection_pairs(cfg.detector, specs, grid)
    explained = explained_pairs(cfg.explain, grid, list(specs))
    return pairs + [pair for pair in explained if pair not in pairs]


def run_pipeline(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Run every stage of one job, write its results.json and return it; W&B is always closed."""
    device = start_job(cfg)
    refuse_training(cfg.model)  # model=external is for robustlab-eval
    out = Path(out)
    job = JobResults(job_identity(cfg, out, device))
    if not is_main_process():  # under DDP rank 0 alone logs to W&B and writes results.json
        cfg.logger.mode = "disabled"
    with job_logger(cfg, out, job_type="pipeline") as logger:
        bundle = build_data(cfg)
        started = time.perf_counter()
        trained = train_stage(cfg, bundle, device, logger.log_epoch)
        job.add("train", trained.summary, time.perf_counter() - started)
        record_model(job, trained.model, str(trained.directory))
        inputs = stage_inputs(cfg, trained.model, bundle)
        keep = later_stage_pairs(cfg)
        report = run_stage(job, "evaluate", lambda: evaluate_stage(cfg.eval, inputs, keep, out))
        # under DDP the later stages run on rank 0 alone (the other ranks skip them)
        if cfg.detector.name != "none" and is_main_process():
            specs, dropout = attack_specs(cfg.eval), bool(cfg.model.get("dropout"))
            run_stage(
                job, "detect", lambda: detect_stage(cfg.detector, inputs, specs, dropout, report)
            )
        if cfg.explain.name != "none" and is_main_process():
            eps = explain_eps(cfg.explain, list(cfg.eval.eps))
            run_stage(job, "explain", lambda: explain_stage(cfg.explain, inputs, eps, report))
        if cfg.certify.name != "none" and is_main_process():
            sigma = trained.noise_sigma
            run_stage(job, "certify", lambda: certify_stage(cfg.certify, inputs, sigma, report))
        payload = publish_results(job, out, logger) if is_main_process() else results_payload(job)
        logger.log_checkpoint(
            trained.directory, name=f"{cfg.model.name}-{cfg.defense.name}-s{cfg.seed}"
        )
    return payload

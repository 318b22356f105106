"""``robustlab-train``: the whole pipeline for one config, or a sweep with ``-m``."""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.cli import strict_main
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.jobs import run_job
from robustlab.app.pipeline import run_pipeline
from robustlab.app.ranks import worker_argv
from robustlab.distributed import shutdown_distributed
from robustlab.tracking.results import summary_metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _train(cfg: DictConfig) -> Any:
    results = run_job(cfg, run_pipeline)
    # what sweepers optimise: the flat summary (clean_accuracy, robust_accuracy/worst_case@0.1,
    # masking_suspected...), from which a sweeper's config picks its objectives by name
    return None if results is None else summary_metrics(results)


def main() -> None:
    """The console entry point: a strict command line, then the Hydra app (under torchrun or
    SLURM, on every rank; only rank 0 writes)."""
    sys.argv[1:] = worker_argv(sys.argv[1:])
    try:
        strict_main(_train)
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    main()

"""``robustlab-eval``: evaluate a saved checkpoint under the configured attacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.cli import strict_main
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.evaluation_stage import evaluate_stage
from robustlab.app.jobs import run_job
from robustlab.app.saved_model import check_saved_identity, run_saved_model_job


def run_evaluation(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Clean and robust accuracy of ``paths.checkpoint`` under ``eval.attacks``; the state file
    in ``out`` makes it resumable, and under torchrun the examples are sharded."""
    return run_saved_model_job(
        cfg, out, "evaluate", lambda job_cfg, inputs: evaluate_stage(job_cfg.eval, inputs, out=out)
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _evaluate(cfg: DictConfig) -> Any:
    results = run_job(cfg, run_evaluation)
    return None if results is None else results.get("clean_accuracy")


def main() -> None:
    """The console entry point: a strict command line (that does not contradict the
    checkpoint), then the Hydra app."""
    strict_main(_evaluate, check_job=check_saved_identity)


if __name__ == "__main__":
    main()

"""``robustlab-train``: the whole pipeline for one config, or a sweep with ``-m``."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.cli import strict_main
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.jobs import run_job
from robustlab.app.pipeline import run_pipeline


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _train(cfg: DictConfig) -> Any:
    results = run_job(cfg, run_pipeline)
    # the return value is what sweepers optimise: clean accuracy of the job
    return None if results is None else results.get("clean_accuracy")


def main() -> None:
    """The console entry point: a strict command line, then the Hydra app."""
    strict_main(_train)


if __name__ == "__main__":
    main()

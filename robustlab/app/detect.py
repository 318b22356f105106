"""``robustlab-detect``: fit and evaluate the configured detectors for a saved checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.builders import StageInputs, attack_specs
from robustlab.app.cli import strict_main
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.detection_stage import detect_stage
from robustlab.app.jobs import run_job
from robustlab.app.saved_model import run_saved_model_job
from robustlab.detection import DetectionReport
from robustlab.errors import ConfigError


def run_detection(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Fit the detector for ``paths.checkpoint`` on its training split and evaluate it."""
    if cfg.detector.name == "none":
        raise ConfigError(
            "detector=none: choose detector=mahalanobis, kd_bu, lid or all for robustlab-detect"
        )

    def stage(job_cfg: DictConfig, inputs: StageInputs) -> DetectionReport:
        specs, dropout = attack_specs(job_cfg.eval), bool(job_cfg.model.get("dropout"))
        return detect_stage(job_cfg.detector, inputs, specs, dropout)

    return run_saved_model_job(cfg, out, "detect", stage)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _detect(cfg: DictConfig) -> Any:
    run_job(cfg, run_detection)


def main() -> None:
    """The console entry point: a strict command line, then the Hydra app."""
    strict_main(_detect)


if __name__ == "__main__":
    main()

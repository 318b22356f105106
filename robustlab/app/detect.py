"""``robustlab-detect``: fit and evaluate the configured detectors for a saved checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.detection_stage import detect_stage
from robustlab.app.jobs import run_job
from robustlab.app.saved_model import run_saved_model_job
from robustlab.app.schema import register_schemas
from robustlab.errors import ConfigError


def run_detection(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Fit the detector for ``paths.checkpoint`` on its training split and evaluate it."""
    if cfg.detector.name == "none":
        raise ConfigError(
            "detector=none: choose detector=mahalanobis, kd_bu, lid or all for robustlab-detect"
        )
    return run_saved_model_job(cfg, out, "detect", detect_stage)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _detect(cfg: DictConfig) -> Any:
    run_job(cfg, run_detection)


def main() -> None:
    register_schemas()
    _detect()


if __name__ == "__main__":
    main()

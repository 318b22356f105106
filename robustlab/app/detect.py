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
from robustlab.app.saved_model import check_saved_identity, run_saved_model_job
from robustlab.detection import DetectionReport
from robustlab.errors import ConfigError
from robustlab.report.detection_table import job_detection_table


def run_detection(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Fit the detector for ``paths.checkpoint`` on its training split, evaluate it and print
    the detection summary table."""
    if cfg.detector.name == "none":
        raise ConfigError(
            "detector=none: choose detector=mahalanobis, kd_bu, lid or all for robustlab-detect"
        )

    def stage(job_cfg: DictConfig, inputs: StageInputs) -> DetectionReport:
        specs, dropout = attack_specs(job_cfg.eval), bool(job_cfg.model.get("dropout"))
        return detect_stage(job_cfg.detector, inputs, specs, dropout)

    results = run_saved_model_job(cfg, out, "detect", stage)
    # the command line's closing lines, as robustlab-eval prints its card: stdout, not the log
    table = job_detection_table(results, detector=cfg.detector.name)
    warned = [w for w in results.get("warnings", []) if w.startswith("detection")]
    print(f"\n{table}" + "".join(f"\nwarning: {w}" for w in warned), flush=True)
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _detect(cfg: DictConfig) -> Any:
    run_job(cfg, run_detection)


def main() -> None:
    """The console entry point: a strict command line (that does not contradict the
    checkpoint), then the Hydra app."""
    strict_main(_detect, check_job=check_saved_identity)


if __name__ == "__main__":
    main()

"""Hydra callback: check every job of a sweep before it starts, write its report at the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from robustlab.app.validate import validate_sweep
from robustlab.errors import ConfigError
from robustlab.report.sweep import write_report

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """Summarise ``hydra.sweep.dir`` into CSV, plots and Markdown after the last job.

    A report failure is logged, never raised: the jobs' own results are already on disk and
    ``robustlab-report DIR`` can rebuild the report at any time.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Range-check every job of the sweep first: one error line and exit code 2."""
        try:
            validate_sweep(config)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = write_report(sweep_dir)
        except Exception as err:
            log.error(
                "the sweep report could not be written (%s); rerun robustlab-report %s",
                err,
                sweep_dir,
            )
            return
        print(f"report: {paths.summary}")

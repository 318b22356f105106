"""Hydra callback: write a sweep's report when its last job has finished (every job was
checked before the sweep started: ``robustlab.app.cli``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from robustlab.report.sweep import write_report

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """Summarise ``hydra.sweep.dir`` into CSV, plots and Markdown after the last job.

    A report failure is logged, never raised: the jobs' own results are already on disk and
    ``robustlab-report DIR`` can rebuild the report at any time.
    """

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

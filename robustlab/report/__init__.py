"""The sweep report: a sweep folder's results read back, into tables, plots and a summary.

[`write_report`][robustlab.report.write_report] is the one entry (behind ``robustlab-report`` and
the end-of-sweep Hydra callback). It reads every job's ``results.json``
(``robustlab.report.records``), groups jobs by configuration across seeds
(``robustlab.report.tables``), draws the PNG figures (``robustlab.report.plots``, through
[`robustlab.figures`][robustlab.figures]) and writes ``summary.md`` (``robustlab.report.markdown``).
Per-job tracking (the results contract and the W&B logger) lives in ``robustlab.tracking``.
Importing this package needs no torch: only the detection ROC figure of jobs that kept per-example
scores (``robustlab.report.detection_plots``) imports it, when it is drawn.
"""

from robustlab.report.detection_table import detection_table
from robustlab.report.plots import (
    PlotOutcome,
    pareto_front,
    plot_robust_curves,
    plot_tradeoff_frontier,
)
from robustlab.report.records import RunRecord, load_run_records
from robustlab.report.sweep import ReportPaths, write_report
from robustlab.report.tables import ConfigGroup, aggregate_over_seeds, build_table

__all__ = [
    "ConfigGroup",
    "PlotOutcome",
    "ReportPaths",
    "RunRecord",
    "aggregate_over_seeds",
    "build_table",
    "detection_table",
    "load_run_records",
    "pareto_front",
    "plot_robust_curves",
    "plot_tradeoff_frontier",
    "write_report",
]

"""The sweep report: a sweep folder's results read back, into tables, plots and a summary.

:func:`write_report` is the one entry (behind ``robustlab-report`` and the end-of-sweep Hydra
callback). It reads every job's ``results.json`` (:mod:`robustlab.report.records`), groups jobs
by configuration across seeds (:mod:`robustlab.report.tables`), draws the PNG figures and
writes ``summary.md`` (:mod:`robustlab.report.markdown`). Per-job tracking (the results
contract and the W&B logger) lives in :mod:`robustlab.tracking`; nothing here needs torch.
"""

from robustlab.report.records import RunRecord, load_run_records
from robustlab.report.sweep import ReportPaths, write_report
from robustlab.report.tables import ConfigGroup, aggregate_over_seeds

__all__ = [
    "ConfigGroup",
    "ReportPaths",
    "RunRecord",
    "aggregate_over_seeds",
    "load_run_records",
    "write_report",
]

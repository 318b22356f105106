"""Per-job tracking: the results contract and the W&B logger.

A job's typed stage results become one ``results.json`` object through
``results_payload`` (written atomically by ``write_results``), and the same numbers,
flattened by ``summary_metrics``, go to Weights & Biases through ``WandbLogger``
(offline by default; wandb is imported inside its methods only). A sweep's W&B workspace is
built in code from a ``DashboardSpec`` (``workspace_spec``, ``save_workspace``; wandb-workspaces
is imported inside them only). The sweep report
([`robustlab.report`][robustlab.report]) reads the same schema back.
"""

from robustlab.tracking.dashboard import (
    DashboardSpec,
    save_report,
    save_workspace,
    workspace_spec,
)
from robustlab.tracking.results import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    JobIdentity,
    JobResults,
    StageResult,
    failed_payload,
    results_payload,
    summary_metrics,
    write_results,
)
from robustlab.tracking.wandb_logger import WandbLogger

__all__ = [
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "DashboardSpec",
    "JobIdentity",
    "JobResults",
    "StageResult",
    "WandbLogger",
    "failed_payload",
    "results_payload",
    "save_report",
    "save_workspace",
    "summary_metrics",
    "workspace_spec",
    "write_results",
]

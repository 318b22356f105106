"""Per-job tracking: the results contract and the W&B logger.

A job's typed stage results become one ``results.json`` object through
:func:`results_payload` (written atomically by :func:`write_results`), and the same numbers,
flattened by :func:`summary_metrics`, go to Weights & Biases through :class:`WandbLogger`
(offline by default; wandb is imported inside its methods only). The sweep report
(:mod:`robustlab.report`) reads the same schema back.
"""

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
    "JobIdentity",
    "JobResults",
    "StageResult",
    "WandbLogger",
    "failed_payload",
    "results_payload",
    "summary_metrics",
    "write_results",
]

"""The evaluation card of a job: ``evaluation_card.md``/``.json`` beside results.json, a W&B
table, and the card's table printed at the end of every ``robustlab-train``/``robustlab-eval``
run (the command line's answer to "how robust, and can I believe it?")."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from robustlab.evaluation.card import EvaluationCard
from robustlab.models.layers.normalize import NO_PREPROCESSING
from robustlab.tracking.wandb_logger import WandbLogger

log = logging.getLogger(__name__)


def job_card(payload: dict[str, Any]) -> EvaluationCard | None:
    """The card of a job's results.json object, or None when the job evaluated nothing."""
    if "worst_case" not in payload.get("robust_accuracy", {}):
        return None
    seconds = payload.get("timing_s", {}).get("evaluate")
    preprocessing = str(payload.get("preprocessing", NO_PREPROCESSING))
    return EvaluationCard.from_results(payload, preprocessing=preprocessing, seconds=seconds)


def publish_card(payload: dict[str, Any], out: Path, logger: WandbLogger) -> list[Path]:
    """Write the job's card beside its results.json, log it to W&B and print its table;
    nothing when the job has no worst case. Returns the files written."""
    card = job_card(payload)
    if card is None:
        return []
    written = card.save(out)
    logger.log_card(card.to_json())
    # the command line's closing lines: stdout, not the log, so they show with logging off
    print(f"\n{card.table()}\nchecks warning: {', '.join(card.warnings) or 'none'}")
    print(f"{card.trust}\ncard: {written[0]}", flush=True)
    return written


__all__ = ["job_card", "publish_card"]

"""Weights & Biases logging; the only module that imports wandb (lazily, inside methods).

Offline by default, so no account or network is needed (``wandb sync`` uploads later). Any
failure of W&B itself is logged as a warning and turns the logger into a no-op: a missing API
key or a dead network must never fail a training run or break a sweep.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from robustlab.errors import ConfigError
from robustlab.tracking.dashboard import eps_rows
from robustlab.tracking.results import summary_metrics

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")  # wandb.init's modes


class WandbLogger:
    """One W&B run per pipeline job; safe to use when W&B is unavailable.

    Args:
        project: The W&B project.
        config: The job's resolved config, as plain containers.
        mode: ``"offline"`` (default: no account needed), ``"online"`` or ``"disabled"``.
        group: The W&B group (a sweep's runs share one).
        job_type: The command the run came from (``train``, ``eval``, ``detect``).
        name: The run's display name.
        tags: The run's tags.
        directory: Where W&B keeps the run's files (the job's directory).
        log_checkpoints: Whether ``log_checkpoint`` uploads checkpoints as artifacts.

    Attributes:
        mode: What the run actually does, as results.json records it: ``"online"``,
            ``"offline"``, ``"disabled"``, ``"fell back to offline: <reason>"`` (an online run
            that could not start, e.g. without an API key) or ``"disabled: <reason>"``.
        offline_dir: An offline run's folder, the argument of ``wandb sync`` (else None).
    """

    def __init__(
        self,
        project: str,
        config: dict[str, Any],
        *,
        mode: str = "offline",
        group: str | None = None,
        job_type: str = "train",
        name: str | None = None,
        tags: list[str] | None = None,
        directory: str | Path | None = None,
        log_checkpoints: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"W&B mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.log_checkpoints = log_checkpoints
        self._run = None
        self.mode = mode
        self.offline_dir: Path | None = None
        if mode == "disabled":
            return
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        settings = dict(
            project=project,
            config=config,
            group=group,
            job_type=job_type,
            name=name,
            tags=tags,
            dir=str(directory) if directory is not None else None,
        )
        try:
            self._run = _init_run(mode, settings)
        except Exception as err:  # W&B must never take a run down with it
            reason = _reason(err)
            if mode != "online":
                log.warning("W&B disabled for this run (%s)", reason)
                self.mode = f"disabled: {reason}"
                return
            # an online run that cannot start (no API key, no network) still keeps its numbers
            log.warning("W&B online run failed (%s): logging offline instead", reason)
            self._start_offline(settings, reason)
        if self._run is not None and self.mode != "online":
            self.offline_dir = Path(self._run.dir).parent  # <dir>/wandb/offline-run-*/files

    def _start_offline(self, settings: dict[str, Any], reason: str) -> None:
        try:
            self._run = _init_run("offline", settings)
            self.mode = f"fell back to offline: {reason}"
        except Exception as err:
            log.warning("W&B disabled for this run (%s)", _reason(err))
            self.mode = f"disabled: {_reason(err)}"

    @property
    def active(self) -> bool:
        return self._run is not None

    def _safely(self, what: str, fn, *args, **kwargs) -> None:
        if self._run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:
            log.warning("W&B could not %s (%s: %s)", what, type(err).__name__, err)

    def log_epoch(self, metrics: dict[str, float]) -> None:
        """Per-epoch training curves, stepped by epoch."""
        scalars = {f"train/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        self._safely("log epoch metrics", self._run.log if self._run else None, scalars)

    def log_results(self, results: dict[str, Any]) -> None:
        """Summary scalars, the robust-accuracy-vs-eps table and line plot, detection metrics."""
        self._safely("log results", self._log_results, results)

    def _log_results(self, results: dict[str, Any]) -> None:
        import wandb

        self._run.summary.update(summary_metrics(results))
        rows = [
            [attack, float(eps), acc]
            for attack, curve in results.get("robust_accuracy", {}).items()
            for eps, acc in curve.items()
            if eps != "inf" and acc is not None
        ]
        if rows:
            table = wandb.Table(columns=["attack", "eps", "robust_accuracy"], data=rows)
            self._run.log({"robust_accuracy_table": table})
            for attack in sorted({r[0] for r in rows}):
                sub = wandb.Table(
                    columns=["eps", "robust_accuracy"], data=[r[1:] for r in rows if r[0] == attack]
                )
                plot = wandb.plot.line(
                    sub, "eps", "robust_accuracy", title=f"robust accuracy vs eps ({attack})"
                )
                self._run.log({f"robust_accuracy_curve/{attack}": plot})
            for row in eps_rows(results):  # the x = eps rows of the dashboard's line plots
                self._run.log(row)
        detection = results.get("detection", {})
        if detection:
            columns = ["attack", "auroc", "tnr_at_tpr95", "detection_accuracy", "aupr"]
            data = [[k] + [m.get(c) for c in columns[1:]] for k, m in detection.items()]
            self._run.log({"detection_table": wandb.Table(columns=columns, data=data)})

    def log_card(self, card: dict[str, Any]) -> None:
        """An evaluation card (``EvaluationCard.to_json()``): its accuracy table (clean, then
        the worst case per eps with the 95% interval), its checks, and its trust line."""
        self._safely("log the evaluation card", self._log_card, card)

    def _log_card(self, card: dict[str, Any]) -> None:
        import wandb

        rows = [["clean", None, card["clean_accuracy"], None, None]]
        for key, accuracy in card["worst_case"].items():
            low, high = card["ci"].get(key, (None, None))
            rows.append(["worst_case", float(key), accuracy, low, high])
        columns = ["row", "eps", "accuracy", "ci_low", "ci_high"]
        checks = [[name, c["status"], c["detail"]] for name, c in card["checks"].items()]
        self._run.log(
            {
                "evaluation_card": wandb.Table(columns=columns, data=rows),
                "evaluation_checks": wandb.Table(
                    columns=["check", "status", "detail"], data=checks
                ),
            }
        )
        self._run.summary.update({"evaluation_card/trust": card["trust"]})

    def log_images(self, paths: list[Path]) -> None:
        """Figures a job wrote (explanations, SE attention, ROC...) as W&B images by file stem."""
        pngs = [Path(p) for p in paths if Path(p).suffix == ".png"]
        if pngs:
            self._safely("log images", self._log_images, pngs)

    def _log_images(self, paths: list[Path]) -> None:
        import wandb

        self._run.log({f"figures/{p.stem}": wandb.Image(str(p)) for p in paths})

    def log_checkpoint(self, path: str | Path, name: str) -> None:
        """Upload a checkpoint directory as a model artifact when enabled."""
        if not self.log_checkpoints:
            return
        self._safely("log the checkpoint", self._log_checkpoint, Path(path), name)

    def _log_checkpoint(self, path: Path, name: str) -> None:
        import wandb

        artifact = wandb.Artifact(name=name, type="model")
        artifact.add_dir(str(path)) if path.is_dir() else artifact.add_file(str(path))
        self._run.log_artifact(artifact)

    def finish(self, exit_code: int = 0) -> None:
        """Always called (try/finally) so a crashed job still closes its run."""
        self._safely("finish the run", self._run.finish if self._run else None, exit_code=exit_code)
        self._run = None


def _init_run(mode: str, settings: dict[str, Any]) -> Any:
    import wandb

    return wandb.init(
        mode=mode,
        reinit="finish_previous",
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        **settings,
    )


def _reason(err: Exception) -> str:
    """An exception as one short line: its type and the first line of its message."""
    first = next((line for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first}" if first else type(err).__name__

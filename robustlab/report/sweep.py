"""Summarise a sweep folder into CSV tables, PNG plots and a Markdown summary.

``write_report`` is the one function behind both the ``robustlab-report`` command and the
end-of-sweep Hydra callback. Reading a sweep needs no torch: the detection scores and their
ROC figure, which do, are imported only when a job kept per-example scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from robustlab.errors import RobustlabError
from robustlab.fileio import atomic_path
from robustlab.report.certify_plots import plot_certified
from robustlab.report.inversion_plots import TITLE as INVERSION_TITLE
from robustlab.report.inversion_plots import plot_inversions
from robustlab.report.markdown import SummaryContext, render_summary
from robustlab.report.pareto import pareto_section, plot_pareto, search_objective, sweep_points
from robustlab.report.plots import (
    PlotOutcome,
    choose_frontier_eps,
    plot_robust_curves,
    plot_tradeoff_frontier,
)
from robustlab.report.records import RunRecord, as_eps_key, load_run_records, load_sweep_overrides
from robustlab.report.tables import (
    ConfigGroup,
    aggregate_over_seeds,
    aggregate_table,
    build_table,
    lead_attack,
    write_csv,
)

log = logging.getLogger(__name__)

JOBS_CSV = "results.csv"
CONFIGS_CSV = "results_by_config.csv"
SUMMARY_MD = "summary.md"


@dataclass
class ReportPaths:
    """Files written by ``write_report``: per-job CSV, summary, plots, per-config CSV."""

    csv: Path
    summary: Path
    plots: list[Path] = field(default_factory=list)
    config_csv: Path | None = None


def _draw(title: str, draw: Callable[[], PlotOutcome]) -> PlotOutcome:
    # A plot that fails on odd data must not cost the tables and the summary.
    try:
        return draw()
    except Exception as exc:
        log.warning("plot %r failed", title, exc_info=True)
        return PlotOutcome(title, None, f"drawing failed ({type(exc).__name__}: {exc})")


def draw_plots(
    groups: Sequence[ConfigGroup],
    out_dir: Path,
    *,
    main_attack: str,
    frontier_eps: str | None,
    records: Sequence[RunRecord] = (),
) -> list[PlotOutcome]:
    """Draw every plot of the report into ``out_dir``; skipped ones say why (the certified
    figure only appears when a job ran the certify stage)."""
    plots = [
        _draw(
            "Robust accuracy vs eps",
            lambda: plot_robust_curves(groups, out_dir / "robust_vs_eps.png"),
        ),
        _draw(
            "Trade-off frontier",
            lambda: plot_tradeoff_frontier(
                groups, out_dir / "tradeoff_frontier.png", main_attack, frontier_eps
            ),
        ),
        _draw("Detection ROC", lambda: _sweep_roc(groups, records, out_dir / "detection_roc.png")),
    ]
    if any(r.certified_curves for r in records):
        path = out_dir / "certified_vs_empirical.png"
        plots.append(_draw("Certified vs empirical", lambda: plot_certified(records, path)))
    if any(r.explanations.get("inversion") for r in records):
        path = out_dir / "inversions.png"
        plots.append(_draw(INVERSION_TITLE, lambda: plot_inversions(records, groups, path)))
    return plots


def _sweep_roc(
    groups: Sequence[ConfigGroup], records: Sequence[RunRecord], path: Path
) -> PlotOutcome:
    # the scores and their figure need torch, which reading a sweep does not: imported here
    from robustlab.report.detection_plots import plot_sweep_roc

    return plot_sweep_roc(job_scores(groups, records), path)


def job_scores(groups: Sequence[ConfigGroup], records: Sequence[RunRecord]) -> dict:
    """Per configuration, the per-example detection scores its first job kept (if any)."""
    # the detection room needs torch, which reading a sweep does not: imported here
    from robustlab.detection.storage import read_detection_scores
    from robustlab.detection.summary import SCORES_FILE

    by_job = {r.job: r for r in records}
    runs = {}
    for group in groups:
        kept = group.first_file(by_job, SCORES_FILE)
        if kept is not None:
            runs[group.label] = read_detection_scores(kept)
    return runs


def _frontier_eps(
    groups: Sequence[ConfigGroup], attack: str, eps: float | str | None
) -> str | None:
    if eps is None:
        return choose_frontier_eps(groups, attack)
    return as_eps_key(eps)


def pareto_part(
    sweep: Path,
    records: Sequence[RunRecord],
    out: Path,
    *,
    grid_dir: str | Path | None,
    axis: tuple,
) -> tuple[list[PlotOutcome], list[str]]:
    """The Pareto figure and section of a search sweep (its own objective) or of any sweep
    compared with a grid (``grid_dir``, cut to the same number of jobs); nothing otherwise."""
    objective = search_objective(sweep)
    if objective is None and grid_dir is None:
        return [], []
    attack, eps = objective or axis
    if eps is None:
        return [], []
    search = sweep_points(records, attack, eps)
    grid = None
    if grid_dir is not None:
        grid_records = load_run_records(grid_dir)
        if not grid_records:
            raise RobustlabError(f"no job found under the grid sweep {grid_dir}")
        grid = sweep_points(grid_records, attack, eps)
        n = min(len(search), len(grid))
        search, grid = search[:n], grid[:n]
    path = out / "pareto_front.png"
    plot = _draw(
        "Pareto front", lambda: plot_pareto(search, path, attack=attack, eps=eps, grid=grid)
    )
    return [plot], pareto_section(search, attack, eps, grid)


def _sweep_records(sweep: Path) -> list[RunRecord]:
    """Every job of the sweep folder; RobustlabError when it does not exist or holds none."""
    if not sweep.is_dir():
        raise RobustlabError(
            f"sweep folder {sweep} does not exist; pass a multirun output folder "
            "(the one holding multirun.yaml and one sub-folder per job)"
        )
    records = load_run_records(sweep)
    if not records:
        raise RobustlabError(
            f"no job found under {sweep}: expected <job>/results.json or Hydra job folders "
            "(with .hydra/); pass a multirun output folder"
        )
    return records


def write_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    main_attack: str | None = None,
    frontier_eps: float | str | None = None,
    grid_dir: str | Path | None = None,
) -> ReportPaths:
    """Summarise a Hydra sweep into CSV tables, PNG plots and ``summary.md``.

    Args:
        sweep_dir: The sweep folder (the one holding ``multirun.yaml`` and a folder per job).
        out_dir: Where the report goes (default: ``sweep_dir/report``).
        main_attack: The attack that ranks configurations (default: the per-example worst
            case when the jobs have it, else PGD).
        frontier_eps: The eps of the trade-off plot (default: the median eps most
            configurations were evaluated at).
        grid_dir: A grid sweep of the same study whose frontier the Pareto front is compared
            with.

    Returns:
        The paths of the files written.

    Raises:
        RobustlabError: A folder does not exist or holds no job.
    """
    sweep = Path(sweep_dir)
    records = _sweep_records(sweep)
    out = Path(out_dir) if out_dir is not None else sweep / "report"
    out.mkdir(parents=True, exist_ok=True)
    jobs_csv = write_csv(out / JOBS_CSV, *build_table(records))
    groups = aggregate_over_seeds(records)
    main_attack = lead_attack(groups, main_attack)
    configs_csv = write_csv(out / CONFIGS_CSV, *aggregate_table(groups))
    frontier = _frontier_eps(groups, main_attack, frontier_eps)
    pareto_plots, pareto_lines = pareto_part(
        sweep, records, out, grid_dir=grid_dir, axis=(main_attack, frontier)
    )
    plots = (
        draw_plots(groups, out, main_attack=main_attack, frontier_eps=frontier, records=records)
        + pareto_plots
    )
    context = SummaryContext(
        sweep_dir=sweep,
        out_dir=out,
        main_attack=main_attack,
        tables={"Per-job table": jobs_csv, "Per-configuration table (over seeds)": configs_csv},
        plots=plots,
        sweep_overrides=load_sweep_overrides(sweep),
        pareto=pareto_lines,
    )
    summary = out / SUMMARY_MD
    text = render_summary(records, groups, context)
    # replaced whole: a report killed or failing mid-write keeps the previous summary readable
    with atomic_path(summary) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    log.info("report of %d job(s) written to %s", len(records), out)
    written = [p.path for p in plots if p.path is not None]
    return ReportPaths(csv=jobs_csv, summary=summary, plots=written, config_csv=configs_csv)

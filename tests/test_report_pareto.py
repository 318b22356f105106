"""The report's Pareto front (search vs grid) and the sweep-report fixes read as a new user."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from robustlab.report import plots as plots_module
from robustlab.report import write_report
from robustlab.report.detection_table import winners_by_attack
from robustlab.report.pareto import ParetoPoint, front, hypervolume, search_objective
from robustlab.tracking.results import MASKING_PREFIX

OBJECTIVE = "robust_accuracy/worst_case@0.1"


def _job(root: Path, job: str, clean: float, robust: float, overrides: list[str], **extra) -> None:
    folder = root / job
    folder.mkdir(parents=True)
    payload = {
        "status": "ok",
        "dataset": "digits",
        "model": "resnet20",
        "defense": "trades",
        "seed": 0,
        "clean_accuracy": clean,
        "robust_accuracy": {"worst_case": {"0.1": robust}, "pgd": {"0.1": robust + 0.01}},
        "overrides": ["experiment=tiny", "threads=1", *overrides],
        **extra,
    }
    (folder / "results.json").write_text(json.dumps(payload))


def _search_sweep(root: Path, points, flagged=()) -> Path:
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(
        f"hydra:\n  sweeper:\n    objectives: [clean_accuracy, {OBJECTIVE}]\n"
    )
    for i, (clean, robust) in enumerate(points):
        warnings = [f"{MASKING_PREFIX}: too good"] if i in flagged else []
        _job(root, str(i), clean, robust, [f"defense.beta={i}"], warnings=warnings)
    return root


def test_hypervolume_is_the_area_the_unflagged_front_dominates() -> None:
    rng = random.Random(0)
    points = [ParetoPoint(str(i), rng.random(), rng.random(), i == 3) for i in range(12)]
    points[3] = ParetoPoint("3", 0.99, 0.99, True)  # would dominate everything: flagged
    steps = 400  # the dominated share of a grid of cell centres converges to the area
    trusted = [p for p in points if not p.flagged]
    inside = sum(
        any(p.clean >= (i + 0.5) / steps and p.robust >= (j + 0.5) / steps for p in trusted)
        for i in range(steps)
        for j in range(steps)
    )
    assert hypervolume(points) == pytest.approx(inside / steps**2, abs=5 / steps)
    best = front(points)
    assert "3" not in [p.job for p in best]
    assert all(
        a.clean < b.clean and a.robust > b.robust for a, b in zip(best, best[1:], strict=False)
    )


def test_the_report_compares_the_search_front_with_the_grid_at_equal_trials(tmp_path) -> None:
    search = _search_sweep(
        tmp_path / "search",
        [(0.9, 0.5), (0.95, 0.3), (0.7, 0.6), (0.99, 0.95), (0.5, 0.1)],
        flagged={3},
    )
    grid = tmp_path / "grid"
    for i, (clean, robust) in enumerate([(0.9, 0.3), (0.8, 0.4), (0.6, 0.5)]):
        _job(grid, str(i), clean, robust, [f"defense.beta={i}"])
    assert search_objective(search) == ("worst_case", "0.1")
    paths = write_report(search, tmp_path / "out", grid_dir=grid)
    assert tmp_path / "out" / "pareto_front.png" in paths.plots
    summary = paths.summary.read_text()
    section = summary[summary.index("## Pareto front") :]
    # the search is cut to the grid's 3 jobs: its front is (0.7, 0.6), (0.9, 0.5), (0.95, 0.3)
    ours = 0.7 * 0.6 + 0.2 * 0.5 + 0.05 * 0.3
    theirs = 0.6 * 0.5 + 0.2 * 0.4 + 0.1 * 0.3
    assert f"search's front dominates {ours:.3f}" in section
    assert f"the grid's {theirs:.3f}: the search finds the better trade-off" in section
    assert "| `3` |" not in section  # flagged (and past the cut)


def test_a_flagged_trial_never_sits_on_the_search_front(tmp_path) -> None:
    search = _search_sweep(tmp_path / "s", [(0.9, 0.5), (0.99, 0.95)], flagged={1})
    summary = write_report(search, tmp_path / "out").summary.read_text()
    section = summary[summary.index("## Pareto front") :]
    assert "1 flagged for gradient masking" in section
    assert "| `0` | defense.beta=0 | 90.0 | 50.0 |" in section and "| `1` |" not in section


def test_the_variant_column_shows_only_what_differs_between_jobs(tmp_path) -> None:
    _job(tmp_path / "s", "0", 0.9, 0.5, ["defense.beta=1.0"])
    _job(tmp_path / "s", "1", 0.8, 0.6, ["defense.beta=6.0"])
    paths = write_report(tmp_path / "s", tmp_path / "out")
    with open(paths.csv, newline="") as handle:
        assert [row["variant"] for row in csv.DictReader(handle)] == [
            "defense.beta=1.0",
            "defense.beta=6.0",
        ]
    summary = paths.summary.read_text()
    assert (
        "| defense.beta=6.0 |" in summary and "experiment=tiny" not in summary.split("## Best")[0]
    )


def test_the_tradeoff_legend_names_no_frontier_line_it_does_not_draw(tmp_path, monkeypatch):
    legends = []
    real_save = plots_module.save_figure

    def capture(fig, path, *args):
        legend = fig.legends[0] if fig.legends else None
        legends.append([t.get_text() for t in legend.get_texts()] if legend else [])
        return real_save(fig, path, *args)

    monkeypatch.setattr(plots_module, "save_figure", capture)
    masked = [f"{MASKING_PREFIX}: x"]
    _job(tmp_path / "one", "0", 0.9, 0.5, ["defense.beta=1"])
    _job(tmp_path / "one", "1", 0.8, 0.9, ["defense.beta=2"], warnings=masked)
    _job(tmp_path / "two", "0", 0.9, 0.5, ["defense.beta=1"])
    _job(tmp_path / "two", "1", 0.8, 0.9, ["defense.beta=2"])
    for name in ("one", "two"):
        legends.clear()
        write_report(tmp_path / name, tmp_path / f"out-{name}")
        tradeoff = [labels for labels in legends if any("/" in t for t in labels)][-1]
        assert ("Pareto frontier" in tradeoff) == (name == "two")


def test_the_summary_says_per_attack_which_detector_wins_and_why_one_has_none(tmp_path):
    def entry(auroc, msp):
        return {"auroc": auroc, "tnr_at_tpr95": auroc - 0.1, "baseline_msp": {"auroc": msp}}

    runs = [
        {"mahalanobis": {"pgd@0.1": entry(0.80, 0.93), "fgsm@0.1": entry(0.95, 0.90)}},
        {"mahalanobis": {"pgd@0.1": entry(0.70, 0.91), "fgsm@0.1": entry(0.85, 0.88)}},
    ]
    lines = winners_by_attack(runs)
    assert lines[0].startswith("- pgd@0.1: **MSP baseline** wins in 2 of 2 configuration(s)")
    assert "MSP baseline 0.920, Mahalanobis 0.750" in lines[0]
    assert lines[1].startswith("- fgsm@0.1: **Mahalanobis** wins in 1 of 2")
    root = tmp_path / "s"
    _job(root, "0", 0.9, 0.5, ["defense=trades"], detection=runs[0]["mahalanobis"])
    skip = "detection (mahalanobis) pgd@0.1 skipped: too few adversarial examples"
    _job(root, "1", 0.9, 0.5, ["defense=none"], warnings=[skip, skip])
    (root / "1" / "results.json").write_text(
        (root / "1" / "results.json").read_text().replace('"trades"', '"none"')
    )
    summary = write_report(root, tmp_path / "out").summary.read_text()
    assert "- pgd@0.1: **MSP baseline** wins in 1 of 1" in summary
    assert f"No detection, no ROC panel: {skip}" in summary
    warnings = summary[summary.index("## Warnings") :]
    assert warnings.count(skip) == 1  # reported twice by the stage, listed once


def _drawn(monkeypatch, module) -> list:
    """The figures ``module`` saves, rendered, before they are cleared."""
    figures = []
    real_save = module.save_figure

    def capture(fig, path, *args):
        fig.canvas.draw()
        legend = fig.legends[0]
        inside = fig.bbox.contains(*legend.get_window_extent().p0) and fig.bbox.contains(
            *legend.get_window_extent().p1
        )
        colours = {
            tuple(c)
            for ax in fig.axes
            for coll in ax.collections
            for c in coll.get_facecolors()
            if c[3] > 0
        }
        figures.append(
            {"legend_inside": inside, "colours": colours, "ylim": fig.axes[0].get_ylim()}
        )
        return real_save(fig, path, *args)

    monkeypatch.setattr(module, "save_figure", capture)
    return figures


def test_pareto_plot_colours_each_defense_and_keeps_its_legend_in_the_figure(tmp_path, monkeypatch):
    from robustlab.report import pareto

    figures = _drawn(monkeypatch, pareto)
    root = _search_sweep(tmp_path / "s", [(0.9, 0.3), (0.8, 0.4), (0.7, 0.5), (0.6, 0.1)])
    for job in ("2", "3"):  # a search over two defenses
        path = root / job / "results.json"
        path.write_text(path.read_text().replace('"trades"', '"pgd_at"'))
    write_report(root, tmp_path / "out")
    [figure] = figures
    assert figure["legend_inside"], "the legend is cut at the figure's edge"
    assert len(figure["colours"]) == 2, "one colour per defense"


def test_tradeoff_plot_colours_models_of_one_defense_and_an_all_zero_axis_starts_at_0(
    tmp_path, monkeypatch
):
    figures = _drawn(monkeypatch, plots_module)
    root = tmp_path / "s"
    _job(root, "0", 0.9, 0.0, ["model=resnet20"])
    _job(root, "1", 0.8, 0.0, ["model=se_resnet20"])
    path = root / "1" / "results.json"
    path.write_text(path.read_text().replace('"resnet20"', '"se_resnet20"'))
    write_report(root, tmp_path / "out")
    tradeoff = figures[-1]
    assert tradeoff["legend_inside"]
    assert len(tradeoff["colours"]) == 2, "one defense: one colour per model"
    assert tradeoff["ylim"] == (0.0, 0.1)


def test_a_tie_for_best_is_reported_as_a_tie(tmp_path):
    root = tmp_path / "s"
    _job(root, "0", 0.9, 0.0, ["defense.beta=1"])
    _job(root, "1", 0.8, 0.0, ["defense.beta=2"])
    _job(tmp_path / "t", "0", 0.9, 0.4, ["defense.beta=1"])
    _job(tmp_path / "t", "1", 0.8, 0.4, ["defense.beta=2"])
    broken = write_report(root, tmp_path / "out").summary.read_text()
    best = broken.split("## Best configuration per eps (worst_case)")[1].split("##")[0]
    assert "| none: all 2 at 0 |" in best
    tied = write_report(tmp_path / "t", tmp_path / "out-t").summary.read_text()
    best = tied.split("## Best configuration per eps (worst_case)")[1].split("##")[0]
    row = next(line for line in best.splitlines() if line.startswith("| digits | 0.1 |"))
    assert "tie: " in row and "defense.beta=1" in row and "defense.beta=2" in row

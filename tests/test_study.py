"""A tiny study through every launcher that works here: CSV, plots, summary, failed rows, reuse."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from matplotlib import image

from tests.app_helpers import job_results, run_entry

# two real jobs and one that fails on purpose (its data files do not exist)
STUDY = [
    "-m",
    "experiment=tiny",
    "detector=none",
    "logger=none",
    "defense=none,fast_at",
    "threads=1",
]
FAILING = [
    "-m",
    "experiment=tiny",
    "detector=none",
    "logger=none",
    "data=mnist",
    "data.root=/nonexistent",
]


def _report_rows(sweep: Path) -> list[dict]:
    with open(sweep / "report" / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_report(sweep: Path, jobs: int) -> None:
    rows = _report_rows(sweep)
    assert len(rows) == jobs
    assert {row["status"] for row in rows} == {"ok"}
    assert (sweep / "report" / "summary.md").read_text().strip()
    plots = sorted((sweep / "report").glob("*.png"))
    assert {p.name for p in plots} >= {"robust_vs_eps.png", "tradeoff_frontier.png"}
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = image.imread(plot).shape[:2]
        assert width >= 400 and height >= 300


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [
        [],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
    ],
    ids=["basic", "joblib", "submitit_local"],
)
def test_tiny_study_runs_through_the_launcher(tmp_path, launcher):
    proc = run_entry("train", *STUDY, *launcher, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = job_results(tmp_path / "sweep")
    assert sorted(r["defense"] for r in results) == ["fast_at", "none"]
    assert all(r["status"] == "ok" for r in results)
    _assert_report(tmp_path / "sweep", jobs=2)


@pytest.mark.slow
def test_failed_job_is_a_failed_row_and_rerun_reuses_checkpoints(tmp_path):
    sweep = ["hydra.sweep.dir=sweep"]
    first = run_entry("train", *STUDY, *sweep, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    failing = run_entry("train", *FAILING, "hydra.sweep.dir=sweep/failing", cwd=tmp_path)
    assert failing.returncode == 0, "a failed job must not break the sweep"
    failed = job_results(tmp_path / "sweep" / "failing")
    assert failed[0]["status"] == "failed" and "idx" in failed[0]["error"].lower()

    report = run_entry("report", str(tmp_path / "sweep"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = _report_rows(tmp_path / "sweep")
    assert sorted(row["status"] for row in rows) == ["failed", "ok", "ok"]
    failed_row = next(row for row in rows if row["status"] == "failed")
    assert "mnist" in failed_row["dataset"] and failed_row["error"]

    again = run_entry("train", *STUDY, "hydra.sweep.dir=again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    reused = job_results(tmp_path / "again")
    assert all(r["training_cost"]["reused_checkpoint"] for r in reused)
    before = {
        r["defense"]: r["clean_accuracy"]
        for r in job_results(tmp_path / "sweep")
        if r["status"] == "ok"
    }
    assert {r["defense"]: r["clean_accuracy"] for r in reused} == before

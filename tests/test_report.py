"""Sweep report: records, tables, aggregates, plots, summary, CLI and atomic JSON writes."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from robustlab import figures
from robustlab.app.report import main
from robustlab.fileio import write_json_atomic
from robustlab.report import plots
from robustlab.report.records import load_run_records, record_from_payload
from robustlab.report.sweep import write_report
from robustlab.report.tables import aggregate_over_seeds, build_table, write_csv

EPS = ("0.05", "0.1", "0.2")
# (model, defense) -> per seed: clean, pgd accuracy per eps, train seconds, warnings.
CONFIGS = {
    ("resnet20", "none"): {
        0: (0.98, (0.30, 0.05, 0.0), 10.0, []),
        1: (0.96, (0.26, 0.03, 0.0), 12.0, []),
    },
    ("se_resnet20", "pgd_at"): {
        0: (0.90, (0.80, 0.62, 0.25), 40.0, ["gradient masking suspected: fgsm beats pgd"]),
        1: (0.92, (0.78, 0.60, 0.375), 44.0, []),
    },
    # pgd@0.2 equals the mean of se_resnet20/pgd_at (0.3125) with higher clean accuracy.
    ("resnet20", "pgd_at"): {
        2: (0.95, (0.70, 0.50, 0.3125), 30.0, ["catastrophic overfitting: pgd accuracy fell to 0"]),
    },
}
FAILED_ERROR = "ValueError: eps must be positive"


def _payload(model: str, defense: str, seed: int, values: tuple) -> dict:
    clean, pgd, train_s, warnings = values
    return {
        "status": "ok",
        "dataset": "digits",
        "model": model,
        "defense": defense,
        "seed": seed,
        "params": 1000 + len(model),
        "clean_accuracy": clean,
        "robust_accuracy": {
            "pgd": dict(zip(EPS, pgd, strict=True)),
            "fgsm": {e: min(1.0, a + 0.1) for e, a in zip(EPS, pgd, strict=True)},
            "cw": {"inf": 0.01},
        },
        "robust_accuracy_ci": {
            "pgd": {e: [a - 0.02, a + 0.02] for e, a in zip(EPS, pgd, strict=True)}
        },
        "detection": {}
        if defense == "none"
        else {
            "pgd@0.1": {
                "auroc": 0.9 + 0.02 * (seed % 2),
                "tnr_at_tpr95": 0.8,
                "baseline_msp": {"auroc": 0.7, "tnr_at_tpr95": 0.4},
            }
        },
        "timing_s": {"train": train_s, "evaluate": 3.0},
        "training_cost": {"grad_evals_per_example": 8.0 if defense != "none" else 1.0},
        "warnings": warnings,
        "overrides": [f"model={model}", f"defense={defense}", f"seed={seed}", "+trainer.epochs=2"],
    }


def _job(root: Path, name: str) -> Path:
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    return job


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    root.mkdir()
    (root / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - seed=0,1\n")
    number = 0
    for (model, defense), seeds in CONFIGS.items():
        for seed, values in seeds.items():
            payload = _payload(model, defense, seed, values)
            (_job(root, str(number)) / "results.json").write_text(json.dumps(payload))
            number += 1
    failed = {"status": "failed", "error": FAILED_ERROR, "model": "small_cnn", "seed": 0}
    (_job(root, "5") / "results.json").write_text(json.dumps(failed))
    crashed = _job(root, "6")
    (crashed / ".hydra" / "overrides.yaml").write_text(
        "- model=resnet32\n- defense=fast_at\n- seed=1\n"
    )
    (_job(root, "extra/7") / "results.json").write_text('{"status": "ok", "clean_acc')
    return root


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_records_cover_every_job_and_failures_carry_their_reason(sweep: Path) -> None:
    records = load_run_records(sweep)
    assert [r.job for r in records] == ["0", "1", "2", "3", "4", "5", "6", "extra/7"]
    by_job = {r.job: r for r in records}
    assert sum(r.ok for r in records) == 5
    assert by_job["5"].error == FAILED_ERROR and by_job["5"].model == "small_cnn"
    crashed = by_job["6"]
    assert crashed.status == "failed" and "no results.json" in crashed.error
    assert (crashed.model, crashed.defense, crashed.seed) == ("resnet32", "fast_at", 1)
    assert by_job["extra/7"].status == "failed" and "JSONDecodeError" in by_job["extra/7"].error


def test_records_tolerate_wrong_types(tmp_path: Path) -> None:
    odd = {"clean_accuracy": "n/a", "robust_accuracy": [1, 2], "seed": "3", "warnings": "w"}
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "results.json").write_text(json.dumps(odd))
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "results.json").write_text("[1, 2]")
    ok, listed = load_run_records(tmp_path)
    assert ok.ok and ok.clean_accuracy is None and ok.robust_accuracy == {}
    assert ok.seed == 3 and ok.warnings == ["w"]
    assert not listed.ok and "not a JSON object" in listed.error


def test_csv_has_one_row_per_job_with_values_and_errors(sweep: Path, tmp_path: Path) -> None:
    paths = write_report(sweep, tmp_path / "out")
    rows = {row["job"]: row for row in _read_csv(paths.csv)}
    assert len(rows) == 8
    payload = _payload("se_resnet20", "pgd_at", 0, CONFIGS[("se_resnet20", "pgd_at")][0])
    row = rows["2"]
    assert (row["status"], row["model"], row["defense"], row["seed"]) == (
        "ok",
        "se_resnet20",
        "pgd_at",
        "0",
    )
    for eps in EPS:
        assert float(row[f"robust_pgd@{eps}"]) == payload["robust_accuracy"]["pgd"][eps]
    assert float(row["robust_cw@inf"]) == 0.01
    assert float(row["auroc_pgd@0.1"]) == 0.9 and float(row["auroc_msp_pgd@0.1"]) == 0.7
    assert float(row["time_train_s"]) == 40.0 and float(row["cost_grad_evals_per_example"]) == 8.0
    assert row["n_warnings"] == "1" and row["variant"] == "trainer.epochs=2"
    assert rows["0"]["auroc_pgd@0.1"] == ""
    assert rows["5"]["status"] == "failed" and rows["5"]["error"] == FAILED_ERROR
    assert rows["6"]["status"] == "failed" and "no results.json" in rows["6"]["error"]
    assert rows["extra/7"]["status"] == "failed" and rows["extra/7"]["clean_accuracy"] == ""


def test_aggregate_mean_and_sample_std_over_seeds(sweep: Path) -> None:
    records = load_run_records(sweep)
    groups = {(g.model, g.defense): g for g in aggregate_over_seeds(records)}
    assert set(groups) == set(CONFIGS)
    for key, seeds in CONFIGS.items():
        group = groups[key]
        assert sorted(group.seeds) == sorted(seeds)
        cleans = [values[0] for values in seeds.values()]
        stat = group.stats["clean_accuracy"]
        assert stat.n == len(cleans) and stat.mean == pytest.approx(sum(cleans) / len(cleans))
        if len(cleans) == 2:
            assert stat.std == pytest.approx(abs(cleans[0] - cleans[1]) / math.sqrt(2))
        else:
            assert stat.std is None
        for i, eps in enumerate(EPS):
            values = [v[1][i] for v in seeds.values()]
            assert group.stats[f"robust_pgd@{eps}"].mean == pytest.approx(sum(values) / len(values))
    columns, rows = build_table(records)
    assert len(rows) == len(records) and columns[0] == "job"


def _assert_png(path: Path, n_panels: int, size: tuple[float, float] | None = None) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = size or figures.figure_size(n_panels)
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (round(height * figures.DPI), round(width * figures.DPI))


def test_plots_are_valid_pngs_of_the_expected_size(sweep: Path, tmp_path: Path) -> None:
    paths = write_report(sweep, tmp_path / "out")
    names = {p.name: p for p in paths.plots}
    # no job kept per-example detection scores, so there is no ROC figure
    assert set(names) == {"robust_vs_eps.png", "tradeoff_frontier.png"}
    _assert_png(names["robust_vs_eps.png"], 2)  # pgd and fgsm; cw has no numeric eps
    _assert_png(names["tradeoff_frontier.png"], 1, plots.WIDE_FIGURE)  # room for the legend
    assert "Detection ROC: skipped, no job kept per-example detection scores" in (
        paths.summary.read_text()
    )


def test_summary_reports_best_per_eps_warnings_and_failures(sweep: Path, tmp_path: Path) -> None:
    paths = write_report(sweep, tmp_path / "out")
    text = paths.summary.read_text()
    assert "8 (5 ok, 3 failed)" in text
    best = text.split("## Best configuration per eps (pgd)")[1].split("##")[0]
    # se_resnet20 / pgd_at scores higher but carries a masking warning: never crowned, and
    # named with its mark beside the winner
    assert (
        "| digits | 0.1 | resnet20 / pgd_at | 50.0 | 95.0 | se_resnet20 / pgd_at (masking?) "
        "61.0 ± 1.4 |" in best
    )
    assert "| digits | 0.2 | resnet20 / pgd_at |" in best
    # the accuracy tables carry the mark too
    assert "| digits | se_resnet20 | pgd_at (masking?) |" in text.split("## Accuracy")[1]
    assert "gradient masking suspected: fgsm beats pgd" in text
    assert "catastrophic overfitting: 1 job" in text
    for error in (FAILED_ERROR, "no results.json", "JSONDecodeError"):
        assert error in text
    for path in [paths.csv, *paths.plots]:
        assert f"]({path.name})" in text


def test_frontier_at_unknown_eps_is_skipped_and_explained(sweep: Path, tmp_path: Path) -> None:
    paths = write_report(sweep, tmp_path / "out", frontier_eps=0.3)
    assert "tradeoff_frontier.png" not in {p.name for p in paths.plots}
    assert "Trade-off frontier (pgd, eps=0.3): skipped" in paths.summary.read_text()
    assert plots.choose_frontier_eps(aggregate_over_seeds(load_run_records(sweep)), "pgd") == "0.1"


def test_sweep_without_finished_jobs_reports_without_plots(sweep: Path, tmp_path: Path) -> None:
    for job in ("0", "1", "2", "3", "4"):
        (sweep / job / "results.json").unlink()
    paths = write_report(sweep)
    assert paths.plots == [] and paths.summary.parent == sweep / "report"
    text = paths.summary.read_text()
    assert "0 ok, 8 failed" in text and text.count(": skipped, ") == 3


def test_pareto_front_keeps_exactly_the_undominated_points() -> None:
    rng = random.Random(0)
    points = [(rng.random(), rng.random()) for _ in range(40)]
    front = set(plots.pareto_front(points))

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)

    assert front == {i for i, p in enumerate(points) if not dominated(p)}


def test_cli_exit_codes(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no job found" in err[0]
    assert main([str(sweep), "--out", str(tmp_path / "rep"), "--eps", "0.05"]) == 0
    assert str(tmp_path / "rep" / "summary.md") in capsys.readouterr().out
    assert "Trade-off frontier (pgd, eps=0.05)" in (tmp_path / "rep" / "summary.md").read_text()


def test_cli_module_entry_point(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "robustlab.app.report", str(tmp_path / "missing")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "does not exist" in done.stderr


def test_the_report_package_imports_without_torch() -> None:
    # reading a sweep back must work where torch is not installed (or too slow to import)
    code = (
        "import sys, robustlab.report as r; "
        "assert callable(r.write_report) and all(hasattr(r, n) for n in r.__all__); "
        "print(sorted(m for m in ('torch', 'hydra', 'wandb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_explanations_section_compares_configurations(tmp_path: Path) -> None:
    explanations = {
        "methods": ["saliency"],
        "fragility": {"saliency": {"topk_intersection": 0.5, "spearman": 0.25}},
        "faithfulness": {"saliency": {"deletion_auc_clean": 0.125}, "random": {}},
        "sanity": {"saliency": 0.75},
        "se_attention": {
            "stages": {
                "s1": {"mean_abs_delta": 0.0123},
                "s2": {},
                "s3": {"mean_abs_delta": 0.0, "blocks": 3, "dead_blocks": ["a", "b", "c"]},
                "s4": {"mean_abs_delta": 0.25, "blocks": 3, "dead_blocks": ["d"]},
            }
        },
    }
    payload = {"status": "ok", "model": "se|net", "defense": "none", "explanations": explanations}
    write_json_atomic(tmp_path / "sweep" / "0" / "results.json", payload)
    text = write_report(tmp_path / "sweep").summary.read_text(encoding="utf-8")
    section = text.split("## Explanations")[1].splitlines()
    rows = [line for line in section if line.startswith("| se\\|net / none")]
    assert rows == [
        "| se\\|net / none | 0.50 / 0.25 | 0.0123 / – / constant (dead) / 0.2500 (1 dead) |",
        "| se\\|net / none | 0.12 / 0.75 | – / – |",
    ]


def test_write_json_atomic_writes_whole_files_only(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "results.json"
    write_json_atomic(path, {"a": 1.5, "bad": float("nan"), "inf": [float("inf")]})
    assert json.loads(path.read_text()) == {"a": 1.5, "bad": None, "inf": [None]}
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json_atomic(path, {"model": object()})
    assert path.read_text() == before

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"a": 2})
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_csv_that_fails_mid_write_leaves_the_old_table(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    write_csv(path, ["a"], [{"a": 1}, {"a": 2}])
    before = path.read_text()

    def rows():
        yield {"a": 3}
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_csv(path, ["a"], rows())
    assert path.read_text() == before == "a\n1\n2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_a_summary_that_fails_mid_write_leaves_the_old_one(
    sweep: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out"
    before = write_report(sweep, out).summary.read_text()
    real_write_text = Path.write_text

    def write_half_then_fail(self: Path, text: str, *args, **kwargs) -> int:
        if "summary.md" not in self.name:
            return real_write_text(self, text, *args, **kwargs)
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("killed")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="killed"):
        write_report(sweep, out)
    monkeypatch.undo()
    assert (out / "summary.md").read_text() == before
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_groups_split_on_other_overrides_and_labels_drop_shared_ones() -> None:
    values = CONFIGS[("resnet20", "none")][0]
    records = []
    for job, extra in enumerate(("defense.eps=0.1", "defense.eps=0.2", "defense.eps=0.2")):
        payload = _payload("resnet20", "pgd_at", job, values)
        payload["overrides"] += [extra, "device=cpu"]
        records.append(record_from_payload(str(job), payload))
    groups = aggregate_over_seeds(records)
    assert [len(g.jobs) for g in groups] == [1, 2]
    assert [g.variant for g in groups] == [
        "defense.eps=0.1 trainer.epochs=2",
        "defense.eps=0.2 trainer.epochs=2",
    ]
    assert [g.label for g in groups] == [
        "resnet20 / pgd_at [defense.eps=0.1]",
        "resnet20 / pgd_at [defense.eps=0.2]",
    ]


def test_reports_lead_with_the_worst_case_when_jobs_have_it(sweep: Path, tmp_path: Path) -> None:
    for path in sweep.rglob("results.json"):
        payload = json.loads(path.read_text() or "{}") if path.parent.name != "7" else None
        if not payload or payload.get("status") != "ok":
            continue
        pgd = payload["robust_accuracy"]["pgd"]
        payload["robust_accuracy"]["worst_case"] = {e: a - 0.01 for e, a in pgd.items()}
        path.write_text(json.dumps(payload))
    paths = write_report(sweep, tmp_path / "out")
    text = paths.summary.read_text()
    accuracy = text.split("## Accuracy")[1]
    assert accuracy.index("### Under worst_case") < accuracy.index("### Under pgd")
    assert "## Best configuration per eps (worst_case)" in text
    assert "Trade-off frontier (worst_case, eps=0.1)" in text


def test_labels_name_the_data_set_when_a_sweep_spans_several() -> None:
    values = CONFIGS[("resnet20", "none")][0]
    records = []
    for job, dataset in enumerate(("digits", "mnist5k")):
        payload = _payload("resnet20", "none", 0, values) | {"dataset": dataset}
        records.append(record_from_payload(str(job), payload))
    labels = [g.label for g in aggregate_over_seeds(records)]
    assert labels == ["digits: resnet20 / none", "mnist5k: resnet20 / none"]
    one = aggregate_over_seeds(records[:1])
    assert [g.label for g in one] == ["resnet20 / none"]

"""The results contract: typed stage results -> results.json -> RunRecord, old files included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from robustlab.detection import AttackKey, DetectionKey, DetectionReport
from robustlab.evaluation import EpsCurve, EpsPoint, RobustnessReport
from robustlab.report.records import load_run_records
from robustlab.report.tables import build_table
from robustlab.tracking.results import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    JobIdentity,
    JobResults,
    results_payload,
    summary_metrics,
    write_results,
)
from robustlab.training import TrainingSummary

V1_FILE = Path(__file__).parent / "data" / "results_v1.json"


def _report() -> RobustnessReport:
    pgd = EpsCurve(
        "pgd",
        0.95,
        200,
        [
            EpsPoint(0.05, 0.8, (0.74, 0.85), 4000, 1.5, 200),
            EpsPoint(0.1, 0.45, (0.38, 0.52), 3000, 1.0, 200),
        ],
        schedule="continuation",
    )
    cw = EpsCurve("cw", 0.95, 200, [EpsPoint(math.inf, 0.1, (0.06, 0.15), 900, 2.0, 200, 0.7)])
    report = RobustnessReport(0.95, 200, {"pgd": pgd, "cw": cw})
    report.warnings = ["gradient masking suspected: test"]
    return report


def _job() -> JobResults:
    identity = JobIdentity("digits", "se_resnet20", "pgd_at", 3, ["seed=3"], "jobs/0", "cpu")
    job = JobResults(identity, params=272474, checkpoint="checkpoints/x")
    teacher = TrainingSummary(epochs=2, train_seconds=1.0, grad_evals_per_example=2.0)
    training = TrainingSummary(
        epochs=4,
        train_seconds=10.0,
        grad_evals_per_example=32.0,
        best_epoch=3,
        teacher=teacher,
        warnings=["catastrophic overfitting"],
    )
    detection = DetectionReport(
        {
            DetectionKey(AttackKey("pgd", 0.1)): {"auroc": 0.97, "tnr_at_tpr95": 0.9},
            DetectionKey(AttackKey("pgd", 0.1), "unseen", AttackKey("fgsm", 0.1)): {
                "auroc": 0.91,
                "tnr_at_tpr95": 0.7,
            },
        }
    )
    job.add("train", training, 11.0)
    job.add("evaluate", _report(), 4.5)
    job.add("detect", detection, 2.0)
    return job


def test_stages_round_trip_through_results_json_to_the_record(tmp_path):
    payload = results_payload(_job())
    write_results(tmp_path / "0" / RESULTS_FILE, payload)
    (record,) = load_run_records(tmp_path)
    assert record.ok and record.schema_version == SCHEMA_VERSION == payload["schema_version"]
    assert (record.dataset, record.model, record.defense, record.seed) == (
        "digits",
        "se_resnet20",
        "pgd_at",
        3,
    )
    assert record.params == 272474 and record.clean_accuracy == 0.95
    assert record.robust_accuracy == {"pgd": {"0.05": 0.8, "0.1": 0.45}, "cw": {"inf": 0.1}}
    assert record.robust_accuracy_ci["pgd"]["0.1"] == [0.38, 0.52]
    assert record.detection["pgd@0.1"]["auroc"] == 0.97
    assert record.detection["pgd@0.1|unseen(fgsm@0.1)"]["tnr_at_tpr95"] == 0.7
    # the teacher's cost is part of the defense's cost
    assert record.training_cost["grad_evals_per_example"] == 34.0
    assert record.training_cost["train_seconds"] == 11.0
    assert record.timing_s == {"train": 11.0, "evaluate": 4.5, "detect": 2.0}
    # warnings of every stage, in stage order
    assert record.warnings == ["catastrophic overfitting", "gradient masking suspected: test"]


def test_the_w_and_b_summary_is_made_from_the_same_payload():
    summary = summary_metrics(results_payload(_job()))
    assert summary["robust_accuracy/pgd@0.1"] == 0.45
    assert summary["detection/pgd@0.1/auroc"] == 0.97
    assert summary["training_cost/grad_evals_per_example"] == 34.0
    assert summary["n_warnings"] == 2 and summary["masking_suspected"] == 1


def test_two_stages_may_not_write_the_same_number():
    job = _job()
    job.add("evaluate again", _report(), 1.0)
    with pytest.raises(ValueError, match="rewrites"):
        results_payload(job)


def test_a_version_1_results_file_still_loads_into_the_report(tmp_path):
    v1 = json.loads(V1_FILE.read_text())
    assert "schema_version" not in v1
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / RESULTS_FILE).write_text(json.dumps(v1))
    (record,) = load_run_records(tmp_path)
    assert record.ok and record.schema_version == 1
    assert record.robust_accuracy["pgd"]["0.1"] == v1["robust_accuracy"]["pgd"]["0.1"]
    assert record.detection["pgd@0.1"]["auroc"] == v1["detection"]["pgd@0.1"]["auroc"]
    _, (row,) = build_table([record])
    assert float(row["robust_pgd@0.1"]) == pytest.approx(v1["robust_accuracy"]["pgd"]["0.1"])


def test_detection_report_keys_are_tuples_not_strings():
    report = DetectionReport({DetectionKey(AttackKey("cw")): {"auroc": 0.8}})
    assert report[("cw", None)] == {"auroc": 0.8} and report["cw"]["auroc"] == 0.8
    assert report.labels() == ["cw"]
    assert AttackKey("pgd", 0.1) == ("pgd", 0.1) and AttackKey("pgd", 0.1).label == "pgd@0.1"

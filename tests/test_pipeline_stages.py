"""The optional stages of the pipeline on a tiny run: certify (and its sweep figure), several
detectors on the same adversarial examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustlab.app.pipeline import run_pipeline
from robustlab.app.validate import validate_config
from robustlab.detection.storage import read_detection_scores
from robustlab.errors import ConfigError
from robustlab.report.sweep import write_report
from tests.app_helpers import compose_tiny


@pytest.fixture(scope="module")
def certified_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("certify")
    cfg = compose_tiny(
        root,
        "defense=gaussian_noise",
        "certify=default",
        "certify.n=200",
        "certify.max_examples=24",
        "certify.min_norm_steps=20",
    )
    return run_pipeline(cfg, root / "sweep" / "0"), root


def test_certify_stage_writes_certificates_below_the_attacks(certified_run):
    payload, _ = certified_run
    smoothing = payload["certified_accuracy"]["smoothing"]
    assert smoothing["sigma"] == 0.25 and smoothing["n"] == 200
    assert smoothing["curve"]["0.0"] <= payload["clean_accuracy"] + 0.1  # 24 of its examples
    assert payload["lipschitz"]["bound"] > 0 and "certify" in payload["timing_s"]
    # every certified radius is a lower bound: never above what the attack leaves
    certified = payload["lipschitz"]["curve"]
    empirical = payload["min_norm_curve"]["L2"]
    assert all(certified[r] <= empirical[r] for r in certified if r in empirical)
    # the min-norm curve is bounded by the worst-case suite's record (same examples)
    linf = payload["min_norm_curve"]["Linf"]
    record = json.loads((Path(payload["job_dir"]) / "worst_case_examples.json").read_text())
    broken = record["broken_eps"][:24]
    suite_accuracy = sum(1 for e in broken if e is None or e > 0.1) / 24
    assert linf["0.1"] <= suite_accuracy + 1e-9


def _drawn_lines(monkeypatch) -> list[dict]:
    """Per saved certify figure: each panel's title and its lines, label -> {x: y}."""
    import robustlab.certify.plots as plots

    figures, real_save = [], plots.save_figure

    def capture(fig, path, *args):
        figures.append(
            {
                ax.get_title(): {
                    line.get_label(): dict(zip(line.get_xdata(), line.get_ydata(), strict=True))
                    for line in ax.get_lines()
                }
                for ax in fig.axes
                if ax.get_visible()
            }
        )
        return real_save(fig, path, *args)

    monkeypatch.setattr(plots, "save_figure", capture)
    return figures


def test_the_sweep_report_draws_certified_next_to_empirical(certified_run, monkeypatch):
    payload, root = certified_run
    figures = _drawn_lines(monkeypatch)
    paths = write_report(root / "sweep")
    assert "certified_vs_empirical.png" in {p.name for p in paths.plots}
    # the figure draws the job's own curves, point for point, in one panel for its config
    [panels] = figures
    [(title, lines)] = panels.items()
    assert title.endswith("/ gaussian_noise")
    expected = {
        "certified (randomized smoothing)": payload["certified_accuracy"]["smoothing"]["curve"],
        "certified (Lipschitz margin)": payload["lipschitz"]["curve"],
        "empirical (min-norm L2 attack)": payload["min_norm_curve"]["L2"],
    }
    assert set(lines) == set(expected)
    for label, curve in expected.items():
        assert lines[label] == pytest.approx({float(r): v for r, v in curve.items()}), label


def test_every_detector_is_compared_on_the_same_adversarial_examples(tmp_path):
    cfg = compose_tiny(tmp_path, "detector=all", "model.dropout=0.5", "detector.adaptive=false")
    payload = run_pipeline(cfg, tmp_path / "run")
    detectors = payload["detectors"]
    assert list(detectors) == ["mahalanobis", "kd_bu", "lid"]
    assert payload["detection"] == detectors["mahalanobis"]  # the primary one, v1 keys
    for label in ("fgsm@0.1", "pgd@0.1"):
        counts = {d: entries[label]["n_adversarial"] for d, entries in detectors.items()}
        assert len(set(counts.values())) == 1, counts
        assert {e[label]["detector"] for e in detectors.values()} == set(detectors)
    scores = read_detection_scores(tmp_path / "run" / "detection_scores.safetensors")
    assert set(scores["pgd@0.1"]) == {"mahalanobis", "kd_bu", "lid", "msp"}


def test_kd_bu_without_dropout_fails_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match="model.dropout"):
        validate_config(compose_tiny(tmp_path, "detector=kd_bu"))


def test_explain_stage_reports_and_draws_for_se_models(tmp_path):
    inversion = [
        "explain.inversion=true",
        "explain.inversion_examples=2",
        "explain.inversion_steps=3",
    ]
    cfg = compose_tiny(
        tmp_path, "model=se_resnet20", "explain=default", "explain.max_examples=8", *inversion
    )
    payload = run_pipeline(cfg, tmp_path / "sweep" / "0")
    explanations = payload["explanations"]
    layers = explanations["inversion"]["layers"]
    assert list(layers) == ["stage0", "stage1", "stage2", "logits"]
    assert explanations["inversion"]["n_images"] == 2 and explanations["inversion"]["steps"] == 3
    assert payload["se_overhead"]["blocks"] == 9 and payload["se_overhead"]["reduction"] == 16
    assert (tmp_path / "sweep" / "0" / "inversions.safetensors").is_file()
    assert set(explanations["fragility"]) == set(explanations["methods"])
    for method, fragility in explanations["fragility"].items():
        assert 0.0 <= fragility["topk_intersection"] <= 1.0, method
    assert explanations["se_attention"]["stages"] and "explain" in payload["timing_s"]
    for figure in ("explanations.png", "se_attention.png"):
        assert (tmp_path / "sweep" / "0" / figure).stat().st_size > 1000
    paths = write_report(tmp_path / "sweep")
    summary = paths.summary.read_text()
    assert "## Explanations" in summary and "se_resnet20 / none" in summary
    assert "## Inside the representations" in summary and "### SE reduction ratio" in summary
    assert any(p.name == "inversions.png" for p in paths.plots)


def test_explain_none_skips_the_stage(tmp_path):
    payload = run_pipeline(compose_tiny(tmp_path, "explain=none"), tmp_path / "run")
    assert "explanations" not in payload and "explain" not in payload["timing_s"]
    assert not (tmp_path / "run" / "explanations.png").exists()


def test_detection_tests_on_the_evaluations_adversarial_examples(tmp_path):
    cfg = compose_tiny(
        tmp_path, "detector=mahalanobis", "detector.adaptive=false", "detector.max_examples=32"
    )
    payload = run_pipeline(cfg, tmp_path / "run")
    evaluated, detection = payload["robust_accuracy"], payload["detection"]
    # one robust accuracy per (attack, eps) in the job: the detector saw the very same examples
    assert detection["pgd@0.1"]["robust_accuracy"] == evaluated["pgd"]["0.1"]
    assert detection["fgsm@0.1"]["robust_accuracy"] == evaluated["fgsm"]["0.1"]
    # ... on the evaluation's test subset (eval.max_examples rows), not detector.max_examples
    assert detection["pgd@0.1"]["n_clean"] == round(payload["clean_accuracy"] * payload["n_eval"])

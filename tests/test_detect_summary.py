"""How far a detection number goes: AUROC intervals, below-chance flags, ties, and the summary
table robustlab-detect prints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.detection import AttackKey, DetectionKey, DetectionReport
from robustlab.detection.auroc_interval import below_chance, delong_interval
from robustlab.report.detection_table import auroc_text, detection_table, job_detection_table
from tests.app_helpers import job_results, run_console, saved_checkpoint


def test_delong_interval_matches_a_bootstrap():
    rng = np.random.default_rng(0)
    clean, adversarial = rng.normal(0, 1, 60), rng.normal(1, 1, 40)
    low, high = delong_interval(clean, adversarial)
    boot = []
    for _ in range(2000):
        c, a = rng.choice(clean, len(clean)), rng.choice(adversarial, len(adversarial))
        boot.append((a[:, None] > c[None, :]).mean() + 0.5 * (a[:, None] == c[None, :]).mean())
    boot_low, boot_high = np.quantile(boot, [0.025, 0.975])
    assert abs(low - boot_low) < 0.03 and abs(high - boot_high) < 0.03
    # fewer examples, a wider interval
    small_low, small_high = delong_interval(clean[:16], adversarial[:16])
    assert small_high - small_low > high - low


def test_delong_interval_handles_ties_and_stays_in_the_unit_interval():
    assert delong_interval([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]) == (0.5, 0.5)
    low, high = delong_interval([0.0, 0.1, 0.2], [5.0, 6.0, 7.0])
    assert (low, high) == (1.0, 1.0)
    low, high = delong_interval(torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([0.5, 2.5]))
    assert 0.0 <= low <= 0.5 <= high <= 1.0


def _report(clean, adversarial, msp_clean, msp_adversarial):
    key = DetectionKey(AttackKey("pgd", 0.1))
    metrics = {"auroc": 0.3, "n_clean": len(clean), "n_adversarial": len(adversarial)}
    entry = {**metrics, "baseline_msp": {"auroc": 0.9}}
    scores = {"mahalanobis": (clean, adversarial), "msp": (msp_clean, msp_adversarial)}
    return DetectionReport({key: entry}, detectors=["mahalanobis"], scores={key.label: scores})


def test_results_carry_the_interval_and_warn_below_chance():
    clean, adversarial = torch.arange(8.0), torch.arange(8.0) - 3
    report = _report(clean, adversarial, torch.zeros(8), torch.ones(8))
    results = report.to_results()
    entry = results["detection"]["pgd@0.1"]
    assert entry["auroc_ci"] == list(delong_interval(clean, adversarial))
    assert entry["baseline_msp"]["auroc_ci"] == [1.0, 1.0]
    assert "auroc_ci" not in report.entries[DetectionKey(AttackKey("pgd", 0.1))], "a copy"
    [warning] = results["warnings"]
    assert warning.startswith("detection AUROC below chance: mahalanobis on pgd@0.1 scores 0.30")


def test_auroc_text_shows_what_the_sample_supports():
    assert auroc_text({"auroc": 0.8633, "auroc_ci": [0.7361, 0.9905]}) == "0.86 [0.74, 0.99]"
    assert auroc_text({"auroc": 0.9871, "auroc_ci": [0.9840, 0.9902]}) == "0.987 [0.984, 0.990]"
    assert auroc_text({"auroc": 0.316}) == "0.32 (below chance)"
    assert below_chance(0.49) and not below_chance(0.5) and not below_chance(None)


def test_equal_aurocs_are_a_tie_not_a_win():
    tied = {"auroc": 1.0, "tnr_at_tpr95": 1.0, "baseline_msp": {"auroc": 0.6}}
    results = {"mahalanobis": {"pgd@0.1": tied}, "lid": {"pgd@0.1": dict(tied)}}
    row = detection_table(results).splitlines()[2]
    assert "tie: Mahalanobis, LID" in row and "**" not in row


def test_job_table_lists_every_detector_with_its_sample():
    entry = {"auroc": 0.7, "auroc_ci": [0.5, 0.9], "tnr_at_tpr95": 0.2}
    entry |= {"n_clean": 16, "n_adversarial": 12}
    results = {"detection": {"pgd@0.1": entry, "pgd@0.1|unseen(fgsm@0.1)": entry}}
    lines = job_detection_table(results, detector="lid").splitlines()
    assert lines[0].startswith("| detector | attack | AUROC [95% CI]")
    assert lines[2] == "| LID | pgd@0.1 | 0.70 [0.50, 0.90] | 0.20 | 16 / 12 |"
    assert "pgd@0.1, unseen (fitted on fgsm@0.1)" in lines[3]


@pytest.mark.parametrize("detector", ["mahalanobis"])
def test_robustlab_detect_prints_the_summary_table(tmp_path, detector):
    checkpoint = saved_checkpoint(tmp_path / "ckpt", model="small_cnn", epochs=1)
    args = ["experiment=tiny", "logger=none", f"detector={detector}", "eval.suite=none"]
    args += ["detector.noise_grid=[0.0]", "detector.adaptive=false", "detector.unseen=[]"]
    proc = run_console(
        "robustlab-detect", *args, f"paths.checkpoint={checkpoint}", cwd=tmp_path, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [results] = job_results(tmp_path / "outputs")
    lines = proc.stdout.splitlines()
    header = lines.index("| detector | attack | AUROC [95% CI] | TNR@95 | clean / adv. examples |")
    rows = lines[header + 2 :]
    assert [row.split(" | ")[1] for row in rows[:2]] == ["fgsm@0.1", "pgd@0.1"]
    measured = 0
    for key, row in zip(("fgsm@0.1", "pgd@0.1"), rows, strict=False):
        entry = results["detection"][key]
        assert f"{entry['n_clean']} / {entry['n_adversarial']}" in row
        if entry["auroc"] is None:  # no adversarial example to detect (an untrained model)
            assert " | — | — | " in row
            continue
        measured += 1
        assert auroc_text(entry) in row and len(entry["auroc_ci"]) == 2
    assert measured, results["detection"]

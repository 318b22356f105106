"""Detection ROC figure, the who-wins table and the per-example score file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from robustlab.detection.storage import read_detection_scores, write_detection_scores
from robustlab.report.detection_plots import plot_detection_roc, roc_points
from robustlab.report.detection_table import detection_table


def _scores(shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=300), rng.normal(loc=shift, size=120)


def test_roc_points_run_from_corner_to_corner_and_rank_better_detectors_higher():
    fpr, tpr = roc_points(*_scores(3.0, 0))
    weak_fpr, weak_tpr = roc_points(*_scores(0.5, 0))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.interp(0.05, fpr, tpr) > np.interp(0.05, weak_fpr, weak_tpr) + 0.3


def test_roc_figure_has_a_panel_per_attack(tmp_path):
    scores = {
        "pgd@0.1": {"mahalanobis": _scores(3.0, 1), "lid": _scores(2.0, 2), "msp": _scores(2.5, 3)},
        "cw": {"kd_bu": _scores(1.0, 4), "msp": _scores(1.5, 5)},
        "empty": {"lid": (np.zeros(5), np.zeros(0))},  # nothing flipped: no panel
    }
    outcome = plot_detection_roc(scores, tmp_path / "roc.png")
    image = imread(outcome.path)
    assert image.shape[1] > 1.5 * image.shape[0]  # two panels side by side, none for "empty"
    skipped = plot_detection_roc({"cw": {"lid": (np.ones(3), [])}}, tmp_path / "none.png")
    assert skipped.path is None and "no per-example" in skipped.note


def _entry(auroc, tnr, **extra):
    return {"auroc": auroc, "tnr_at_tpr95": tnr, **extra}


def test_table_names_the_winner_its_lead_and_the_adaptive_effect():
    msp = _entry(0.99, 0.97)
    results = {
        "mahalanobis": {
            "pgd@0.1": _entry(
                0.95,
                0.80,
                baseline_msp=msp,
                evasion_rate=0.02,
                adaptive=_entry(0.70, 0.20, evasion_rate=0.25),
            ),
            "cw": _entry(0.97, 0.90, baseline_msp=_entry(0.90, 0.60)),
        },
        "lid": {"pgd@0.1": _entry(0.90, 0.70, baseline_msp=msp), "cw": _entry(None, None)},
    }
    lines = detection_table(results).splitlines()
    assert lines[0].startswith("| attack | winner |") and "| LID |" in lines[0]
    pgd, cw = lines[2].split(" | "), lines[3].split(" | ")
    assert pgd[1] == "MSP baseline" and pgd[2] == "+0.04, +0.17 over Mahalanobis"
    assert "**0.99 / 0.97**" in lines[2]  # the winner's cell is bold
    assert "Mahalanobis 0.95→0.70, 2.0%→25.0%" in lines[2]
    assert cw[1] == "Mahalanobis" and cw[2] == "+0.07, +0.30 over MSP baseline"
    assert cw[4] == "—"  # LID not fitted on CW


def test_score_file_round_trip(tmp_path):
    scores = {"pgd@0.1|unseen(fgsm@0.1)": {"kd_bu": (torch.tensor([0.5, 1.5]), [2.0])}}
    write_detection_scores(tmp_path / "s.safetensors", scores)
    back = read_detection_scores(tmp_path / "s.safetensors")
    clean, adv = back["pgd@0.1|unseen(fgsm@0.1)"]["kd_bu"]
    assert clean.tolist() == [0.5, 1.5] and adv.tolist() == pytest.approx([2.0])


def test_the_sweep_report_draws_the_roc_of_jobs_that_kept_scores(tmp_path):
    from robustlab.detection.summary import SCORES_FILE
    from robustlab.report import write_report

    for job, shift in (("0", 3.0), ("1", 1.0)):
        folder = tmp_path / "sweep" / job
        folder.mkdir(parents=True)
        payload = {"status": "ok", "model": f"m{job}", "defense": "none", "seed": 0}
        (folder / "results.json").write_text(json.dumps(payload))
        scores = {"pgd@0.1": {"lid": _scores(shift, 6), "msp": _scores(1.0, 7)}}
        write_detection_scores(folder / SCORES_FILE, scores)
    paths = write_report(tmp_path / "sweep", tmp_path / "out")
    roc = tmp_path / "out" / "detection_roc.png"
    assert roc in paths.plots
    height, width = imread(roc).shape[:2]
    assert width > 1.5 * height  # the two configurations' pgd panels side by side


def test_twenty_roc_panels_make_a_grid_a_screen_shows(tmp_path):
    from robustlab.report.detection_plots import plot_sweep_roc, roc_grid_shape

    assert [roc_grid_shape(n) for n in (1, 2, 4, 5, 20, 40)] == [
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 3),
        (4, 5),
        (8, 5),
    ]
    runs = {
        f"config {i}": {"pgd@0.1": {"lid": _scores(2.0, i), "msp": _scores(1.0, i)}}
        for i in range(20)
    }
    outcome = plot_sweep_roc(runs, tmp_path / "roc.png")
    height, width = imread(outcome.path).shape[:2]
    assert (width, height) == (5 * 432, 4 * 360)  # 3.6 x 3.0 in panels at 120 dpi
    assert width > height

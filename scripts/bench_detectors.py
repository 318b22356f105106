"""Compare the detectors (Mahalanobis, KD+BU, LID) and the max-softmax baseline on digits.

Trains ``--model`` with head dropout (the Bayesian uncertainty of KD+BU samples it) for
``--epochs``, crafts FGSM, PGD-20 (both at ``--eps``), CW and DeepFool once on a 400-image
validation split and on the test split, so every detector sees the same adversarial examples,
then, per detector: the known-attack protocol, the unseen-attack protocol (ensemble fitted on
FGSM), a detector-aware PGD-10 (weight 0.1, the app's default) and fit/score times. Writes
``results.json``, ``table.md`` (who wins), ``scores.safetensors`` (per-example scores) and
``roc.png`` into ``--out``.

    python scripts/bench_detectors.py --model resnet20 --out docs/detection_resnet20
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from robustlab.attacks import FGSM, PGD, build_attack
from robustlab.data import TensorLoader, dataset_info, load_dataset, train_val_split
from robustlab.detection import adaptive_attack, create_detector, detection_metrics, msp_score
from robustlab.detection.crafting import craft, craft_split, noisy_negatives
from robustlab.detection.storage import write_detection_scores
from robustlab.devices import seed_everything
from robustlab.fileio import write_json_atomic
from robustlab.models import create_model
from robustlab.models.inference import predict
from robustlab.report.detection_plots import plot_detection_roc
from robustlab.report.detection_table import detection_table
from robustlab.training import CrossEntropy, build_optimizer, fit

DETECTORS = ("mahalanobis", "kd_bu", "lid")
FIT_ON = "fgsm"


def train_model(args) -> tuple[torch.nn.Module, tuple, tuple, tuple]:
    info = dataset_info("digits")
    train_x, train_y, val_x, val_y = train_val_split(
        *load_dataset("digits", split="train"), 400 / 1438, args.seed
    )
    model = create_model(args.model, 10, 1, mean=info.mean, std=info.std, dropout=args.dropout)
    loader = TensorLoader(train_x, train_y, 64, seed=args.seed)
    fit(model, loader, CrossEntropy(), build_optimizer(model, "adam", lr=3e-3), epochs=args.epochs)
    model.eval()
    return model, (train_x, train_y), (val_x, val_y), load_dataset("digits", split="test")


def attacks_for(model, eps: float) -> dict:
    return {
        f"fgsm@{eps!r}": FGSM(model, eps=eps),
        f"pgd@{eps!r}": PGD(model, eps=eps, alpha=2.5 * eps / 20, steps=20),
        "cw": build_attack("cw", model, c=1.0, kappa=0.0, steps=100, lr=0.01),
        "deepfool": build_attack("deepfool", model, steps=50, overshoot=0.02),
    }


def entry(clean: torch.Tensor, adv: torch.Tensor, n_clean: int) -> dict:
    """Metrics and the evasion rate (misclassified and under the 95%-TPR threshold)."""
    out = detection_metrics(clean, adv)
    threshold = float(np.quantile(adv.numpy(), 0.05))
    return {
        **out,
        "n_adversarial": len(adv),
        "evasion_rate": float((adv < threshold).sum()) / n_clean,
    }


def run_detector(name, model, train, val, noisy, test, args, scores) -> dict:
    start = time.perf_counter()
    detector = create_detector(name, seed=args.seed).fit(model, *train)
    results: dict = {"_timing": {"fit_s": time.perf_counter() - start}}
    n_clean = len(test.clean)
    fgsm_key = next(k for k in test.attacked if k.startswith(FIT_ON))
    for key, crafted in test.attacked.items():
        detector.fit_ensemble(val.clean, val.attacked[key].positives, noisy)
        start = time.perf_counter()
        clean_s, adv_s = detector.score(test.clean), detector.score(crafted.positives)
        results["_timing"]["score_s_per_1k"] = (
            1000 * (time.perf_counter() - start) / (n_clean + len(adv_s))
        )
        results[key] = {**entry(clean_s, adv_s, n_clean), **detector.summary()}
        scores.setdefault(key, {})[name] = (clean_s, adv_s)
        if key.startswith("pgd@"):
            attack = adaptive_attack(
                model, detector, args.eps, alpha=0.25 * args.eps, steps=10, weight=0.1
            )
            fooled = craft(model, attack, test.clean, test.labels, total=test.total, batch_size=256)
            adaptive_s = detector.score(fooled.positives)
            adaptive = entry(clean_s, adaptive_s, n_clean)
            # the same bar as the plain attack: the threshold catching 95% of its examples
            threshold = float(np.quantile(adv_s.numpy(), 0.05))
            adaptive["evasion_rate"] = float((adaptive_s < threshold).sum()) / n_clean
            results[key]["adaptive"] = {**adaptive, "robust_accuracy": fooled.robust_accuracy}
    detector.fit_ensemble(val.clean, val.attacked[fgsm_key].positives, noisy)
    for key, crafted in test.attacked.items():
        if key != fgsm_key:
            adv_s = detector.score(crafted.positives)
            results[f"{key}|unseen({fgsm_key})"] = entry(detector.score(test.clean), adv_s, n_clean)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="detection_bench")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seed_everything(args.seed)
    out = Path(args.out)
    model, train, (val_x, val_y), (test_x, test_y) = train_model(args)
    clean_acc = float((predict(model, test_x) == test_y).float().mean())
    attacks = attacks_for(model, args.eps)
    val = craft_split(model, val_x, val_y, attacks, batch_size=256, name="validation")
    noisy = noisy_negatives(model, val.clean, val.labels, std=0.05, seed=args.seed, batch_size=256)
    test = craft_split(model, test_x, test_y, attacks, batch_size=256, name="test")
    scores: dict = {key: {} for key in attacks}
    results = {n: run_detector(n, model, train, val, noisy, test, args, scores) for n in DETECTORS}
    msp_clean = msp_score(model, test.clean)
    for key, crafted in test.attacked.items():
        msp_adv = msp_score(model, crafted.positives)
        scores[key]["msp"] = (msp_clean, msp_adv)
        for name in DETECTORS:
            results[name][key]["baseline_msp"] = detection_metrics(msp_clean, msp_adv)
    timing = {n: results[n].pop("_timing") for n in DETECTORS}
    meta = {"model": args.model, "dropout": args.dropout, "epochs": args.epochs, "eps": args.eps}
    meta.update(clean_accuracy=clean_acc, n_clean_test=len(test.clean), timing=timing)
    write_json_atomic(out / "results.json", {**meta, "detection": results})
    write_detection_scores(out / "scores.safetensors", scores)
    plot_detection_roc(scores, out / "roc.png")
    table = detection_table(results)
    (out / "table.md").write_text(table, encoding="utf-8")
    print(f"{args.model}: clean accuracy {clean_acc:.3f}, timing {timing}\n{table}")


if __name__ == "__main__":
    main()

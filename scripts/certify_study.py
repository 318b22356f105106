"""Certified vs empirical robustness on digits: the figures of the README's certification section.

Trains small_cnn with standard training and with gaussian_noise at two sigmas, and resnet20 with
standard training (the default recipe: 15 epochs, SGD 0.05, cosine, batch 64, seed 0), then runs
robustlab.certify.certify_model on the test split and draws docs/certified_vs_empirical.png.
A second part measures the radius lost by a smaller N against N = 100,000 on a few examples.

    PYTHONPATH=$PWD python scripts/certify_study.py            # about 70 s on 2 CPU cores here
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch

from robustlab.certify import Smooth, certify_model, plot_certified_vs_empirical
from robustlab.data import TensorLoader, dataset_info, load_dataset
from robustlab.devices import seed_everything
from robustlab.models import create_model
from robustlab.training import CrossEntropy, GaussianNoise, build_optimizer, build_scheduler, fit

RUNS = [("small_cnn", 0.0), ("small_cnn", 0.25), ("small_cnn", 0.5), ("resnet20", 0.0)]


def train(name: str, sigma: float, epochs: int = 15) -> tuple[torch.nn.Module, float]:
    """A model trained with the default recipe; sigma > 0 trains with gaussian_noise."""
    seed_everything(0)
    info = dataset_info("digits")
    model = create_model(name, num_classes=10, in_channels=1, mean=info.mean, std=info.std)
    loader = TensorLoader(*load_dataset("digits", split="train"), batch_size=64, seed=0)
    optimizer = build_optimizer(model, "sgd", lr=0.05)
    scheduler = build_scheduler(optimizer, "cosine", epochs, len(loader))
    objective = GaussianNoise(sigma) if sigma > 0 else CrossEntropy()
    result = fit(model, loader, objective, optimizer, epochs=epochs, scheduler=scheduler)
    return model.eval(), result.seconds


def n_study(model, images, labels, sigma, sizes, big=100_000) -> dict:
    """Mean certified radius (abstain = 0) of the same examples at each N and at N = ``big``."""
    out = {}
    for n in [*sizes, big]:
        began = time.perf_counter()
        _, radii = Smooth(model, 10, sigma, seed=1).certify(images, 100, n, 0.001, batch_size=5000)
        out[n] = {"mean_radius": float(radii.mean()), "seconds": time.perf_counter() - began}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="smoothing samples per example")
    parser.add_argument("--fmn-examples", type=int, default=100)
    parser.add_argument("--study-examples", type=int, default=5)
    parser.add_argument("--figure", default="docs/certified_vs_empirical.png")
    parser.add_argument("--json", default="docs/certify_study.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images, labels = load_dataset("digits", split="test")
    results, series = {}, {}
    for name, sigma in RUNS:
        label = f"{name} / " + (f"gaussian_noise sigma={sigma}" if sigma else "none")
        model, train_s = train(name, sigma)
        began = time.perf_counter()
        report = certify_model(model, images, labels, sigma=sigma or None, n=args.n, min_norm=())
        k = args.fmn_examples
        fmn = certify_model(model, images[:k], labels[:k], lipschitz=False, min_norm_steps=100)
        report.min_norms, report.timing_s = fmn.min_norms, report.timing_s | fmn.timing_s
        timing = {"train_s": train_s, "certify_s": time.perf_counter() - began}
        results[label] = report.to_results() | timing
        curves = {"certified (smoothing)": report.smoothing_curve()} if sigma else {}
        curves["certified (Lipschitz margin)"] = report.lipschitz_curve()
        curves[f"empirical (FMN L2, base model, {k} ex.)"] = report.min_norm_curve("L2")
        series[label] = curves
        if sigma == 0.25:
            chosen = torch.arange(args.study_examples) * 7  # spread over the test split
            sizes = [1000, 2000, 10_000]
            results["n_study"] = n_study(model, images[chosen], labels[chosen], sigma, sizes)
        print(json.dumps(results[label], indent=1, default=str)[:3000])
    plot_certified_vs_empirical(series, args.figure)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, default=str)
    print(json.dumps(results.get("n_study"), indent=1))


if __name__ == "__main__":
    main()

"""Explain a trained digits checkpoint, clean vs PGD: figures, the results.json fragment, cost.

Rebuilds the model from a checkpoint directory written by ``robustlab-train`` (model.json
holds its config), crafts PGD-20 adversarial examples (Linf, step eps/10, as the default
evaluation) of the whole digits test split, runs ``explain_robustness`` with its defaults and
writes the explanation grid (and, for SE models, the SE figure).

    robustlab-train model=resnet20 logger=none detector=none paths.checkpoints=checkpoints
    python scripts/explain_digits.py checkpoints/digits-resnet20-none-s0-model-* \
        --figure docs/explain_resnet20.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from robustlab.attacks import PGD
from robustlab.data import dataset_info, load_dataset
from robustlab.devices import seed_everything
from robustlab.explain import explain_robustness, plot_explanations, plot_se_attention
from robustlab.fileio import json_safe
from robustlab.models import create_model
from robustlab.training import load_weights
from robustlab.training.checkpoint import WEIGHTS_META, read_json


def load_model(directory: Path) -> tuple[torch.nn.Module, str]:
    """The checkpoint's model (eval mode) and its data set name."""
    config = read_json(directory / WEIGHTS_META)["config"]
    options = {k: v for k, v in config["model"].items() if k != "_target_" and v is not None}
    info = dataset_info(config["data"]["name"])
    model = create_model(
        options.pop("name"),
        info.num_classes,
        info.in_channels,
        mean=info.mean,
        std=info.std,
        **options,
    )
    load_weights(directory, model)
    return model.eval(), config["data"]["name"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a robustlab-train checkpoint directory")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, help="explanation grid PNG")
    parser.add_argument("--se-figure", type=Path, help="SE attention PNG (SE models only)")
    parser.add_argument("--display", type=int, default=4, help="examples in the grid")
    args = parser.parse_args()
    model, data = load_model(args.checkpoint)
    images, labels = load_dataset(data, split="test")
    seed_everything(args.seed)
    started = time.perf_counter()
    adversarial = PGD(model, eps=args.eps, alpha=args.eps / 10, steps=20)(images, labels)
    pgd_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = explain_robustness(
        model, images, adversarial, labels, seed=args.seed, n_display=args.display
    )
    seconds = time.perf_counter() - started
    if args.figure:
        plot_explanations(report.display, args.figure)
    if args.se_figure:
        plot_se_attention(report.se_attention, args.se_figure)
    print(json.dumps(json_safe(report.to_results()), indent=1))
    print(
        json.dumps(
            {
                "warnings": report.warnings,
                "pgd_s": pgd_seconds,
                "explain_s": seconds,
                "plots_s": time.perf_counter() - started - seconds,
            }
        )
    )


if __name__ == "__main__":
    main()

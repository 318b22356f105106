"""Re-run the feature inversion of a finished sweep's models at other step counts.

The explain stage inverts every stage with a fixed budget (``explain.inversion_steps``); a
robust model's deep features can need more steps to reach the same feature error, and a pixel
error only compares models at comparable feature errors. This reads each job's checkpoint and
test images back (no retraining, no attacks) and prints the median pixel / feature errors per
layer for each step count, on the same images as the sweep.

    python scripts/inversion_steps.py multirun/representations --steps 300 1000 --data mnist5k
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

import robustlab
from robustlab.explain import inversion_study
from robustlab.explain.inversion_study import INVERSIONS_FILE, ORIGINALS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--data", default=None, help="only the jobs of this data set")
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in sorted(args.sweep.glob("*/results.json")):
        results = json.loads(path.read_text())
        if results.get("status") != "ok" or args.data not in (None, results["dataset"]):
            continue
        model = robustlab.load_checkpoint(results["checkpoint"])
        images = inverted_images(path.parent)[: args.examples]
        for steps in args.steps:
            study = inversion_study(model, images, steps=steps)
            cells = {k: f"{v['pixel_error']:.3f}/{v['feature_error']:.3f}" for k, v in
                     study.medians().items()}  # fmt: skip
            print(results["dataset"], results["model"], results["defense"], steps, cells)


def inverted_images(job_dir: Path) -> torch.Tensor:
    """The images the job's explain stage inverted, as it saved them beside results.json."""
    return load_file(str(job_dir / INVERSIONS_FILE))[ORIGINALS]


if __name__ == "__main__":
    main()

"""The GPU path, measured on CIFAR-shaped synthetic data (run by scripts/gpu_check.sh).

1. images/s of a training step (forward + backward + SGD) for PreActResNet-18 and WRN-28-10,
   fp32 vs bf16 autocast (channels-last weights on CUDA), and their ratio;
2. the cost of one PGD step (forward + input gradient) over a bare forward pass;
3. throughput of the standard worst-case suite (examples/s) with fp32 and bf16 crafting;
4. the worst case found by bf16 crafting vs fp32 crafting on one model and the same images
   (every break is judged in fp32 either way: the two numbers differ only by the search);
5. a few steps of each CIFAR-10 recipe (robustlab-train experiment=cifar10_*) on synthetic
   batches written in the official format.

    python scripts/gpu_check.py              # on a CUDA machine, a few minutes
    python scripts/gpu_check.py --cpu-smoke  # tiny sizes on the CPU: checks the script runs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from robustlab.attacks.pgd import PGD
from robustlab.data.cifar10 import write_cifar10_batches
from robustlab.evaluation.suite import worst_case
from robustlab.models import create_model
from robustlab.models.acceleration import AMP_DTYPE, prepare_model
from robustlab.models.inference import predict

EPS = 8 / 255
RECIPES = ("cifar10_fast_at", "cifar10_pgd_at", "cifar10_trades")


@dataclass
class Sizes:
    """How much each measurement runs: the GPU's sizes, or the CPU smoke test's."""

    batch: int = 256
    steps: int = 20
    wrn_batch: int = 128
    suite_examples: int = 512
    recipe_train: int = 1280  # 10 steps of the recipes' batch of 128
    recipe_eval: int = 256
    models: tuple[tuple[str, dict], ...] = (("preact_resnet18", {}), ("wrn28_10", {}))
    suite: str = "standard"
    # an untrained model: the small eps keep some examples standing for the suite to work on
    grid: tuple[float, ...] = (1 / 255, 2 / 255, EPS)
    suite_model: tuple[str, dict] = ("preact_resnet18", {})


# a check that the script runs, not a measurement: small models, a handful of images
SMOKE = Sizes(
    batch=4,
    steps=1,
    wrn_batch=2,
    suite_examples=2,
    recipe_train=0,
    recipe_eval=0,
    models=(("resnet20", {}), ("wrn28_10", {"depth": 10, "widen_factor": 1})),
    suite="fast",
    grid=(EPS,),
    suite_model=("resnet20", {}),
)


def timed(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Seconds per call of ``run`` after two warm-up calls (CUDA synchronised)."""
    for _ in range(2):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def model_on(name: str, options: dict, device: torch.device) -> torch.nn.Module:
    model = create_model(name, num_classes=10, in_channels=3, **options).to(device)
    return prepare_model(model, device)


def train_images_per_second(model, batch: int, steps: int, dtype, device) -> float:
    """Images/s of forward + backward + SGD step, under autocast to ``dtype`` (None: fp32)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.rand(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    model.train()

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch / timed(step, steps, device)


def training_throughput(sizes: Sizes, device: torch.device) -> None:
    print("\n1. training step (forward + backward + SGD), images/s")
    for index, (name, options) in enumerate(sizes.models):
        batch = sizes.batch if index == 0 else sizes.wrn_batch
        model = model_on(name, options, device)
        fp32 = train_images_per_second(model, batch, sizes.steps, None, device)
        bf16 = train_images_per_second(model, batch, sizes.steps, AMP_DTYPE, device)
        print(f"   {name:16s} batch {batch:4d}  fp32 {fp32:9.1f}  bf16 {bf16:9.1f}  "
              f"bf16/fp32 {bf16 / fp32:5.2f}x")  # fmt: skip


def pgd_step_cost(sizes: Sizes, device: torch.device) -> None:
    print("\n2. one PGD step (forward + input gradient) over a bare forward pass")
    model = model_on(*sizes.models[0], device).eval()
    images = torch.rand(sizes.batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (sizes.batch,), device=device)
    steps = max(2, sizes.steps // 2)

    @torch.no_grad()
    def bare() -> None:
        model(images)

    forward = timed(bare, sizes.steps, device)
    attack = PGD(model, eps=EPS, alpha=EPS / 4, steps=steps, early_stop=False)
    per_step = timed(lambda: attack(images, labels), 2, device) / steps
    print(f"   {sizes.models[0][0]} batch {sizes.batch}: forward {forward * 1e3:.2f} ms, PGD "
          f"step {per_step * 1e3:.2f} ms, ratio {per_step / forward:.2f}x")  # fmt: skip


def suite_runs(sizes: Sizes, device: torch.device) -> None:
    print(f"\n3-4. {sizes.suite} worst-case suite on {sizes.suite_model[0]}, fp32 vs bf16 "
          "crafting (verdicts in fp32)")  # fmt: skip
    torch.manual_seed(0)
    model = model_on(*sizes.suite_model, device).eval()
    images = torch.rand(sizes.suite_examples, 3, 32, 32)
    labels = predict(model, images, device=device)  # every example starts correct
    if sizes.suite_examples < 8:  # the smoke run: every example wrong, the path runs unattacked
        labels = (labels + 1) % 10
    grid, results = list(sizes.grid), {}
    for label, dtype in (("fp32", None), ("bf16", AMP_DTYPE)):
        started = time.perf_counter()
        result = worst_case(model, images, labels, grid, suite=sizes.suite, crafting_dtype=dtype)
        seconds = time.perf_counter() - started
        results[label] = (result.accuracy, seconds)
        print(
            f"   {label}: {len(images) / seconds:8.1f} examples/s ({seconds:.1f} s), worst case "
            + ", ".join(
                f"{e * 255:.0f}/255: {a:.4f}" for e, a in zip(grid, result.accuracy, strict=True)
            )
        )
    (fp32, t32), (bf16, t16) = results["fp32"], results["bf16"]
    gap = max(abs(a - b) for a, b in zip(fp32, bf16, strict=True))
    print(
        f"   bf16/fp32 suite speed {t32 / t16:.2f}x; largest worst-case gap {gap:.4f} "
        f"({gap * len(images):.0f} of {len(images)} examples)"
    )


def recipe_steps(sizes: Sizes, device: torch.device) -> None:
    print("\n5. a few steps of each recipe (synthetic batches in the official format)")
    if sizes.recipe_train == 0:
        print("   skipped in --cpu-smoke (tests/test_cifar10_recipes.py runs them on the CPU)")
        return
    with tempfile.TemporaryDirectory() as root:
        generator = torch.Generator().manual_seed(0)
        n, m = sizes.recipe_train + 100, sizes.recipe_eval
        train = (torch.rand(n, 3, 32, 32, generator=generator), torch.arange(n) % 10)
        write_cifar10_batches(root, train, (train[0][:m], train[1][:m]))
        for recipe in RECIPES:
            started = time.perf_counter()
            done = subprocess.run(
                [str(Path(sys.executable).parent / "robustlab-train"), f"experiment={recipe}",
                 "train.epochs=1", f"data.max_train={sizes.recipe_train}", f"data.root={root}",
                 "data.val_fraction=0.05", "defense.heldout_size=64", f"eval.max_examples={m}",
                 "logger=none", f"paths.checkpoints={root}/checkpoints",
                 f"hydra.run.dir={root}/{recipe}"],
                capture_output=True, text=True, env=dict(os.environ, ROBUSTLAB_PROGRESS="0"),
            )  # fmt: skip
            status = "ok" if done.returncode == 0 else f"FAILED: {done.stderr.strip()[-300:]}"
            print(f"   {recipe:16s} {time.perf_counter() - started:7.1f} s  {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    if args.cpu_smoke:
        device, sizes = torch.device("cpu"), SMOKE
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda"), Sizes()
        torch.backends.cudnn.benchmark = True
    else:
        print("no CUDA device: nothing to measure (--cpu-smoke runs the script on tiny sizes)")
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"robustlab GPU check on {name}, torch {torch.__version__}")
    training_throughput(sizes, device)
    pgd_step_cost(sizes, device)
    suite_runs(sizes, device)
    recipe_steps(sizes, device)


if __name__ == "__main__":
    main()

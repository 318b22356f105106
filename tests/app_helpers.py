"""Running the Hydra entry points in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.schema import register_schemas

ENTRY_POINTS = {
    "train": "robustlab.app.train",
    "eval": "robustlab.app.evaluate",
    "detect": "robustlab.app.detect",
    "report": "robustlab.app.report",
}


def _run(command: list[str], cwd: Path, timeout: int, **env_vars: str):
    env = dict(os.environ)
    env.update(
        ROBUSTLAB_CHECKPOINTS=str(cwd / "checkpoints"),
        ROBUSTLAB_PROGRESS="0",
        WANDB_SILENT="true",
        HYDRA_FULL_ERROR="0",
    )
    env.update(env_vars)
    env.pop("ROBUSTLAB_DATA", None)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_entry(entry: str, *args: str, cwd: Path, timeout: int = 420) -> subprocess.CompletedProcess:
    """Run ``python -m robustlab.app.<entry> ARGS`` in ``cwd`` with checkpoints kept there."""
    return _run([sys.executable, "-m", ENTRY_POINTS[entry], *args], cwd, timeout)


def run_console(
    command: str, *args: str, cwd: Path, timeout: int = 120, **env_vars: str
) -> subprocess.CompletedProcess:
    """Run the installed console script ``command`` (``robustlab-train``...) as a user would."""
    script = Path(sys.executable).parent / command
    return _run([str(script), *args], cwd, timeout, **env_vars)


def job_results(root: Path) -> list[dict]:
    """Every results.json below ``root``, sorted by job directory."""
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def compose_tiny(root, *overrides: str):
    """The tiny smoke config, checkpoints under ``root``, no logger, plus ``overrides``."""
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=tiny",
                "detector=none",
                "logger=none",
                f"paths.checkpoints={root / 'checkpoints'}",
                *overrides,
            ],
        )
    GlobalHydra.instance().clear()
    return cfg


def saved_checkpoint(
    directory: Path,
    *,
    model: str,
    defense: str = "none",
    seed: int = 0,
    data: str = "digits",
    epochs: int = 0,
) -> Path:
    """A checkpoint as ``robustlab-train`` writes one (weights + model.json), in seconds: for
    commands that need a model of a known identity; ``epochs`` of plain Adam on the data's
    training split make it a fair classifier (0: untrained)."""
    import torch

    from robustlab.data import dataset_info, load_dataset
    from robustlab.models import create_model
    from robustlab.training.checkpoint import save_weights

    torch.manual_seed(seed)
    info = dataset_info(data)
    net = create_model(
        model, info.num_classes, info.in_channels, mean=list(info.mean), std=list(info.std)
    )
    if epochs:
        images, labels = load_dataset(data, split="train")
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(epochs):
            for batch in torch.randperm(len(images)).split(64):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(net(images[batch]), labels[batch]).backward()
                optimizer.step()
        net.eval()
    config = {
        "data": {
            "name": data,
            "root": None,
            "val_fraction": 0.15,
            "batch_size": 64,
            "crop_padding": 0,
            "horizontal_flip": False,
            "max_train": 256,
        },
        "model": {"_target_": "robustlab.models.create_model", "name": model},
        "defense": {"name": defense},
        "seed": seed,
    }
    save_weights(directory, net, {"config": config, "epoch": 1})
    return directory

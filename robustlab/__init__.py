"""robustlab: an adversarial-robustness lab for PyTorch.

The library packages (data, models, attacks, training, detection, explain, certify) import
neither Hydra nor W&B; only ``robustlab.app`` reads configs and only ``robustlab.tracking``
talks to W&B. ``robustlab.load_checkpoint(directory)`` rebuilds a trained model.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_checkpoint"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import robustlab` alone (e.g. to read a sweep) needs no torch.
    if name == "load_checkpoint":
        from robustlab.loading import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'robustlab' has no attribute {name!r}")

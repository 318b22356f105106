"""robustlab: an adversarial-robustness lab for PyTorch.

The library packages (data, models, attacks, training, detection) import neither Hydra nor
W&B; only ``robustlab.app`` reads configs and only ``robustlab.tracking`` talks to W&B.
"""

__version__ = "0.1.0"

"""One exception family: a bad argument to any room's public entry is a RobustlabError that is
also a ValueError (``ConfigError`` for an option, ``InputError`` for the data handed in)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    InputError,
    RobustlabError,
)


def test_config_and_input_errors_are_value_errors():
    assert issubclass(ConfigError, RobustlabError) and issubclass(ConfigError, ValueError)
    assert issubclass(InputError, ConfigError)
    # a missing file or a stale checkpoint is not a bad argument
    assert not issubclass(DataError, ValueError) and not issubclass(CheckpointError, ValueError)


def _model() -> nn.Module:
    from robustlab.models import create_model

    return create_model("small_cnn", 10, 1)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(2, 1, 8, 8), torch.tensor([0, 1])


def _data():
    from robustlab.data import load_dataset

    load_dataset("no_such_data")


def _data_loader():
    from robustlab.data import TensorLoader

    TensorLoader(*_images(), batch_size=0)


def _models():
    from robustlab.models import create_model

    create_model("resnet20", 0, 1)


def _training():
    from robustlab.training import AdversarialTraining

    AdversarialTraining(eps=-0.1, alpha=0.1, steps=1)


def _training_optimizer():
    from robustlab.training import build_optimizer

    build_optimizer(_model(), "no_such_optimizer", 0.1)


def _detection():
    from robustlab.detection import MahalanobisDetector

    MahalanobisDetector(shrinkage=1.5)


def _explain():
    from robustlab.explain import attribute

    attribute(_model(), _images()[0], method="no_such_method")


def _certify():
    from robustlab.certify import Smooth

    Smooth(_model(), 10, -1.0)


def _certify_operator_norm():
    from robustlab.certify import operator_norm

    operator_norm(nn.ReLU(), (1,))


def _tracking():
    from robustlab.tracking import WandbLogger

    WandbLogger("robustlab-test", {}, mode="no_such_mode")


def _distributed():
    from robustlab.distributed import shard_range

    shard_range(5, rank=3, world_size=2)


def _figures():
    from robustlab.figures import new_figure

    new_figure(0, 1)


def _attacks():
    from robustlab.attacks import PGD

    PGD(_model(), eps=-0.1, alpha=0.1, steps=1)


def _evaluation():
    from robustlab.evaluation import evaluate

    evaluate(_model(), *_images(), [-0.1])


BAD_ARGUMENTS = {
    "data": _data,
    "data-loader": _data_loader,
    "models": _models,
    "training": _training,
    "training-optimizer": _training_optimizer,
    "detection": _detection,
    "explain": _explain,
    "certify": _certify,
    "certify-operator-norm": _certify_operator_norm,
    "tracking": _tracking,
    "distributed": _distributed,
    "figures": _figures,
    "attacks": _attacks,
    "evaluation": _evaluation,
}


@pytest.mark.parametrize("call", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_a_bad_argument_is_a_robustlab_error_and_a_value_error(call):
    with pytest.raises(RobustlabError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ConfigError)  # InputError is a ConfigError too
    assert "\n" not in str(caught.value)  # one line for the user


def test_a_missing_sweep_folder_is_a_robustlab_error(tmp_path):
    from robustlab.report import write_report

    with pytest.raises(RobustlabError, match="does not exist"):
        write_report(tmp_path / "no_sweep")

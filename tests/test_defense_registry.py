"""The defense registry: register, list, create; options checked against the dataclass."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from robustlab.app.option_schemas import defense_schema
from robustlab.errors import ConfigError
from robustlab.training import CrossEntropy, Defense, create_defense, list_defenses
from robustlab.training.objectives import (
    TRADES,
    AdversarialTraining,
    FastAdversarialTraining,
    bounded,
    register_defense,
)


def test_every_defense_of_the_study_is_registered():
    assert {"none", "pgd_at", "fast_at", "trades", "distillation", "gaussian_noise"} <= set(
        list_defenses()
    )
    assert list_defenses() == sorted(list_defenses())


def test_unknown_names_options_and_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="did you mean pgd_at") as err:
        create_defense("pgd")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="has no option.*stepz.*valid options:.*steps"):
        create_defense("pgd_at", stepz=3)
    with pytest.raises(ConfigError, match=r"pgd_at.eps=2.0 is out of range: it must be <= 1.0"):
        create_defense("pgd_at", eps=2.0)
    with pytest.raises(ConfigError, match="choose one of eval, train"):
        create_defense("fast_at", model_mode="test")
    with pytest.raises(ConfigError, match="must be >"):
        create_defense("distillation", temperature=0.0)


def test_step_sizes_are_fractions_of_eps():
    pgd = create_defense("pgd_at", eps=0.2, steps=5, step_size=0.25).objective()
    expected = AdversarialTraining(eps=0.2, alpha=0.05, steps=5).describe()
    assert pgd.describe() == expected
    fast = create_defense("fast_at", eps=0.2).objective()
    assert fast.describe() == FastAdversarialTraining(eps=0.2).describe()  # alpha 1.25 eps
    assert fast.alpha == pytest.approx(0.25)
    trades = create_defense("trades", eps=0.1, beta=3.0).objective()
    assert trades.describe() == TRADES(eps=0.1, alpha=0.025, steps=7, beta=3.0).describe()


def test_what_a_defense_needs_besides_its_objective():
    assert create_defense("fast_at", eps=0.3).heldout_check().eps == 0.3  # on by default
    assert create_defense("pgd_at").heldout_check() is None
    checked = create_defense("trades", monitor_heldout=True, heldout_size=16).heldout_check()
    assert (checked.size, checked.steps) == (16, 10)
    teacher, epochs = create_defense("distillation", temperature=4.0, teacher_epochs=2).teacher()
    assert epochs == 2 and teacher.describe() == {
        "name": "standard",
        "temperature": 4.0,
        "scale_by_temperature": True,
    }
    assert create_defense("gaussian_noise", sigma=0.5).noise_sigma() == 0.5
    assert create_defense("none").noise_sigma() is None and create_defense("none").teacher() is None


def test_a_new_defense_is_one_registered_dataclass():
    @register_defense("smoothed_labels")
    @dataclass
    class SmoothedLabels(Defense):
        """Cross-entropy against labels smoothed by ``smoothing``."""

        smoothing: float = bounded(0.1, 0.0, 1.0)

        def objective(self, teacher: nn.Module | None = None) -> CrossEntropy:
            return CrossEntropy(label_smoothing=self.smoothing)

    assert "smoothed_labels" in list_defenses()
    objective = create_defense("smoothed_labels", smoothing=0.2).objective()
    logits, labels = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    model = nn.Identity()
    # closed form: -(0.9 log p0 + 0.1 log p1) with p = softmax([2, 0])
    log_p = torch.log_softmax(logits, dim=1)[0]
    assert objective(model, logits, labels).loss.item() == pytest.approx(
        -(0.9 * log_p[0] + 0.1 * log_p[1]).item(), rel=1e-6
    )
    with pytest.raises(ConfigError, match="out of range"):
        create_defense("smoothed_labels", smoothing=1.5)
    # its command-line schema comes with the registration: its options and its name
    schema = OmegaConf.structured(defense_schema("smoothed_labels"))
    assert OmegaConf.to_container(schema) == {"smoothing": 0.1, "name": "smoothed_labels"}

"""Bad inputs to the evaluation's entry points: one clear InputError line (a ValueError), never
a raw torch error or a silent answer; and a model in train mode is evaluated in eval mode with
the card saying so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.attacks import FGSM
from robustlab.errors import InputError
from robustlab.evaluation import evaluate, evaluate_robustness, robust_accuracy, worst_case


def linear(channels: int = 1, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, classes)).eval()


class TupleOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = linear()

    def forward(self, images: torch.Tensor):
        return self.net(images), images.mean()


@pytest.fixture
def data():
    torch.manual_seed(0)
    images = torch.rand(12, 1, 4, 4)
    return images, linear()(images).argmax(1)


ENTRIES = {
    "evaluate": lambda m, x, y, g: evaluate(m, x, y, g, suite="fast", large_eps=None),
    "worst_case": lambda m, x, y, g: worst_case(m, x, y, g, suite="fast"),
    "evaluate_robustness": lambda m, x, y, g: evaluate_robustness(m, x, y, {}, g, large_eps=None),
    "robust_accuracy": lambda m, x, y, g: robust_accuracy(m, x, y, lambda e: FGSM(m, e), g),
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_bad_inputs_are_one_line(entry, data):
    images, labels = data
    run = ENTRIES[entry]
    with pytest.raises(InputError, match="empty batch"):
        run(linear(), images[:0], labels[:0], [0.1])
    with pytest.raises(InputError, match="logits tensor"):
        run(TupleOutput(), images, labels, [0.1])
    with pytest.raises(InputError, match="fails on one image of shape"):
        run(linear(channels=3), images, labels, [0.1])
    with pytest.raises(InputError, match="meta device"):
        run(linear().to("meta"), images, labels, [0.1])
    with pytest.raises(InputError, match=r"labels must lie in \[0, 4\)"):
        run(linear(), images, torch.full_like(labels, 10), [0.1])
    for error in (InputError, ValueError):  # one family: InputError is a ValueError
        with pytest.raises(error):
            run(linear(), images, labels, [-0.1])


@pytest.mark.parametrize("entry", ["evaluate", "worst_case", "evaluate_robustness"])
def test_a_linf_eps_in_pixel_units_is_refused(entry, data):
    images, labels = data
    with pytest.raises(InputError, match="write 8/255, not 8"):
        ENTRIES[entry](linear(), images, labels, [8])


def test_a_scalar_eps_grid_is_a_one_element_grid(data):
    images, labels = data
    model = linear()
    single = robust_accuracy(model, images, labels, lambda e: FGSM(model, e), 0.1)
    listed = robust_accuracy(model, images, labels, lambda e: FGSM(model, e), [0.1])
    assert single.eps == listed.eps == [0.1] and single.accuracy == listed.accuracy
    card = evaluate(model, images, labels, 0.1, suite="fast", large_eps=None)
    assert list(card.worst_case) == ["0.1"]


def test_a_model_in_train_mode_is_evaluated_in_eval_mode_and_the_card_says_so(data):
    images, labels = data
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    model.train()
    card = evaluate(model, images, labels, [0.05], suite="fast", large_eps=None)
    assert model.training  # given back as it was
    assert card.draws == 1  # dropout was off: a deterministic forward, not a randomized one
    assert any("train mode" in note for note in card.notes)
    assert "train mode" in card.to_markdown()
    eval_card = evaluate(model.eval(), images, labels, [0.05], suite="fast", large_eps=None)
    assert eval_card.notes == []

"""BatchNorm folding for attacks: the same function with fewer layers, or the model itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.evaluation import worst_case
from robustlab.models import create_model
from robustlab.models.folding import fold_batchnorm
from tests.attack_fixtures import digits_split, trained_tiny_cnn


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _with_running_statistics(model: nn.Module) -> nn.Module:
    # Fresh BN layers are the identity in eval mode; a few train-mode passes give them real
    # running statistics, so that folding has something to fold.
    model.train()
    with torch.no_grad():
        for seed in range(3):
            model(torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 0.7)
    return model


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", ["resnet20", "se_resnet20", "mgnet", "small_cnn"])
def test_folded_copy_has_the_same_logits_and_input_gradient(name, channels_last):
    torch.manual_seed(0)
    model = _with_running_statistics(create_model(name, num_classes=10, in_channels=1))
    probe = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    folded = fold_batchnorm(model, probe, channels_last)
    assert folded is not model and _batchnorms(folded) < _batchnorms(model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    convolutions = [m.weight for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=layout) for w in convolutions)
    assert all(p.is_contiguous() for p in model.parameters())
    model.eval()
    grads = []
    for net in (model, folded):
        x = probe.clone().requires_grad_(True)
        logits = net(x)
        grads.append((logits, torch.autograd.grad(logits.logsumexp(1).sum(), x)[0]))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-3, atol=1e-6)
    assert not any(p.requires_grad for p in folded.parameters())


def test_the_original_model_is_left_as_it_was():
    model = _with_running_statistics(create_model("resnet20", num_classes=10, in_channels=1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorm(model, torch.rand(4, 1, 8, 8))
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert _batchnorms(model) == 21


class _DataDependent(nn.Module):
    """Branches on the input's values, which symbolic tracing cannot follow."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 10)

    def forward(self, x):
        h = self.bn(self.conv(x)).mean((2, 3))
        return self.head(h if x.sum() > 0 else -h)


def test_untraceable_or_batchnorm_free_models_are_used_as_they_are():
    probe = torch.rand(4, 1, 8, 8)
    untraceable = _DataDependent().eval()
    assert fold_batchnorm(untraceable, probe) is untraceable
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert fold_batchnorm(plain, probe) is plain


def test_every_break_the_suite_counts_holds_on_the_original_model():
    # The suite crafts on the folded copy; each counted break must fool the model itself.
    net = trained_tiny_cnn()
    images, labels = digits_split()[2][:60], digits_split()[3][:60]
    assert fold_batchnorm(net, images) is not net
    result = worst_case(net, images, labels, [0.1], suite="fast", keep_adversarial=[0.1])
    adversarial = result.adversarial[0.1]
    assert (adversarial - images).abs().max() <= 0.1 + 1e-6
    with torch.no_grad():
        fooled = net.eval()(adversarial).argmax(1) != labels
    broken = result.broken_eps <= 0.1
    assert broken.any()
    assert torch.equal(fooled[broken], torch.ones(int(broken.sum()), dtype=torch.bool))

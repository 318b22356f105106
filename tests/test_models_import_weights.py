"""import_weights: reference checkpoints (TRADES/RobustBench WRN, fast_adversarial PreActResNet-18)
give the same logits in robustlab's models. The reference classes are rebuilt here from the
reference code's layer layout (names, order, forward), with random weights and BN statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import CheckpointError, ConfigError
from robustlab.models import create_model, import_weights
from robustlab.models.import_weights import WRN_RULES, map_keys

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


class RefWideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equal:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equal else x)))
        return torch.add(x if self.equal else self.convShortcut(x), self.conv2(out))


class RefNetworkBlock(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *[
                RefWideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                for i in range(n)
            ]
        )

    def forward(self, x):
        return self.layer(x)


class RefWideResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, k: int, sub_block1: bool = False):
        super().__init__()
        n, ch = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.block1 = RefNetworkBlock(n, ch[0], ch[1], 1)
        if sub_block1:
            self.sub_block1 = RefNetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = RefNetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = RefNetworkBlock(n, ch[2], ch[3], 2)
        self.bn1, self.relu = nn.BatchNorm2d(ch[3]), nn.ReLU(inplace=True)
        self.fc, self.nc = nn.Linear(ch[3], num_classes), ch[3]

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8)
        return self.fc(out.view(-1, self.nc))


class RefPreActBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = (
            nn.BatchNorm2d(planes),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
        )
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class RefPreActResNet18(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1, cin = nn.Conv2d(3, 64, 3, 1, 1, bias=False), 64
        for i, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            blocks = [RefPreActBlock(cin, planes, stride), RefPreActBlock(planes, planes, 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = planes
        self.bn, self.linear = nn.BatchNorm2d(512), nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.avg_pool2d(F.relu(self.bn(out)), 4)
        return self.linear(out.view(out.size(0), -1))


def _randomise(model: nn.Module) -> nn.Module:
    """Random BN affine terms and statistics on top of PyTorch's random conv/linear init, so
    every tensor of the checkpoint matters and the logits stay of order one."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
    return model.eval()


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "module"])
def test_wrn_logits_match_reference(tmp_path, wrap):
    torch.manual_seed(0)  # the spread check below must not depend on the tests run before
    ref = _randomise(RefWideResNet(10, 7, 2, sub_block1=True))
    state = ref.state_dict()
    if wrap == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state if wrap in (None, "module") else {wrap: state}, tmp_path / "wrn.pt")
    model = import_weights("wide_resnet", tmp_path / "wrn.pt", depth=10, widen_factor=2)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        assert torch.allclose(logits, ref(x), atol=1e-5, rtol=0)
    # a comparison that can fail: the logits differ between images by far more than atol
    # (a seeded 0.001 here; a deep net at random init maps uniform noise to nearby logits)
    assert logits.abs().max() > 0.01 and logits.std(0).max() > 50 * 1e-5
    assert not model.training


def test_preact_resnet18_logits_match_reference_normalised_outside(tmp_path):
    ref = _randomise(RefPreActResNet18(10))
    torch.save(ref.state_dict(), tmp_path / "fast.pt")
    model = import_weights("preact_resnet18", tmp_path / "fast.pt", CIFAR_MEAN, CIFAR_STD)
    x = torch.rand(2, 3, 32, 32)
    normalised = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        assert torch.allclose(model(x), ref(normalised), atol=1e-5, rtol=0)


def test_full_wrn28_10_names_map_onto_robustlab_on_meta():
    with torch.device("meta"):
        ref, ours = RefWideResNet(28, 10, 10), create_model("wrn28_10", 10, 3)
    mapped = map_keys(ref.state_dict(), WRN_RULES)
    expected = {k: v.shape for k, v in ours.state_dict().items() if not k.startswith("normalize.")}
    assert {k: v.shape for k, v in mapped.items()} == expected


def test_wrong_depth_is_one_line_naming_missing_keys(tmp_path):
    torch.save(RefWideResNet(16, 10, 1).state_dict(), tmp_path / "wrn.pt")
    with pytest.raises(CheckpointError) as info:
        import_weights("wide_resnet", tmp_path / "wrn.pt", depth=10, widen_factor=1)
    message = str(info.value)
    assert "\n" not in message and "unexpected keys" in message and "stages.0.1." in message


def test_wrong_width_names_the_shape(tmp_path):
    torch.save(RefWideResNet(10, 10, 3).state_dict(), tmp_path / "wrn.pt")
    with pytest.raises(CheckpointError, match="has shape"):
        import_weights("wide_resnet", tmp_path / "wrn.pt", depth=10, widen_factor=2)


def test_pickled_objects_and_unknown_layouts_are_refused(tmp_path):
    torch.save({"weights": object()}, tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match="tensor-only"):
        import_weights("wrn28_10", tmp_path / "obj.pt")
    with pytest.raises(ConfigError, match="no reference layout"):
        import_weights("small_cnn", tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        import_weights("wrn28_10", tmp_path / "missing.pt")

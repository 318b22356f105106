"""The one registry shape: ``robustlab.registry.Registry`` itself, and every room exposing it
as ``register_<thing>``, ``list_<things>`` and ``create_<thing>``."""

from __future__ import annotations

import importlib

import pytest
from torch import nn

from robustlab.errors import ConfigError
from robustlab.registry import Registry, nearest_names, unknown_name_message


def _factory(model: nn.Module, eps: float = 0.1, *, steps: int = 10, **extra: object) -> str:
    return f"eps={eps} steps={steps}"


def _other(model: nn.Module) -> str:
    return "other"


@pytest.fixture
def registry() -> Registry:
    registry = Registry("widget")
    registry.register("FastWidget")(_factory)
    registry.register("slow_widget")(_other)
    return registry


def test_names_ignore_case_and_keep_their_spelling(registry):
    assert registry.get("fastwidget") is _factory and registry.get("FASTWIDGET") is _factory
    assert "fAsTwIdGeT" in registry and "fast" not in registry and 3 not in registry
    assert registry.names() == ["FastWidget", "slow_widget"]  # registration order


def test_a_taken_name_is_an_error_unless_it_is_the_same_entry(registry):
    assert registry.register("fastwidget")(_factory) is _factory  # a module imported twice
    with pytest.raises(ValueError, match="already registered"):
        registry.register("FASTWIDGET")(_other)
    assert registry.get("FastWidget") is _factory


def test_unknown_name_is_one_line_with_the_nearest_names(registry):
    with pytest.raises(ConfigError) as info:
        registry.get("slow_widgt")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown widget 'slow_widgt': did you mean slow_widget or")
    assert message.endswith("(valid: FastWidget, slow_widget)")
    assert "did you mean" not in unknown_name_message("widget", "zzz", registry.names())
    assert unknown_name_message("widget", "x", []).endswith("(valid: none)")


def test_nearest_names_rank_by_similarity_then_common_prefix():
    models = ["resnet20", "resnet32", "wrn28_10", "small_cnn"]
    assert nearest_names("resnet21", models) == ["resnet20", "resnet32", "wrn28_10"]
    assert nearest_names("resnet21", models, n=1) == ["resnet20"]
    assert nearest_names("smal_cnn", models) == ["small_cnn"]
    assert nearest_names("qqqq", models) == []


def test_options_come_from_the_signature(registry):
    assert registry.options("FastWidget", skip=("model",)) == {"eps": 0.1, "steps": 10}
    assert registry.options("slow_widget", skip=("model",)) == {}
    registry.check_options("FastWidget", ["eps", "steps"], skip=("model",))
    with pytest.raises(ConfigError) as info:
        registry.check_options("FastWidget", ["eps", "stepz", "alpha"], skip=("model",))
    message = str(info.value)
    assert (
        "\n" not in message and "alpha, stepz" in message and "valid options: eps, steps" in message
    )


# room -> (package, register, list, create)
ROOMS = {
    "models": ("robustlab.models", "register_model", "list_models", "create_model"),
    # attacks are built with build_attack, the name the design contract and its callers use
    "attacks": ("robustlab.attacks", "register_attack", "list_attacks", "build_attack"),
    "detectors": ("robustlab.detection", "register_detector", "list_detectors", "create_detector"),
    "attributions": (
        "robustlab.explain",
        "register_attribution",
        "list_attributions",
        "create_attribution",
    ),
    "defenses": ("robustlab.training", "register_defense", "list_defenses", "create_defense"),
}
CREATE_ARGS = {"models": (10, 1), "attacks": (nn.Linear(2, 2),)}


@pytest.mark.parametrize("room", list(ROOMS))
def test_every_room_has_register_list_create(room):
    module_name, *functions = ROOMS[room]
    module = importlib.import_module(module_name)
    register, list_things, create = (getattr(module, name) for name in functions)
    assert set(functions) <= set(module.__all__)
    names = list_things()
    assert names and len({n.lower() for n in names}) == len(names)
    assert callable(register("a_name_never_used")) and "a_name_never_used" not in list_things()
    misspelt = names[0] + "x"
    with pytest.raises(ConfigError) as info:
        create(misspelt, *CREATE_ARGS.get(room, ()))
    message = str(info.value)
    assert "\n" not in message and misspelt in message
    assert f"did you mean {names[0]}" in message


def test_attacks_have_one_builder():
    import robustlab.attacks

    assert "build_attack" in robustlab.attacks.__all__
    assert not hasattr(robustlab.attacks, "create_attack")

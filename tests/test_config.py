"""Every config option composes, validates and instantiates; bad values fail clearly."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import nn

from robustlab.app.builders import attack_spec, build_defense, build_model
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.schema import register_schemas
from robustlab.app.training_stage import checkpoint_dir, training_identity
from robustlab.app.validate import validate_config
from robustlab.attacks import build_attack, list_attacks, takes_eps
from robustlab.attacks.catalogue import attack_factory
from robustlab.data import dataset_info
from robustlab.detection import DEFAULT_NOISE_GRID, DetectionProtocol
from robustlab.devices import resolve_device
from robustlab.errors import ConfigError
from robustlab.models import create_model
from robustlab.training import build_optimizer, create_defense, list_defenses
from robustlab.training.objectives import defense_options
from tests.app_helpers import run_entry

CONF = Path(CONFIG_DIR)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture()
def composer():
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield lambda *overrides: compose(
            config_name="config", overrides=list(overrides), return_hydra_config=False
        )
    GlobalHydra.instance().clear()


def test_default_config_composes_and_validates(composer):
    cfg = composer()
    validate_config(cfg)
    assert cfg.data.name == "digits"
    assert set(cfg.eval.attacks) == {"fgsm", "pgd", "pgd_margin"}
    assert cfg.logger.mode == "offline"


# model=external builds a user's model from model.factory/model.file: tests/test_external_model.py
@pytest.mark.parametrize("model", [m for m in _options("model") if m != "external"])
def test_every_model_option_instantiates(composer, model):
    cfg = composer(f"model={model}")
    validate_config(cfg)
    net = build_model(cfg, dataset_info("digits"), resolve_device("cpu"))
    assert net.num_features, "models expose their stage widths"


@pytest.mark.parametrize("defense", _options("defense"))
def test_every_defense_option_composes(composer, defense):
    cfg = composer(f"defense={defense}")
    validate_config(cfg)
    # a variant file (gaussian_noise_050) names the defense it sets other values of
    assert defense == cfg.defense.name or defense.startswith(f"{cfg.defense.name}_")


def test_fast_at_brings_its_cyclic_schedule(composer):
    assert composer("defense=fast_at").train.scheduler == "onecycle"


@pytest.mark.parametrize("attack", _options("attack"))
def test_every_attack_option_builds_a_spec(composer, attack):
    cfg = composer(f"+attack@eval.attacks.extra={attack}")
    validate_config(cfg)
    spec = attack_spec(cfg.eval.attacks.extra)
    assert spec.name.lower() in {a.lower() for a in list_attacks()}
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    if takes_eps(spec.name):
        attack = attack_factory(spec, model)(0.1)
    else:
        attack = build_attack(spec.name, model, **spec.kwargs)
    assert callable(attack)


@pytest.mark.parametrize(
    "group", ["data", "detector", "logger", "experiment", "train", "explain", "certify"]
)
def test_every_other_option_composes(composer, group):
    for option in _options(group):
        overrides = [f"{group}={option}"]
        reads_files = group == "data" and option not in ("digits", "mnist5k")
        if reads_files or option.startswith("cifar10_"):  # the CIFAR-10 recipes read files too
            overrides.append("data.root=/tmp")
        if option == "kd_bu":
            overrides.append("model.dropout=0.5")  # KD+BU's uncertainty needs head dropout
        cfg = composer(*overrides)
        validate_config(cfg)
        OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.eps=[-0.1]", "out of range"),
        ("defense=pgd_at defense.eps=2.0", "out of range"),
        ("defense=trades defense.beta=-1", "out of range"),
        ("data.val_fraction=0", "out of range"),
        ("train.lr=0", "must be >"),
        ("train.optimizer=adagrad", "choose one of"),
        ("eval.schedule=fast", "choose one of"),
        ("eval.continuation_steps=0", "out of range"),
        ("+attack@eval.attacks.x=pgd", None),
    ],
)
def test_out_of_range_values_fail_with_one_line(composer, override, message):
    cfg = composer(*override.split())
    if message is None:
        validate_config(cfg)
        return
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


def test_unknown_key_and_wrong_type_fail_at_composition(composer):
    with pytest.raises(Exception, match="epochz"):
        composer("train.epochz=3")
    with pytest.raises(Exception, match="epochs"):
        composer("train.epochs=many")


def test_detector_must_name_configured_attacks(composer):
    cfg = composer("detector.attacks=[cw]")
    with pytest.raises(ConfigError, match="eval.attacks"):
        validate_config(cfg)


def test_file_data_sets_need_a_root(composer, monkeypatch):
    monkeypatch.delenv("ROBUSTLAB_DATA", raising=False)
    cfg = composer("data=mnist")
    with pytest.raises(ConfigError, match="data.root"):
        validate_config(cfg)


def test_model_options_are_settable_from_the_command_line(composer):
    narrow = build_model(composer("model.width=0.5"), dataset_info("digits"), "cpu")
    default = build_model(composer(), dataset_info("digits"), "cpu")
    assert sum(p.numel() for p in narrow.parameters()) < sum(
        p.numel() for p in default.parameters()
    )
    cnn = composer("model=small_cnn", "model.widths=[8,16]")
    validate_config(cnn)
    assert build_model(cnn, dataset_info("digits"), "cpu").num_features[-1] == 16
    with pytest.raises(ConfigError, match="resnet20 has no option widths"):
        validate_config(composer("model.widths=[8,16]"))


def test_pgd_l2_is_a_real_attack_config(composer):
    spec = attack_spec(composer("+attack@eval.attacks.l2=pgd_l2").eval.attacks.l2)
    attack = attack_factory(spec, create_model("small_cnn", 10, 1))(0.5)
    assert attack.norm == "L2" and spec.eps == [0.25, 0.5, 1.0]
    # the L2 PGD has no norm to choose: the key does not exist under it
    with pytest.raises(Exception, match="norm"):
        composer("+attack@eval.attacks.l2=pgd_l2", "eval.attacks.l2.norm=Linf")


def test_checkpoint_identity_hashes_only_what_the_objective_uses(composer):
    def directory(*overrides):
        cfg = composer(*overrides)
        defense = build_defense(cfg.defense)
        identity = training_identity(
            cfg, "model", defense.objective(), cfg.train.epochs, heldout=defense.heldout_check()
        )
        return checkpoint_dir(cfg, identity)

    # the held-out check's size matters only while the check is on
    off = directory("defense=pgd_at", "defense.heldout_size=64")
    assert off == directory("defense=pgd_at")
    on = ("defense=pgd_at", "defense.monitor_heldout=true")
    assert directory(*on, "defense.heldout_size=64") != directory(*on) != off
    assert directory("defense=pgd_at", "defense.steps=3") != directory("defense=pgd_at")
    assert directory("defense=fast_at", "defense.eps=0.2") != directory("defense=fast_at")


def test_schema_defaults_come_from_the_library(composer):
    cfg = composer()
    assert cfg.detector.adaptive_weight == DetectionProtocol.adaptive_weight
    assert tuple(cfg.detector.noise_grid) == DEFAULT_NOISE_GRID
    assert cfg.train.lr == inspect.signature(build_optimizer).parameters["lr"].default


def test_a_bad_value_in_a_sweep_fails_once_before_any_job(tmp_path):
    proc = run_entry(
        "train", "-m", "model=resnet20,se_resnet20", "eval.eps=[0.1],[-0.1]", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "eval.eps=-0.1 is out of range" in proc.stderr
    assert not list(tmp_path.rglob("results.json")) and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("defense", list_defenses())
def test_every_registered_defense_has_its_yaml_and_schema(composer, defense):
    assert f"- {defense}_schema@defense" in (CONF / "defense" / f"{defense}.yaml").read_text()
    options = OmegaConf.to_container(composer(f"defense={defense}").defense)
    assert options.pop("name") == defense
    # the keys under defense=<name> are exactly the registered defense's options
    assert set(options) == {spec.name for spec in dataclasses.fields(defense_options(defense))}
    objective = create_defense(defense, **options).objective(teacher=nn.Identity())
    assert objective.describe()["name"] == ("standard" if defense == "none" else defense)


def test_a_defense_has_only_its_own_keys(composer):
    assert composer("defense=trades", "defense.beta=1").defense.beta == 1
    for override in ("defense.beta=1", "defense.steps=3"):
        with pytest.raises(Exception, match=override.split("=")[0].split(".")[1]):
            composer("defense=none", override)
    with pytest.raises(Exception, match="steps"):
        composer("defense=fast_at", "defense.steps=3")  # one FGSM step: no steps to set
    with pytest.raises(Exception, match="loss"):
        composer("eval.attacks.fgsm.loss=margin")  # a native PGD setting only


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+train.epoch=2", "unknown key train.epoch: did you mean train.epochs"),
        ("+defense.beta=1", "unknown key defense.beta (defense=none)"),
        ("+foo=1", "unknown key foo"),
    ],
)
def test_force_added_keys_fail_validation(composer, override, message):
    cfg = composer(override)  # `+` adds a key past the schema's struct mode
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_tiny_experiment_sets_each_defense_its_own_keys(composer):
    assert composer("experiment=tiny", "defense=pgd_at").defense.steps == 2
    assert composer("experiment=tiny", "defense=distillation").defense.teacher_epochs == 1
    assert composer("experiment=tiny", "defense=fast_at").defense.heldout_size == 32
    assert composer("experiment=tradeoff_mnist", "defense=trades").defense.eps == 0.3
    assert composer("experiment=tradeoff", "defense=trades").defense.eps == 0.1
    assert OmegaConf.to_container(composer("experiment=tiny").defense) == {"name": "none"}


def test_an_unknown_key_names_the_options_that_have_it(composer):
    with pytest.raises(ConfigError, match="steps is a key of defense=pgd_at, defense=trades"):
        validate_config(composer("+defense.steps=3"))

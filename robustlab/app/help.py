"""``--help`` of the Hydra apps: Hydra's own page, listing only what a user can choose.

Hydra lists every entry of a config group, so the per-option schemas (``defense=trades_schema``,
stored beside the options they type) and the experiments' per-defense settings (picked by
``experiment=``, never by hand) would read as options. They are left out here, and
``robustlab.app.cli`` refuses a schema entry given on the command line.
"""

from __future__ import annotations

import copy
import string
import sys
from argparse import Namespace
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from robustlab.app.hydra_internals import Hydra, get_args_parser

SCHEMA_SUFFIX = "_schema"  # the options' schemas are entries of their group too, not options
# groups chosen by the config itself (``experiment_defense@_global_: ${experiment}/${defense}``)
INTERNAL_GROUPS = ("experiment_defense",)


def is_schema_entry(option: str) -> bool:
    """Whether a group entry is an option's schema (``trades_schema``), not an option."""
    return option.endswith(SCHEMA_SUFFIX)


def user_options(hydra: Hydra, group: str) -> list[str]:
    """The options of ``group`` a user can choose, sorted."""
    return sorted(o for o in hydra.config_loader.get_group_options(group) if not is_schema_entry(o))


def config_groups(hydra: Hydra) -> str:
    """The ``== Configuration groups ==`` lines: ``group: option, option, ...``."""
    groups = [
        group
        for group in hydra.list_all_config_groups()
        if group != "hydra"
        and not group.startswith("hydra/")
        and group.split("/", 1)[0] not in INTERNAL_GROUPS
    ]
    lines = [f"{group}: {', '.join(user_options(hydra, group))}" for group in sorted(groups)]
    return "\n".join(line for line in lines if not line.endswith(": "))


def app_help(hydra: Hydra, config_name: str, args: Namespace) -> str:
    """The text of ``--help``: Hydra's help template with the user's options and the config
    composed from the given overrides."""
    cfg = hydra.compose_config(
        config_name, list(args.overrides), run_mode=RunMode.RUN, with_log_configuration=False
    )
    with open_dict(cfg):  # the header names the command (robustlab-eval), not the module
        cfg.hydra.help.app_name = Path(sys.argv[0]).name
    HydraConfig.instance().set_config(cfg)  # the template may interpolate ${hydra:...}
    shown = hydra.get_sanitized_cfg(copy.deepcopy(cfg), "job")
    return string.Template(cfg.hydra.help.template).substitute(
        FLAGS_HELP=hydra.format_args_help(get_args_parser()),
        HYDRA_CONFIG_GROUPS=hydra.format_config_groups(lambda g: g.startswith("hydra/")),
        APP_CONFIG_GROUPS=config_groups(hydra),
        CONFIG=OmegaConf.to_yaml(shown, resolve=args.resolve),
    )

"""The strict command line of the Hydra apps (``robustlab-train``, ``-eval``, ``-detect``).

Before Hydra runs an app, its command line is composed exactly as Hydra will compose it (same
search path, config name, run mode and overrides) and checked: an unknown option
(``model=resnet21``), an unknown key (``train.epoch=2``, or ``+train.epoch=2``, which Hydra
would add silently), a value of the wrong type or out of range, in the config or in any job of
a sweep, prints ONE line naming it and the nearest valid names, and exits with code 2. With
``HYDRA_FULL_ERROR=1`` the full traceback follows that line.

An option's schema (``defense=trades_schema``) is an entry of its group but not an option: it
is refused like an unknown option, and ``--help`` (``robustlab.app.help``) does not list it. An
app may add its own check of each job's config and overrides (``robustlab-eval`` refuses a
model, defense or seed that contradicts the checkpoint it evaluates).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import MISSING
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.help import app_help, is_schema_entry
from robustlab.app.hydra_internals import (
    Hydra,
    create_automatic_config_search_path,
    get_args_parser,
)
from robustlab.app.schema import register_schemas
from robustlab.app.validate import (
    JobCheck,
    job_config,
    unknown_key_message,
    validate_config,
    validate_sweep,
)
from robustlab.errors import ConfigError, RobustlabError
from robustlab.registry import did_you_mean

USAGE_ERROR = 2  # the exit code of a bad command line, as argparse uses it


def unknown_option_message(group: str, option: str, options: Sequence[str]) -> str:
    """``unknown option model=resnet21: did you mean resnet20? (options of model: ...)``."""
    options = [name for name in options if not is_schema_entry(name)]
    hint = did_you_mean(option, options, show=lambda name: f"{group}={name}")
    return f"unknown option {group}={option}: {hint}(options of {group}: {', '.join(options)})"


def _schema_option(schema: type) -> str | None:
    """The option a per-option schema stands for (its ``name`` default), if it has one."""
    names = {spec.name: spec.default for spec in dataclasses.fields(schema)}
    option = names.get("name", MISSING)
    return option if isinstance(option, str) and option != MISSING else None


def error_line(err: BaseException) -> str | None:
    """The one-line message of a composition or validation error; None for other errors."""
    if isinstance(err, RobustlabError):
        return str(err)
    # Hydra re-raises OmegaConf's errors inside an except block: the cause is the context
    cause = err.__cause__ or err.__context__
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return unknown_option_message(group, option, list(err.options))
    unknown_key = isinstance(cause, (ConfigKeyError, ConfigAttributeError))
    if unknown_key and dataclasses.is_dataclass(cause.object_type):
        path, _, key = str(cause.full_key).rpartition(".")
        valid = [spec.name for spec in dataclasses.fields(cause.object_type)]
        return unknown_key_message(path, key, valid, _schema_option(cause.object_type))
    if isinstance(err, (HydraException, OmegaConfBaseException)):
        source = cause if isinstance(cause, OmegaConfBaseException) else err
        line = next((text for text in str(source).splitlines() if text.strip()), repr(source))
        key = getattr(source, "full_key", None)
        if line.startswith("Ambiguous value"):
            line += ": sweep over it with -m, or pass a list as key=[a,b]"
        return f"{key}: {line}" if key else line
    return None


def _main_hydra(task: Callable[..., Any], args: Any) -> Hydra:
    """The Hydra instance ``@hydra.main`` creates for ``task`` (same search path)."""
    search_path = create_automatic_config_search_path(
        inspect.getfile(task), None, args.config_path or CONFIG_DIR
    )
    if args.config_dir is not None:
        search_path.prepend("command-line", f"file://{os.path.abspath(args.config_dir)}")
    return Hydra.create_main_hydra2(task_name="robustlab", config_search_path=search_path)


def refuse_schema_entries(hydra: Hydra, overrides: Sequence[str]) -> None:
    """ConfigError for a group override naming an option's schema (``defense=trades_schema``,
    also inside a sweep's choices): composing it would drop the option's own values."""
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        group = override.key_or_group
        if "." in group or override.is_delete():
            continue
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        for value in filter(is_schema_entry, values):
            options = hydra.config_loader.get_group_options(group)
            raise ConfigError(unknown_option_message(group, value, options))


def check_command_line(
    task: Callable[..., Any], argv: Sequence[str], *, check_job: JobCheck | None = None
) -> None:
    """Compose ``argv`` as Hydra will for ``task`` and check it (and, for a sweep, every job);
    raises the composition's error or a ConfigError.

    Args:
        task: The ``@hydra.main`` function, unwrapped (its file anchors the config search).
        argv: The command line after the program name.
        check_job: The app's own check of a job's composed config and its overrides.
    """
    args = get_args_parser().parse_args(list(argv))
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    hydra = _main_hydra(task, args)
    try:
        name, overrides = args.config_name or "config", list(args.overrides)
        refuse_schema_entries(hydra, overrides)
        multirun = args.multirun or hydra.get_mode(name, overrides) == RunMode.MULTIRUN
        mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        cfg = hydra.compose_config(name, overrides, run_mode=mode, with_log_configuration=False)
        if multirun:
            validate_sweep(cfg, check_job=check_job)
        else:
            validate_config(cfg)
            if check_job is not None:
                check_job(job_config(cfg), overrides)
    finally:
        GlobalHydra.instance().clear()


def show_help(task: Callable[..., Any], argv: Sequence[str]) -> bool:
    """Print ``--help`` (only the options a user can choose) when asked; whether it was."""
    args = get_args_parser().parse_args(list(argv))
    if not args.help:
        return False
    hydra = _main_hydra(task, args)
    try:
        print(app_help(hydra, args.config_name or "config", args))
    finally:
        GlobalHydra.instance().clear()
    return True


def strict_main(app: Callable[[], Any], *, check_job: JobCheck | None = None) -> None:
    """Run the Hydra ``app`` (a ``@hydra.main`` function) after checking the command line: a
    bad one is one ``error:`` line on stderr and exit code 2, before anything starts.

    Args:
        app: The ``@hydra.main`` function.
        check_job: The app's own check of each job's config and overrides (a ConfigError
            is the error line).
    """
    register_schemas()
    task = inspect.unwrap(app)
    try:
        if show_help(task, sys.argv[1:]):
            return
        check_command_line(task, sys.argv[1:], check_job=check_job)
    except Exception as err:
        line = error_line(err)
        if line is None:  # not a config error: Hydra reports it its own way below
            app()
            return
        notes = getattr(err, "__notes__", [])  # e.g. the sweep job the error is in
        print(f"error: {line}" + "".join(f" ({note})" for note in notes), file=sys.stderr)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exception(err)
        sys.exit(USAGE_ERROR)
    app()

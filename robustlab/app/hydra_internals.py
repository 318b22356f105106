"""The one module that uses Hydra's private API (``hydra._internal``).

The strict command line composes a config exactly as ``@hydra.main`` will, which needs the
``Hydra`` object, Hydra's argument parser and its search-path set-up; the sweep check expands
overrides with Hydra's basic sweeper. None of these is public, so they are imported here only,
and pyproject.toml bounds ``hydra-core`` to the minor release the tests ran against: a new
Hydra minor may move them, and then this file is the one place to adapt.
"""

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, get_args_parser

__all__ = ["BasicSweeper", "Hydra", "create_automatic_config_search_path", "get_args_parser"]

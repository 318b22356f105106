"""Error types whose message is meant to be shown to a user as one line.

Every bad argument to a public entry raises ``ConfigError`` (an option's value) or
``InputError`` (the images, labels or eps handed in); both are ``ValueError`` too, so code
written against the usual Python convention catches them unchanged.
"""


class RobustlabError(Exception):
    """A problem the user can fix: the message says what was wrong and what to do."""


class DataError(RobustlabError):
    """A data set file is missing, corrupt or of the wrong format."""


class ConfigError(RobustlabError, ValueError):
    """A configuration value or a function's option is invalid (a ValueError too)."""


class CheckpointError(RobustlabError):
    """A checkpoint is missing, incomplete or does not match the model."""


class InputError(ConfigError):
    """Images, labels or eps handed to a public entry break its contract (a ValueError too)."""


__all__ = ["CheckpointError", "ConfigError", "DataError", "InputError", "RobustlabError"]

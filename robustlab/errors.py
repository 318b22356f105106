"""Error types whose message is meant to be shown to a user as one line."""


class RobustlabError(Exception):
    """A problem the user can fix: the message says what was wrong and what to do."""


class DataError(RobustlabError):
    """A data set file is missing, corrupt or of the wrong format."""


class ConfigError(RobustlabError):
    """A configuration value is invalid."""


class CheckpointError(RobustlabError):
    """A checkpoint is missing, incomplete or does not match the model."""


class InputError(ConfigError, ValueError):
    """Images, labels or eps handed to a public entry break its contract (a ValueError too)."""

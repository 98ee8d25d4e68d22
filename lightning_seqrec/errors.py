"""Exceptions raised at the library's boundaries; each message says what was wrong and how to fix it."""


class SeqRecError(Exception):
    """Base class of the library's own errors."""


class DataError(SeqRecError, ValueError):
    """A data file, table or column mapping cannot be used as given."""


class UnknownItemError(SeqRecError, KeyError):
    """An item or user ID is not in the vocabulary the model was trained with."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class CheckpointError(SeqRecError, ValueError):
    """A checkpoint is missing, corrupt, untrusted or does not match its configuration."""


class ConfigError(SeqRecError, ValueError):
    """A configuration names an unknown component or an argument it does not take."""

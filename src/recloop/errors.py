"""The one error hierarchy of recloop.

Library code raises these; only ``serving`` and ``cli`` turn them into HTTP statuses
or exit codes. Messages name the field, the bad value and what is allowed.
"""

from __future__ import annotations


class RecloopError(Exception):
    """Base class of every error recloop raises on purpose."""


class InvalidInputError(RecloopError, ValueError):
    """A value given by a caller is not acceptable.

    Parameters
    ----------
    field
        Name of the offending field (``"k"``, ``"events[3].user_id"``).
    message
        What is wrong and what is allowed.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DataError(RecloopError, ValueError):
    """A data source is missing, corrupted or does not have the expected layout."""


class ConfigError(RecloopError, ValueError):
    """A setting is invalid."""


class NotFittedError(RecloopError, RuntimeError):
    """The recommender was used before ``fit`` or ``load``."""


class UnknownModelError(RecloopError, KeyError):
    """No model is registered under the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class UnknownIdError(RecloopError, KeyError):
    """An id the recommender does not know, where a known one is required.

    Parameters
    ----------
    field
        Name of the offending field (``"item_id"``).
    message
        Which id is unknown.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return f"{self.field}: {self.message}"


class StorageError(RecloopError):
    """The event log or the snapshot store cannot do what was asked (a full disk, a
    read-only folder, a server gone, a corrupt file); nothing was acknowledged."""

"""Errors raised by Sightlines.

Every error says what was wrong and what to do about it. Errors about one
record carry ``record_id`` and ``path`` so a caller can point at the culprit.
The CLI turns any :class:`SightlinesError` into a one-line message and a
non-zero exit code (see :mod:`sightlines.cli`).
"""

from __future__ import annotations

__all__ = [
    "SightlinesError",
    "ConfigError",
    "ClientIdError",
    "StorageError",
    "NotFoundError",
    "DataQualityError",
    "UnavailableError",
    "ValidationError",
]


class SightlinesError(Exception):
    """Base class of every error Sightlines raises on purpose.

    Parameters
    ----------
    message : str
        What was wrong and what to do about it.
    record_id : str, optional
        The record (user id, client id, sightline) the error is about.
    path : str, optional
        The file or storage key the error is about.
    """

    #: process exit code used by the CLI for this kind of error
    exit_code: int = 1

    def __init__(self, message: str, *, record_id: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.record_id = record_id
        self.path = path

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ConfigError(SightlinesError):
    """A configuration value (registry entry, CLI option, catalogue) is invalid."""

    exit_code = 2


class ClientIdError(ConfigError):
    """A client id is not a safe storage name."""


class StorageError(SightlinesError):
    """Storage could not be read or written, or a key escapes its client prefix."""


class NotFoundError(StorageError):
    """An input that a step needs does not exist (yet)."""


class DataQualityError(SightlinesError):
    """Input data is too broken to produce a trustworthy output (e.g. too many bad records)."""


class ValidationError(SightlinesError):
    """An output failed validation before publishing; nothing was published."""


class UnavailableError(SightlinesError):
    """A sightline cannot be produced for this client (e.g. not enough history yet).

    This is not a failure of the system: the CLI exits with :data:`EXIT_SKIPPED`
    so that orchestrators can mark the task as skipped.
    """

    exit_code = 99


#: exit code of a step that had nothing to do (Airflow maps it to "skipped")
EXIT_SKIPPED = 99

"""Errors raised by :mod:`sightlines.mesos`.

All of them subclass :class:`sightlines.errors.SightlinesError` and say what
went wrong and what to do about it. None of them ever carries a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError, SightlinesError

if TYPE_CHECKING:  # pragma: no cover
    from .runner import TaskOutcome

__all__ = [
    "MesosError",
    "MesosConfigError",
    "MasterNotFoundError",
    "MesosAuthError",
    "MesosConnectionError",
    "MesosProtocolError",
    "MesosCallError",
    "FrameworkError",
    "NoMatchingOfferError",
    "TaskFailedError",
]


class MesosError(SightlinesError):
    """Base class of every error raised by the Mesos client."""


class MesosConfigError(MesosError, ConfigError):
    """A :class:`~sightlines.mesos.MesosConfig` or :class:`~sightlines.mesos.TaskSpec` value is invalid."""


class MasterNotFoundError(MesosError):
    """No leading master could be found (every URL failed, or ZooKeeper has no leader)."""


class MesosAuthError(MesosError):
    """The master refused our credentials (HTTP 401) or our framework (HTTP 403)."""


class MesosConnectionError(MesosError):
    """The subscription could not be (re-)established in time.

    The task, if any was launched, keeps running on the cluster for the
    framework's ``failover_timeout``: calling :func:`~sightlines.mesos.run_task`
    again re-attaches to it.
    """


class MesosProtocolError(MesosError):
    """The master sent something that is not the v1 scheduler protocol."""


class MesosCallError(MesosError):
    """The master rejected a call (4xx/5xx other than a redirect)."""

    def __init__(self, message: str, *, status_code: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.status_code = status_code


class FrameworkError(MesosError):
    """The master sent an ERROR event, e.g. another scheduler took over the framework."""


class NoMatchingOfferError(MesosError):
    """No offer was large enough for the task within ``offer_timeout``."""


class TaskFailedError(MesosError):
    """The task ended in a state other than ``TASK_FINISHED``.

    Attributes
    ----------
    outcome : TaskOutcome
        What happened, including the agent and where its sandbox is.
    """

    def __init__(self, message: str, *, outcome: "TaskOutcome"):
        super().__init__(message, record_id=outcome.task_id)
        self.outcome = outcome

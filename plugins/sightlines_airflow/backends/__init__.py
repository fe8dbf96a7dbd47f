"""Compute backends: where a step runs (see :mod:`sightlines_airflow.backends.base` for the interface).

``local`` runs the step as a subprocess of the Airflow worker
(:class:`~sightlines_airflow.backends.local.LocalBackend`); ``mesos`` runs the
same command as a Mesos task. :func:`get_backend` builds a backend by name.
"""

from .base import (
    BACKENDS,
    BackendError,
    ComputeBackend,
    JobNotFoundError,
    JobResult,
    JobState,
    StepSpec,
    get_backend,
    state_for_exit_code,
)

__all__ = ["BACKENDS", "BackendError", "ComputeBackend", "JobNotFoundError", "JobResult", "JobState", "StepSpec",
           "get_backend", "state_for_exit_code"]

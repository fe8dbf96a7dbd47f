"""A small client of the Mesos v1 scheduler HTTP API, and "run exactly one task" on top of it.

No Airflow here: the Airflow ``mesos`` backend and trigger call
:func:`run_task` / :func:`submit_task` / :func:`find_task` / :func:`kill_task`.

Modules
-------
``config``      :class:`MesosConfig` (the cluster) and :class:`TaskSpec` (the task)
``runner``      the exactly-once task API and :class:`TaskOutcome`
``client``      :class:`SchedulerClient`, the v1 scheduler API (SUBSCRIBE, calls, reconnects)
``detector``    leading-master detection (URL list with 307 redirects, or ``zk://``)
``master_api``  the read-only operator-API calls the runner uses
``states``      task states and :class:`TaskStatus`
``errors``      every error, all subclasses of :class:`sightlines.errors.SightlinesError`

Examples
--------
>>> from sightlines.mesos import MesosConfig, TaskSpec
>>> spec = TaskSpec(task_id="sl.acme.2026-11-24.score", command="sightlines step score", cpus=2, mem_mb=2048)
>>> spec.resources()
{'cpus': 2.0, 'mem': 2048.0}
"""

from ._messages import framework_info
from .client import SchedulerClient
from .config import MesosConfig, TaskSpec
from .detector import StaticDetector, ZooKeeperDetector, detector_for
from .errors import (
    FrameworkError,
    MasterNotFoundError,
    MesosAuthError,
    MesosCallError,
    MesosConfigError,
    MesosConnectionError,
    MesosError,
    MesosProtocolError,
    NoMatchingOfferError,
    TaskFailedError,
)
from .runner import (
    SandboxInfo,
    TaskOutcome,
    find_task,
    find_task_sync,
    kill_task,
    kill_task_sync,
    read_sandbox,
    run_task,
    run_task_sync,
    submit_task,
)
from .states import TaskStatus

__all__ = [
    "MesosConfig",
    "TaskSpec",
    "TaskStatus",
    "TaskOutcome",
    "SandboxInfo",
    "run_task",
    "submit_task",
    "find_task",
    "kill_task",
    "read_sandbox",
    "run_task_sync",
    "find_task_sync",
    "kill_task_sync",
    "SchedulerClient",
    "framework_info",
    "StaticDetector",
    "ZooKeeperDetector",
    "detector_for",
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

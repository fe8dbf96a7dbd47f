"""``run``: the whole day of one client (extract -> sample -> train x N -> score -> publish), with fallbacks.

A failing step does not stop the day: the steps after it that can still do
something do it (score with the last good models when training failed), and
``publish`` always runs last to apply the fallback ladder. Sightlines train in
parallel processes with one thread each, so processes x threads never exceed
the cores this run may use.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from .._resources import cpu_budget, worker_env
from ..catalog import catalog
from ..config import ClientConfig
from ..errors import SightlinesError, UnavailableError
from ..result import STATUS_FAILED, STATUS_SKIPPED, StepResult
from ..storage import Storage, date_str
from ._extract import extract
from ._publish import publish
from ._records import recorded
from ._sample import sample
from ._scan import _init_worker
from ._score import score
from ._train import train

log = logging.getLogger(__name__)

__all__ = ["run_daily", "DailyRun"]


@dataclass
class DailyRun:
    """The outcome of a client's day: every step's result, and what was published."""

    client: str
    date: dt.date
    steps: list[StepResult] = field(default_factory=list)
    published: StepResult | None = None
    seconds: float = 0.0

    @property
    def stale_days(self) -> int | None:
        return None if self.published is None else int(self.published.details.get("stale_days", 0))

    def summary(self) -> str:
        lines = [f"{self.client} {self.date}: " + (
            "nothing published" if self.published is None else
            ("fresh predictions published" if self.stale_days == 0 else
             f"STALE predictions republished (stale_days={self.stale_days})")) + f" in {self.seconds:.1f} s"]
        for r in self.steps:
            extra = f", {r.n_records:,} records" if r.status not in (STATUS_FAILED, STATUS_SKIPPED) else ""
            lines.append(f"  {r.step_id:22s} {r.status}{extra}")
            for w in r.warnings:
                lines.append(f"      ! {w}")
        return "\n".join(lines)


def _failed(step: str, client: str, day: dt.date, exc: BaseException, sightline: str | None = None) -> StepResult:
    reason = exc.message if isinstance(exc, SightlinesError) else f"{type(exc).__name__}: {exc}"
    status = STATUS_SKIPPED if isinstance(exc, UnavailableError) else STATUS_FAILED
    return StepResult(step=step, client=client, date=day, status=status, sightline=sightline, warnings=(reason,),
                      details={"reason": reason})


def _train_job(args: tuple[str, str, dict[str, Any], str, str, dict[str, Any]]) -> dict[str, Any]:
    root, client, options, date, sightline, config = args
    storage = Storage(root, storage_options=options)
    cfg = ClientConfig.from_dict(config)
    day = dt.date.fromisoformat(date)
    try:
        return recorded("train", train, client, date, storage, sightline=sightline, config=cfg).to_dict()
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a result
        return _failed("train", client, day, exc, sightline).to_dict()


def _train_all(storage: Storage, client: str, date: str, config: ClientConfig, names: list[str],
               workers: int) -> list[StepResult]:
    jobs = [(storage.url, client, storage.storage_options, date, n, config.to_dict()) for n in names]
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        return [StepResult.from_dict(_train_job(j)) for j in jobs]
    # spawn, never fork: a child forked after this process ran LightGBM inherits a broken OpenMP thread pool
    # and can hang in its first prediction (libgomp is not fork-safe); fresh interpreters cost ~1 s each
    results: dict[str, StepResult] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(worker_env(1),)) as pool:
        futures = {pool.submit(_train_job, j): j[4] for j in jobs}
        for i, fut in enumerate(as_completed(futures), 1):
            r = StepResult.from_dict(fut.result())
            results[futures[fut]] = r
            log.info("train %s %s: %d/%d sightlines done (%s: %s)", client, date, i, len(jobs), r.sightline, r.status)
    return [results[n] for n in names]


def run_daily(client: str, date: dt.date | str, storage: Storage, *, config: ClientConfig | None = None,
              workers: int | None = None) -> DailyRun:
    """Run every step of ``(client, date)`` and publish, falling back where a step fails.

    Parameters
    ----------
    client : str
    date : datetime.date or str
    storage : Storage
    config : ClientConfig, optional
    workers : int, optional
        Processes for extraction, sampling and training (one thread each);
        defaults to the core budget.

    Returns
    -------
    DailyRun
        Never raises for a failing step: each step's result (or failure) is
        in ``steps``; ``published`` is None only if nothing could be published.
    """
    t0 = time.perf_counter()
    date = date_str(date)
    day = dt.date.fromisoformat(date)
    config = config or ClientConfig()
    workers = workers or cpu_budget()
    out = DailyRun(client=client, date=day)

    def step(name: str, fn: Any, **kw: Any) -> StepResult | None:
        try:
            r = recorded(name, fn, client, date, storage, config=config, **kw)
            out.steps.append(r)
            return r
        except Exception as exc:  # noqa: BLE001 - the day goes on; publish applies the fallback
            log.error("%s %s %s failed: %s", name, client, date, exc)
            out.steps.append(_failed(name, client, day, exc))
            return None

    extracted = step("extract", extract, workers=workers)
    sampled = step("sample", sample, workers=workers) if extracted else None
    if sampled:
        names = [s.name for s in catalog(config)]
        out.steps += _train_all(storage, client, date, config, names, workers)
    if extracted:
        step("score", score)
    out.published = step("publish", publish)
    out.seconds = time.perf_counter() - t0
    return out

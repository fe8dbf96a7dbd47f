"""What every step returns: a small, frozen, JSON-friendly record."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StepResult", "STATUS_OK", "STATUS_FALLBACK", "STATUS_SKIPPED", "STATUS_FAILED"]

STATUS_OK = "ok"
#: the step produced its output, but from an older model or older predictions
STATUS_FALLBACK = "fallback"
#: nothing to do for this client (e.g. a sightline without enough history)
STATUS_SKIPPED = "skipped"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step for one (client, date).

    Parameters
    ----------
    step : str
        Step name (``extract``, ``sample``, ``train``, ``score``, ``publish``...).
    client : str
        Client id.
    date : datetime.date
        The run date.
    status : str
        ``ok``, ``fallback``, ``skipped`` or ``failed``.
    outputs : dict
        Output name -> client-relative storage key.
    n_records : int
        Records produced (users, examples, rows).
    warnings : tuple of str
        Things a human should know (quarantined records, new keys, fallbacks).
    details : dict
        Step-specific figures (counts, metrics, timings).
    """

    step: str
    client: str
    date: dt.date
    status: str = STATUS_OK
    outputs: dict[str, str] = field(default_factory=dict)
    n_records: int = 0
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    sightline: str | None = None

    @property
    def step_id(self) -> str:
        """``step`` or ``step-sightline``: the name of this step's run record."""
        return f"{self.step}-{self.sightline}" if self.sightline else self.step

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["date"] = self.date.isoformat()
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepResult:
        d = dict(d)
        d["date"] = dt.date.fromisoformat(d["date"])
        d["warnings"] = tuple(d.get("warnings") or ())
        return cls(**d)

    def summary(self) -> str:
        """A few human-readable lines."""
        head = f"{self.step_id} {self.client} {self.date}: {self.status}, {self.n_records:,} records"
        lines = [head]
        for name, key in sorted(self.outputs.items()):
            lines.append(f"  {name}: {key}")
        for w in self.warnings:
            lines.append(f"  ! {w}")
        return "\n".join(lines)

"""One user's sightlines, in words and human units (what ``sightlines show`` prints).

Examples
--------
>>> human_value(0.1234, "probability"), human_value(45.2, "currency"), human_value(2.04, "items")
('12.3%', '$45.20', '2.0 items')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from .errors import NotFoundError
from .storage import ClientStore, date_str

__all__ = ["UserSightline", "user_sightlines", "format_table", "human_value"]


@dataclass(frozen=True)
class UserSightline:
    name: str
    meaning: str
    value: float
    unit: str
    ktile: int
    model_date: str


def human_value(value: float, unit: str, *, currency: str = "$") -> str:
    """A prediction in the units a marketer reads."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit in ("probability", "rate"):
        return f"{value * 100:.1f}%"
    if unit == "currency":
        return f"{currency}{value:,.2f}"
    if unit == "items":
        return f"{value:.1f} items"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:,.1f}"


def user_sightlines(store: ClientStore, user_id: str, date: str | None = None) -> tuple[str, dict[str, Any],
                                                                                       list[UserSightline]]:
    """The published sightlines of one user: ``(date, manifest, rows)``; the latest date by default."""
    if date is None:
        if not store.exists(store.PREDICTIONS_LATEST):
            raise NotFoundError(f"client {store.client} has no published predictions yet; run `sightlines run` first",
                                record_id=store.client)
        date = store.read_json(store.PREDICTIONS_LATEST)["date"]
    date = date_str(date)
    manifest = store.manifest(store.predictions(date))
    if manifest is None:
        raise NotFoundError(f"client {store.client} has no predictions for {date}", record_id=store.client)
    key = store.dataset_file(store.predictions(date), "predictions.parquet")
    t = store.read_parquet(key)
    t = t.filter(pc.equal(t.column("user_id"), user_id))
    if t.num_rows == 0:
        raise NotFoundError(f"user {user_id!r} is not in the predictions of {store.client} for {date}",
                            record_id=user_id)
    row = t.slice(0, 1).to_pylist()[0]
    rows = []
    order = [c for c in manifest.get("columns", []) if c in manifest["sightlines"]]
    for name in order or sorted(manifest["sightlines"]):
        info = manifest["sightlines"][name]
        rows.append(UserSightline(name=name, meaning=info.get("description", ""), value=float(row[name]),
                                  unit=info.get("unit", "count"), ktile=int(row[f"{name}_ktile"]),
                                  model_date=info.get("model_date", "")))
    return date, manifest, rows


def format_table(client: str, user_id: str, date: str, manifest: dict[str, Any], rows: list[UserSightline]) -> str:
    """The table of one user's sightlines, like the screenshot marketers know."""
    head = f"Sightlines of user {user_id} at {client}, {date}"
    if manifest.get("stale_days"):
        head += f"  (STALE: predictions of {manifest.get('source_date')}, {manifest['stale_days']} day(s) old)"
    w = max([len(r.meaning) for r in rows] + [len("What it means")])
    lines = [head, "", f"{'Sightline':12s}  {'What it means':{w}s}  {'Prediction':>12s}  {'k-tile':>6s}",
             f"{'-' * 12}  {'-' * w}  {'-' * 12}  {'-' * 6}"]
    for r in rows:
        lines.append(f"{r.name:12s}  {r.meaning:{w}s}  {human_value(r.value, r.unit):>12s}  {r.ktile:>6d}")
    for name, why in sorted((manifest.get("unavailable") or {}).items()):
        lines.append(f"{name:12s}  {'(unavailable: ' + why + ')'}")
    lines.append("")
    lines.append("k-tile: rank among the client's users, 1..1000 (1000 = highest).")
    return "\n".join(lines)

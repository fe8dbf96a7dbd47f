"""The Sightlines web pages: a small read-only FastAPI app over stored run records and fleet status.

Mounted by :class:`~sightlines_airflow.plugin.SightlinesPlugin` under ``/sightlines`` in
Airflow's API server. It reads storage only (``runs/{date}/*.json``, the
predictions manifests, ``fleet/{date}/status.json``) and never starts a job.

``/``                          the fleet on a date: fresh / stale / failed / missing per client
``/clients/{client}``          one client on a date: every step and sightline, and what was published
``/api/fleet``                 the same as JSON (``?date=``)
``/api/clients/{client}``      the same as JSON (``?date=``)
"""

from __future__ import annotations

import datetime as dt
import html
import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["create_app"]

_STATUS_COLOURS = {"ok": "#1e7b34", "fresh": "#1e7b34", "fallback": "#9a6700", "stale": "#9a6700",
                   "skipped": "#6e7781", "missing": "#6e7781", "failed": "#cf222e"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2rem;color:#1f2328}
table{border-collapse:collapse;margin:.6rem 0}td,th{border-bottom:1px solid #d0d7de;padding:.25rem .6rem;
text-align:left;vertical-align:top;font-size:.9rem}th{background:#f6f8fa}.s{font-weight:600}
.muted{color:#6e7781}a{color:#0969da;text-decoration:none}code{font-size:.85rem}
"""


def _storage(root: str | None) -> Any:
    from sightlines.storage import Storage

    value = root or os.environ.get("SIGHTLINES_ROOT")
    if not value:
        raise HTTPException(503, "no storage root: set $SIGHTLINES_ROOT for the Airflow API server")
    return Storage(value)


def _date(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise HTTPException(400, f"date {value!r} is not YYYY-MM-DD") from None


def _badge(status: str | None) -> str:
    s = status or "?"
    return f'<span class="s" style="color:{_STATUS_COLOURS.get(s, "#1f2328")}">{html.escape(s)}</span>'


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        f"<style>{_CSS}</style></head><body><h2>{html.escape(title)}</h2>{body}</body></html>")


def fleet_view(storage: Any, date: str | None) -> dict[str, Any]:
    """The stored fleet status of ``date`` (default: the newest stored), else one computed now from storage."""
    from sightlines.fleet import fleet_dates, fleet_status, read_fleet_status
    from sightlines.registry import load_registry

    dates = fleet_dates(storage)
    day = date or (dates[-1] if dates else (dt.date.today() - dt.timedelta(days=1)).isoformat())
    status = read_fleet_status(storage, day)
    source = "stored"
    if status is None:
        status = fleet_status(storage, day, load_registry(storage).names())
        source = "computed now (the fleet report has not run for this date)"
    return {"date": day, "source": source, "dates": dates, "status": status}


def client_view(storage: Any, client: str, date: str | None) -> dict[str, Any]:
    """Run records and the published manifest of one client on ``date`` (default: its newest run date)."""
    from sightlines.errors import SightlinesError
    from sightlines.fleet import client_status
    from sightlines.result import StepResult

    try:
        store = storage.client(client)
    except SightlinesError as exc:
        raise HTTPException(404, exc.message) from None
    dates = store.dates("runs")
    day = date or (dates[-1] if dates else None)
    if day is None:
        return {"client": client, "date": None, "dates": [], "steps": [], "predictions": None, "status": None}
    steps = []
    for name in store.list(store.runs(day)):
        if not name.endswith(".json"):
            continue
        try:
            rec = StepResult.from_dict(store.read_json(f"{store.runs(day)}/{name}"))
        except Exception as exc:  # noqa: BLE001 - shown, not fatal
            steps.append({"step_id": name[:-5], "status": "unreadable", "reason": str(exc)})
            continue
        steps.append({"step_id": rec.step_id, "step": rec.step, "sightline": rec.sightline, "status": rec.status,
                      "n_records": rec.n_records, "reason": rec.details.get("reason"),
                      "warnings": list(rec.warnings), "seconds": rec.details.get("seconds")})
    order = {"extract": 0, "sample": 1, "train": 2, "score": 3, "publish": 4}
    steps.sort(key=lambda s: (order.get(s.get("step") or "", 9), s["step_id"]))
    manifest = store.manifest(store.predictions(day))
    predictions = None
    if manifest is not None:
        predictions = {k: manifest.get(k) for k in ("row_count", "stale_days", "source_date", "republished_from",
                                                    "reason", "unavailable")}
        predictions["sightlines"] = {k: {kk: v.get(kk) for kk in ("model_date", "model_age_days", "fallback")}
                                     for k, v in sorted((manifest.get("sightlines") or {}).items())}
    return {"client": client, "date": day, "dates": dates, "steps": steps, "predictions": predictions,
            "status": client_status(storage, client, day).to_dict()}


def _fleet_html(prefix: str, view: dict[str, Any]) -> str:
    st = view["status"]
    counts = st.get("counts") or {}
    parts = [f"<p>{html.escape(view['date'])} &middot; {st.get('n_clients', 0)} client(s): "
             + ", ".join(f"{counts.get(k, 0)} {_badge(k)}" for k in ("fresh", "stale", "failed", "missing"))
             + f" <span class='muted'>({html.escape(view['source'])})</span></p>"]
    if view["dates"]:
        links = " ".join(f"<a href='{prefix}/?date={d}'>{d}</a>" for d in view["dates"][-14:])
        parts.append(f"<p class='muted'>reported dates: {links}</p>")
    rows = []
    order = {"failed": 0, "missing": 1, "stale": 2, "fresh": 3}
    items = sorted((st.get("clients") or {}).items(), key=lambda kv: (order.get(kv[1].get("status"), 9), kv[0]))
    for name, c in items:
        detail = c.get("reason") or ""
        if c.get("status") == "fresh":
            bits = []
            if c.get("fallback_sightlines"):
                bits.append("older models: " + ", ".join(f"{k} ({v})" for k, v in c["fallback_sightlines"].items()))
            if c.get("failed_steps"):
                bits.append("failed: " + ", ".join(c["failed_steps"]))
            detail = "; ".join(bits)
        stale = "" if c.get("stale_days") is None else str(c["stale_days"])
        rows.append(f"<tr><td><a href='{prefix}/clients/{html.escape(name)}?date={view['date']}'>{html.escape(name)}"
                    f"</a></td><td>{_badge(c.get('status'))}</td><td>{stale}</td><td>{html.escape(detail)}</td></tr>")
    parts.append("<table><tr><th>client</th><th>status</th><th>stale days</th><th>detail</th></tr>"
                 + "".join(rows) + "</table>")
    return "".join(parts)


def _client_html(prefix: str, view: dict[str, Any]) -> str:
    client, day = view["client"], view["date"]
    if day is None:
        return f"<p>No run records for {html.escape(client)} yet.</p><p><a href='{prefix}/'>fleet</a></p>"
    parts = [f"<p><a href='{prefix}/?date={day}'>&larr; fleet on {day}</a></p>"]
    status = view["status"] or {}
    parts.append(f"<p>{html.escape(client)} on {day}: {_badge(status.get('status'))} "
                 f"{html.escape(status.get('reason') or '')}</p>")
    rows = []
    for s in view["steps"]:
        reason = s.get("reason") or "; ".join(s.get("warnings") or [])
        secs = "" if s.get("seconds") is None else f"{s['seconds']:.1f}"
        rows.append(f"<tr><td><code>{html.escape(s['step_id'])}</code></td><td>{_badge(s.get('status'))}</td>"
                    f"<td>{s.get('n_records', '')}</td><td>{secs}</td><td>{html.escape(reason or '')}</td></tr>")
    parts.append("<h3>steps</h3><table><tr><th>step</th><th>status</th><th>records</th><th>seconds</th>"
                 "<th>reason / warnings</th></tr>" + "".join(rows) + "</table>")
    pred = view["predictions"]
    if pred is None:
        parts.append("<h3>published</h3><p>nothing published for this date</p>")
    else:
        head = (f"{pred.get('row_count')} users, stale_days {pred.get('stale_days')}, from "
                f"{pred.get('source_date')}" + (f" &middot; {html.escape(str(pred['reason']))}"
                                                if pred.get("reason") else ""))
        srows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td>{v.get('model_date')}</td>"
            f"<td>{_badge('fallback' if v.get('fallback') else 'ok')}</td></tr>" for k, v in pred["sightlines"].items())
        urows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td colspan='2'>{html.escape(str(v))}</td></tr>"
                        for k, v in sorted((pred.get("unavailable") or {}).items()))
        parts.append(f"<h3>published</h3><p>{head}</p><table><tr><th>sightline</th><th>model of</th>"
                     f"<th>model</th></tr>{srows}{urows}</table>")
    links = " ".join(f"<a href='{prefix}/clients/{html.escape(client)}?date={d}'>{d}</a>" for d in view["dates"][-30:])
    parts.append(f"<p class='muted'>run dates: {links}</p>")
    return "".join(parts)


_bearer = HTTPBearer(auto_error=False)


async def _authenticated(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Require an Airflow user, as Airflow's own pages do: a bearer token, or the UI's session cookie."""
    from airflow.api_fastapi.core_api.security import get_user

    await get_user(request, None, credentials)


def create_app(root: str | None = None, *, require_auth: bool = True) -> FastAPI:
    """The read-only Sightlines app.

    Parameters
    ----------
    root : str, optional
        Storage root; default ``$SIGHTLINES_ROOT`` of the API server, read per request.
    require_auth : bool, default=True
        Require an authenticated Airflow user (the UI's session cookie or a bearer
        token), as for Airflow's own pages. Tests of the pages alone turn it off.

    Returns
    -------
    fastapi.FastAPI
    """
    dependencies = [Depends(_authenticated)] if require_auth else []
    app = FastAPI(title="Sightlines", description="Run records and fleet status of Sightlines (read-only)",
                  dependencies=dependencies)

    @app.get("/", response_class=HTMLResponse)
    def fleet_page(request: Request, date: str | None = Query(None)) -> HTMLResponse:
        view = fleet_view(_storage(root), _date(date))
        return _page(f"Sightlines fleet — {view['date']}", _fleet_html(request.scope.get("root_path", ""), view))

    @app.get("/clients/{client}", response_class=HTMLResponse)
    def client_page(request: Request, client: str, date: str | None = Query(None)) -> HTMLResponse:
        view = client_view(_storage(root), client, _date(date))
        return _page(f"Sightlines — {client}", _client_html(request.scope.get("root_path", ""), view))

    @app.get("/api/fleet")
    def fleet_json(date: str | None = Query(None)) -> dict[str, Any]:
        return fleet_view(_storage(root), _date(date))

    @app.get("/api/clients/{client}")
    def client_json(client: str, date: str | None = Query(None)) -> dict[str, Any]:
        return client_view(_storage(root), client, _date(date))

    return app

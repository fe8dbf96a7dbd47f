"""Validation of predictions before they are published, and the shift against yesterday.

Pure functions over tables and arrays; the ``publish`` step does the I/O.

Examples
--------
>>> import pyarrow as pa
>>> t = pa.table({"user_id": ["a", "b"], "purchase_7": [0.1, 1.2], "purchase_7_ktile": [500, 1000]})
>>> validate_predictions(t, expected_rows=2, units={"purchase_7": "probability"})
['purchase_7: 1 value(s) outside [0, 1]']
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["validate_predictions", "distribution_shift", "render_report"]


def validate_predictions(table: pa.Table, *, expected_rows: int, units: dict[str, str]) -> list[str]:
    """Problems that forbid publishing (empty list: good to publish).

    Checks the row count against the snapshot's good users, unique user ids,
    no NaN or infinite values, values in their unit's range, and k-tiles in 1..1000.
    """
    problems = []
    if table.num_rows != expected_rows:
        problems.append(f"{table.num_rows:,} rows but the snapshot has {expected_rows:,} good users")
    if "user_id" not in table.column_names:
        return problems + ["no user_id column"]
    if pc.count_distinct(table.column("user_id")).as_py() != table.num_rows:
        problems.append("user ids are not unique")
    for name, unit in units.items():
        if name not in table.column_names:
            problems.append(f"{name}: column missing")
            continue
        v = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            problems.append(f"{name}: {int(bad.sum())} NaN or infinite value(s)")
        lo, hi = (0.0, 1.0) if unit in ("probability", "rate") else (0.0, np.inf)
        out = np.isfinite(v) & ((v < lo) | (v > hi))
        if out.any():
            problems.append(f"{name}: {int(out.sum())} value(s) outside [{lo:g}, {hi:g}]")
        if f"{name}_ktile" not in table.column_names:
            problems.append(f"{name}_ktile: column missing")
            continue
        k = table.column(f"{name}_ktile").to_numpy(zero_copy_only=False).astype(np.float64)
        if (~np.isfinite(k)).any():
            problems.append(f"{name}_ktile: {int((~np.isfinite(k)).sum())} missing value(s)")
        elif len(k) and (k.min() < 1 or k.max() > 1000):
            problems.append(f"{name}_ktile: outside 1..1000")
    return problems


def distribution_shift(today: np.ndarray, yesterday: np.ndarray) -> dict[str, Any]:
    """How a sightline's values moved since the previous publication.

    Returns means, medians and the population stability index (PSI) over
    yesterday's deciles (PSI < 0.1: stable; 0.1-0.25: moving; > 0.25: shifted).
    """
    t = np.asarray(today, dtype=np.float64)
    y = np.asarray(yesterday, dtype=np.float64)
    out: dict[str, Any] = {"mean": float(t.mean()) if len(t) else None,
                           "previous_mean": float(y.mean()) if len(y) else None,
                           "median": float(np.median(t)) if len(t) else None,
                           "previous_median": float(np.median(y)) if len(y) else None}
    if len(t) and len(y):
        edges = np.unique(np.quantile(y, np.linspace(0, 1, 11)[1:-1]))
        bt = np.bincount(np.searchsorted(edges, t, side="right"), minlength=len(edges) + 1) / len(t)
        by = np.bincount(np.searchsorted(edges, y, side="right"), minlength=len(edges) + 1) / len(y)
        eps = 1e-4
        bt, by = np.maximum(bt, eps), np.maximum(by, eps)
        out["psi"] = float(np.sum((bt - by) * np.log(bt / by)))
        out["verdict"] = "stable" if out["psi"] < 0.1 else ("moving" if out["psi"] < 0.25 else "shifted")
        if out["previous_mean"]:
            out["mean_change"] = out["mean"] / out["previous_mean"] - 1.0
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def render_report(client: str, date: str, metrics: dict[str, Any]) -> str:
    """A self-contained HTML model quality report of one client's day."""
    rows = []
    for name, m in metrics["sightlines"].items():
        ho = m.get("holdout") or {}
        ratio = ho.get("loss_ratio")
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in [
                html.escape(name), html.escape(m.get("description", "")), _fmt(m.get("model_date")),
                _fmt(m.get("model_age_days")), _fmt(m.get("trees")), _fmt(ho.get("kind")), _fmt(ho.get("loss")),
                _fmt(ho.get("baseline_loss")), (f"{(1 - ratio) * 100:.1f}%" if ratio else "–"), _fmt(ho.get("auc"), 3),
                _fmt(ho.get("spearman"), 3), "yes" if ho.get("outcome_rises_by_decile") else "no",
            ]) + "</tr>")
    unavailable = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                          for k, v in sorted(metrics.get("unavailable", {}).items()))
    deciles = []
    for name, m in metrics["sightlines"].items():
        decs = (m.get("holdout") or {}).get("deciles") or []
        if decs:
            cells = "".join(f"<td>{d['mean_prediction']:.4g}<br><small>{d['mean_outcome']:.4g}</small></td>" for d in decs)
            deciles.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    top = []
    for name, m in metrics["sightlines"].items():
        feats = ", ".join(f"{html.escape(f['feature'])} ({f['gain_share']:.0%})" for f in (m.get("importance") or [])[:5])
        top.append(f"<tr><td>{html.escape(name)}</td><td>{feats}</td></tr>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sightlines model report: {html.escape(client)} {date}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}
th{{background:#f3f3f3}}small{{color:#777}}</style></head><body>
<h1>Model quality: {html.escape(client)}, {date}</h1>
<p>Predictions published: {metrics.get('row_count', 0):,} users, stale days {metrics.get('stale_days', 0)}.
Holdout: the newest training cutoff (time) or a fifth of the users (single cutoff); loss is the objective's
(log loss, deviance, pinball); the baseline predicts the training mean for everyone.</p>
<table><tr><th>sightline</th><th>meaning</th><th>model date</th><th>age (days)</th><th>trees</th><th>holdout</th>
<th>loss</th><th>baseline</th><th>better by</th><th>AUC</th><th>Spearman</th><th>outcome rises by decile</th></tr>
{''.join(rows)}</table>
<h2>Calibration by prediction decile (holdout)</h2>
<p>Each cell: mean prediction, and below it the mean observed outcome.</p>
<table><tr><th>sightline</th>{''.join(f'<th>{d}</th>' for d in range(1, 11))}</tr>{''.join(deciles)}</table>
<h2>Strongest features</h2><table>{''.join(top)}</table>
<h2>Unavailable</h2><ul>{unavailable or '<li>none</li>'}</ul>
</body></html>
"""

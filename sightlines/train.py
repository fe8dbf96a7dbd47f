"""LightGBM per sightline: grid search with k-fold CV and early stopping, a time-based holdout, a refit.

Training is a function: :func:`train_sightline` takes a :class:`TrainSet` and
returns a :class:`ModelBundle` (the booster and a JSON-able record of how it
was made). It never touches storage and never changes the caller's params.

Degenerate data (too few users, no positives, labels that are all zero) is
refused with :class:`~sightlines.errors.UnavailableError` *before* LightGBM
sees it: LightGBM's poisson, gamma and tweedie objectives abort the process
when the labels sum to zero.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from sightlines.catalog import get_sightline
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame({"x": rng.normal(size=2000).astype("float32")})
>>> y = (rng.random(2000) < 1 / (1 + np.exp(-2 * X["x"].to_numpy()))).astype(float)
>>> ts = TrainSet(X=X, y=y, w=np.ones(2000), cutoff=np.repeat(["2026-11-10", "2026-11-17"], 1000))
>>> bundle = train_sightline(get_sightline("purchase_7"), ts, grid=Grid(depths=(2,), learning_rates=(0.1,), folds=3))
>>> bundle.meta["holdout"]["auc"] > 0.7
True
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from .catalog import Sightline
from .errors import UnavailableError

__all__ = ["TrainSet", "Grid", "ModelBundle", "train_sightline", "base_params", "evaluate", "DEFAULT_PARAMS"]

log = logging.getLogger(__name__)

#: LightGBM parameters shared by every sightline (the objective and the grid add to these)
DEFAULT_PARAMS: dict[str, Any] = {
    "max_bin": 63,
    "min_data_in_leaf": 50,
    "min_sum_hessian_in_leaf": 1e-3,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
    "num_threads": 1,
}
_DATASET_PARAMS = ("max_bin", "min_data_in_bin", "feature_pre_filter", "categorical_feature", "verbosity")


@dataclass(frozen=True)
class Grid:
    """The hyper-parameter grid: depths x learning rates, trees by CV with early stopping."""

    depths: tuple[int, ...] = (3, 5, 7)
    learning_rates: tuple[float, ...] = (0.05, 0.1, 0.2)
    folds: int = 5
    max_trees: int = 250
    early_stopping: int = 10
    seed: int = 7
    min_users: int = 200
    min_positives: int = 20
    #: the grid's k-fold CV runs on at most this many examples (the refit uses all of them)
    cv_sample_size: int = 20_000


@dataclass
class TrainSet:
    """Examples of one sightline: features, labels, weights, and the cutoff each example comes from."""

    X: pd.DataFrame
    y: np.ndarray
    w: np.ndarray
    cutoff: np.ndarray
    categorical: list[str] = field(default_factory=list)


@dataclass
class ModelBundle:
    """A trained booster and its record (params, CV, holdout, importances, data window)."""

    booster: lgb.Booster
    meta: dict[str, Any]


def base_params(sightline: Sightline, *, seed: int = 7) -> dict[str, Any]:
    """LightGBM parameters for a sightline's objective (a new dict every call)."""
    p = copy.deepcopy(DEFAULT_PARAMS)
    obj = sightline.objective
    p["objective"] = obj
    p["seed"] = seed
    metric = {"binary": "binary_logloss", "cross_entropy": "cross_entropy", "poisson": "poisson", "gamma": "gamma",
              "tweedie": "tweedie", "quantile": "quantile", "regression": "l2"}[obj]
    p["metric"] = metric
    if obj == "tweedie":
        p["tweedie_variance_power"] = 1.5
    if obj == "quantile":
        p["alpha"] = sightline.alpha
    return p


def _check(sightline: Sightline, ts: TrainSet, grid: Grid) -> None:
    n = len(ts.y)
    where = f"sightline {sightline.name}"
    if n < grid.min_users:
        raise UnavailableError(f"{where}: only {n} training examples (at least {grid.min_users} needed)",
                               record_id=sightline.name)
    y = ts.y
    if sightline.objective in ("binary", "cross_entropy"):
        pos = float(np.sum(y > 0))
        if pos < grid.min_positives:
            raise UnavailableError(f"{where}: only {pos:.0f} positive examples (at least {grid.min_positives} needed)",
                                   record_id=sightline.name)
        if sightline.objective == "binary" and pos > n - grid.min_positives:
            raise UnavailableError(f"{where}: almost every example is positive ({pos:.0f} of {n}); nothing to learn",
                                   record_id=sightline.name)
    elif sightline.objective in ("poisson", "gamma", "tweedie"):
        if not np.any(y > 0):
            raise UnavailableError(f"{where}: every label is zero (no events in any training window); "
                                   f"LightGBM's {sightline.objective} objective cannot train on that",
                                   record_id=sightline.name)
        if np.sum(y > 0) < grid.min_positives:
            raise UnavailableError(f"{where}: only {int(np.sum(y > 0))} non-zero labels "
                                   f"(at least {grid.min_positives} needed)", record_id=sightline.name)


def _clean_labels(sightline: Sightline, ts: TrainSet) -> tuple[TrainSet, int]:
    """Drop examples whose label the objective cannot take (negative counts, non-positive gamma)."""
    y = ts.y
    ok = np.isfinite(y) & np.isfinite(ts.w) & (ts.w > 0)
    if sightline.objective in ("poisson", "tweedie"):
        ok &= y >= 0
    elif sightline.objective == "gamma":
        ok &= y > 0
    elif sightline.objective in ("binary", "cross_entropy"):
        ok &= (y >= 0) & (y <= 1)
    dropped = int(len(y) - ok.sum())
    if dropped:
        ts = TrainSet(X=ts.X.loc[ok].reset_index(drop=True), y=y[ok], w=ts.w[ok], cutoff=ts.cutoff[ok],
                      categorical=ts.categorical)
    return ts, dropped


def _cv_subsample(sightline: Sightline, ts: TrainSet, grid: Grid) -> np.ndarray | None:
    """Rows for the grid's CV: all of them, or a seeded subsample (stratified for binary labels)."""
    n = len(ts.y)
    if n <= grid.cv_sample_size:
        return None
    rng = np.random.default_rng(grid.seed)
    if sightline.objective == "binary":
        out = []
        for cls in (0.0, 1.0):
            idx = np.flatnonzero(ts.y == cls)
            k = int(round(grid.cv_sample_size * len(idx) / n))
            out.append(rng.choice(idx, size=max(k, min(len(idx), grid.min_positives)), replace=False))
        return np.sort(np.concatenate(out))
    return np.sort(rng.choice(n, size=grid.cv_sample_size, replace=False))


def _dataset(ts: TrainSet, params: dict[str, Any], idx: np.ndarray | None = None) -> lgb.Dataset:
    X, y, w = (ts.X, ts.y, ts.w) if idx is None else (ts.X.iloc[idx], ts.y[idx], ts.w[idx])
    dparams = {k: params[k] for k in _DATASET_PARAMS if k in params}
    dparams["feature_pre_filter"] = False
    return lgb.Dataset(X, label=y, weight=w, categorical_feature=ts.categorical or "auto", params=dparams,
                       free_raw_data=False)


def _weighted_quantile(y: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(y)
    cw = np.cumsum(w[order])
    return float(y[order][np.searchsorted(cw, q * cw[-1])])


def evaluate(sightline: Sightline, y: np.ndarray, pred: np.ndarray, w: np.ndarray,
             baseline: float | None = None) -> dict[str, Any]:
    """Metrics of predictions against outcomes (weighted), with a constant baseline for comparison.

    Returns the objective's loss for the model and for the baseline (the
    weighted mean label, or the weighted quantile), their ratio, the AUC for
    probabilities, Spearman correlation, and per prediction decile the mean
    prediction and the mean outcome (calibration, and whether outcomes rise).
    """
    from sklearn.metrics import (
        mean_gamma_deviance,
        mean_pinball_loss,
        mean_poisson_deviance,
        mean_squared_error,
        mean_tweedie_deviance,
        roc_auc_score,
    )

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    obj = sightline.objective
    if baseline is None:
        baseline = _weighted_quantile(y, w, sightline.alpha) if obj == "quantile" else float(np.average(y, weights=w))
    base = np.full(len(y), baseline)
    eps = 1e-9

    def loss(p: np.ndarray) -> float:
        if obj in ("binary", "cross_entropy"):
            p = np.clip(p, eps, 1 - eps)
            return float(-np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=w))
        if obj == "poisson":
            return float(mean_poisson_deviance(y, np.maximum(p, eps), sample_weight=w))
        if obj == "gamma":
            return float(mean_gamma_deviance(y, np.maximum(p, eps), sample_weight=w))
        if obj == "tweedie":
            return float(mean_tweedie_deviance(y, np.maximum(p, eps), sample_weight=w, power=1.5))
        if obj == "quantile":
            return float(mean_pinball_loss(y, p, sample_weight=w, alpha=sightline.alpha))
        return float(mean_squared_error(y, p, sample_weight=w))

    m_loss, b_loss = loss(pred), loss(base)
    out: dict[str, Any] = {
        "n": int(len(y)), "weighted_n": float(w.sum()), "loss": m_loss, "baseline_loss": b_loss,
        "baseline_value": baseline, "loss_ratio": m_loss / b_loss if b_loss > 0 else None,
        "mean_prediction": float(np.average(pred, weights=w)), "mean_outcome": float(np.average(y, weights=w)),
    }
    if obj == "binary" and 0 < y.sum() < len(y):
        out["auc"] = float(roc_auc_score(y, pred, sample_weight=w))
    ranks_p = pd.Series(pred).rank().to_numpy()
    ranks_y = pd.Series(y).rank().to_numpy()
    out["spearman"] = float(np.corrcoef(ranks_p, ranks_y)[0, 1]) if len(y) > 2 and np.std(ranks_y) > 0 else None
    # deciles of the prediction (weighted by the examples' weights, like k-tiles over all users)
    order = np.argsort(pred, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    dec = np.minimum((cw * 10 - 1e-9).astype(int), 9)
    deciles = []
    for d in range(10):
        sel = order[dec == d]
        if len(sel):
            deciles.append({"decile": d + 1, "n": int(len(sel)),
                            "mean_prediction": float(np.average(pred[sel], weights=w[sel])),
                            "mean_outcome": float(np.average(y[sel], weights=w[sel]))})
    out["deciles"] = deciles
    means = [d["mean_outcome"] for d in deciles]
    out["outcome_rises_by_decile"] = bool(len(means) >= 2 and means[-1] > means[0])
    return out


def train_sightline(sightline: Sightline, ts: TrainSet, *, grid: Grid | None = None,
                    params: dict[str, Any] | None = None) -> ModelBundle:
    """Grid-search, validate and refit one sightline's model.

    Parameters
    ----------
    sightline : Sightline
        What to predict (the objective comes from here).
    ts : TrainSet
        Examples; ``cutoff`` gives each example's cutoff date, the most recent
        of which is held out for the time-based holdout metric.
    grid : Grid, optional
        Depths x learning rates, folds, early stopping, minimum data.
    params : dict, optional
        Extra LightGBM parameters; copied, never modified.

    Returns
    -------
    ModelBundle

    Raises
    ------
    UnavailableError
        Too few examples, no positives, or all-zero labels.
    """
    grid = grid or Grid()
    ts = TrainSet(X=ts.X, y=np.asarray(ts.y, dtype=np.float64), w=np.asarray(ts.w, dtype=np.float64),
                  cutoff=np.asarray(ts.cutoff), categorical=list(ts.categorical))
    ts, dropped = _clean_labels(sightline, ts)
    _check(sightline, ts, grid)
    p0 = base_params(sightline, seed=grid.seed)
    p0.update(copy.deepcopy(params or {}))
    ts = TrainSet(X=ts.X, y=ts.y, w=ts.w / ts.w.mean(), cutoff=ts.cutoff, categorical=ts.categorical)
    full = _dataset(ts, p0)
    cv_idx = _cv_subsample(sightline, ts, grid)
    cv_set = full if cv_idx is None else _dataset(ts, p0, cv_idx)
    cv_rows = []
    best = None
    stratified = sightline.objective == "binary"
    for depth in grid.depths:
        for lr in grid.learning_rates:
            p = dict(p0, max_depth=depth, num_leaves=max(2, min(2 ** depth - 1, 63)), learning_rate=lr)
            hist = lgb.cv(p, cv_set, num_boost_round=grid.max_trees, nfold=grid.folds, stratified=stratified,
                          shuffle=True, seed=grid.seed,
                          callbacks=[lgb.early_stopping(grid.early_stopping, verbose=False)])
            key = next(k for k in hist if k.endswith("-mean"))
            scores = hist[key]
            it = int(np.argmin(scores)) + 1
            row = {"max_depth": depth, "learning_rate": lr, "trees": it, "cv_loss": float(scores[it - 1]),
                   "cv_loss_std": float(hist[key.replace("-mean", "-stdv")][it - 1])}
            cv_rows.append(row)
            log.info("train %s: depth %d, learning rate %g -> %d trees, CV %s %.5f (%d/%d)", sightline.name, depth, lr,
                     it, p["metric"], row["cv_loss"], len(cv_rows), len(grid.depths) * len(grid.learning_rates))
            if best is None or row["cv_loss"] < best[0]["cv_loss"] - 1e-12:
                best = (row, p)
    assert best is not None
    row, p_best = best
    n_trees = row["trees"]

    # time-based holdout: fit on older cutoffs, evaluate on the newest one
    cut = np.asarray(ts.cutoff).astype(str)
    newest = max(cut)
    hold = cut == newest
    holdout_kind = "time"
    if hold.all():  # a single cutoff: hold out a fixed fifth of the users instead
        rng = np.random.default_rng(grid.seed)
        hold = rng.random(len(cut)) < 0.2
        holdout_kind = "users"
    tr_idx, ho_idx = np.flatnonzero(~hold), np.flatnonzero(hold)
    cap = 4 * grid.cv_sample_size  # the holdout model only measures quality: a bounded subsample will do
    if len(tr_idx) > cap:
        tr_idx = np.sort(np.random.default_rng(grid.seed + 1).choice(tr_idx, size=cap, replace=False))
    holdout: dict[str, Any] = {"kind": holdout_kind, "cutoff": newest if holdout_kind == "time" else None}
    if len(tr_idx) >= grid.min_users // 2 and len(ho_idx) >= 20:
        b_ho = lgb.train(p_best, _dataset(ts, p_best, tr_idx), num_boost_round=n_trees)
        pred = b_ho.predict(ts.X.iloc[ho_idx])
        baseline = float(np.average(ts.y[tr_idx], weights=ts.w[tr_idx]))
        if sightline.objective == "quantile":
            baseline = _weighted_quantile(ts.y[tr_idx], ts.w[tr_idx], sightline.alpha)
        holdout.update(evaluate(sightline, ts.y[ho_idx], pred, ts.w[ho_idx], baseline=baseline))
    else:
        holdout["skipped"] = "too few examples to hold any out"

    booster = lgb.train(p_best, full, num_boost_round=n_trees)
    gain = booster.feature_importance(importance_type="gain")
    names = booster.feature_name()
    top = sorted(zip(names, gain.tolist()), key=lambda t: -t[1])[:30]
    total_gain = float(sum(gain)) or 1.0
    meta = {
        "sightline": sightline.to_dict(),
        "params": {k: v for k, v in sorted(p_best.items())},
        "trees": n_trees,
        "grid": cv_rows,
        "cv_examples": int(len(ts.y) if cv_idx is None else len(cv_idx)),
        "folds": grid.folds,
        "chosen": row,
        "holdout": holdout,
        "features": names,
        "categorical": list(ts.categorical),
        "importance": [{"feature": f, "gain_share": round(g / total_gain, 5)} for f, g in top if g > 0],
        "examples": int(len(ts.y)),
        "positives": int(np.sum(ts.y > 0)),
        "dropped_labels": dropped,
        "cutoffs": sorted(set(cut.tolist())),
        "lightgbm": lgb.__version__,
    }
    return ModelBundle(booster=booster, meta=meta)

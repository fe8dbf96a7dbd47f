"""Batch scoring and k-tiles.

A k-tile is the rank of a user's value among all of the client's users,
scaled to 1..1000: higher value, higher k-tile; equal values share a k-tile;
the users with the highest value get 1000.

Examples
--------
>>> ktiles(np.array([0.1, 0.5, 0.5, 0.9])).tolist()
[250, 750, 750, 1000]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ktiles", "KTILES", "predict_values"]

KTILES = 1000


def ktiles(values: np.ndarray, k: int = KTILES) -> np.ndarray:
    """k-tiles (1..k, int16) of ``values``: ``ceil(k * #{v' <= v} / n)``.

    Ties share the k-tile of their last position, so the ranking is a pure
    function of the value; NaN is not allowed (validated before publishing).
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    s = np.sort(v, kind="stable")
    le = np.searchsorted(s, v, side="right")
    out = np.ceil(le * (k / n) - 1e-9).astype(np.int64)
    return np.clip(out, 1, k).astype(np.int16)


def predict_values(booster, X: pd.DataFrame, *, num_threads: int = 1) -> np.ndarray:
    """Predictions of a booster on a frame whose columns are in the model's feature order."""
    return np.asarray(booster.predict(X, num_threads=num_threads), dtype=np.float64)

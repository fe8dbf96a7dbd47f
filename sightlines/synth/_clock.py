"""A clock: a piecewise-constant intensity over the world's days and hours.

Time is measured in days since 00:00Z of the world's first day. A clock has a
weight per day and a 24-hour profile shared by all days; ``cum(t)`` is the
integral of the intensity from 0 to ``t`` and ``inv`` its inverse. Poisson
processes whose rate is ``rate * clock`` are sampled by inverse transform, and
the oracle integrates them exactly with the same two functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Clock"]


class Clock:
    """Cumulative intensity with a weight per day and an hour-of-day profile.

    Parameters
    ----------
    day_weights : array of float, shape (n_days,)
        Mass of each day (all > 0).
    hour_weights : array of float, shape (24,)
        Relative intensity of each UTC hour (all > 0); normalised to sum 1.
    """

    def __init__(self, day_weights: np.ndarray, hour_weights: np.ndarray):
        w = np.asarray(day_weights, dtype=np.float64)
        h = np.asarray(hour_weights, dtype=np.float64)
        if w.ndim != 1 or not (w > 0).all() or h.shape != (24,) or not (h > 0).all():
            raise ValueError("clock weights must be positive: (n_days,) day weights and (24,) hour weights")
        self.n_days = len(w)
        self.w = w
        self.W = np.concatenate([[0.0], np.cumsum(w)])
        self.h = h / h.sum()
        self.H = np.concatenate([[0.0], np.cumsum(self.h)])
        self.H[-1] = 1.0

    def cum(self, t: np.ndarray) -> np.ndarray:
        """Integral of the intensity over [0, t]; t is clipped to the world span."""
        t = np.clip(np.asarray(t, dtype=np.float64), 0.0, float(self.n_days))
        d = np.minimum(t.astype(np.int64), self.n_days - 1)
        x = (t - d) * 24.0
        k = np.minimum(x.astype(np.int64), 23)
        return self.W[d] + self.w[d] * (self.H[k] + self.h[k] * (x - k))

    def inv(self, y: np.ndarray) -> np.ndarray:
        """The time ``t`` with ``cum(t) == y``."""
        y = np.clip(np.asarray(y, dtype=np.float64), 0.0, self.W[-1])
        d = np.clip(np.searchsorted(self.W, y, side="right") - 1, 0, self.n_days - 1)
        r = np.clip((y - self.W[d]) / self.w[d], 0.0, 1.0)
        k = np.clip(np.searchsorted(self.H, r, side="right") - 1, 0, 23)
        x = k + (r - self.H[k]) / self.h[k]
        return d + np.minimum(x, 24.0) / 24.0

    def mass(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Integral over [a, b) (0 where b <= a)."""
        return np.maximum(self.cum(b) - self.cum(a), 0.0)

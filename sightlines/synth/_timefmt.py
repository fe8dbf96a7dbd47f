"""Fast, vectorised formatting of event times in each user's timestamp style.

Styles (see :data:`._latent.TS_STYLES`): ISO 8601 UTC with ``Z``, the same
with milliseconds, ISO with a fixed UTC offset (local wall time + ``+02:00``),
epoch seconds as an integer, epoch seconds as a float (milliseconds).
"""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np

__all__ = ["TimeFormatter"]

_MARGIN_DAYS = 3


@functools.lru_cache(maxsize=2)
def _clock_strings(quote: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-of-day strings: plain "HH:MM:SS", "HH:MM:SSZ" and ".mmmZ" (closed by ``quote``)."""
    hms = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
    plain = np.array(hms, dtype=object)
    zulu = np.array([x + "Z" + quote for x in hms], dtype=object)
    millis = np.array([f".{i:03d}Z{quote}" for i in range(1000)], dtype=object)
    return plain, zulu, millis


def _offset_string(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    m = abs(int(minutes))
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


class TimeFormatter:
    """Formats integer epoch seconds (+ milliseconds) of one world.

    Parameters
    ----------
    epoch0 : int
        Epoch seconds of the world's day 0.
    start : datetime.date
        The world's day 0.
    n_days : int
        Days in the world.
    """

    def __init__(self, epoch0: int, start: dt.date, n_days: int):
        self.epoch0 = epoch0
        self.first_day = epoch0 // 86400 - _MARGIN_DAYS
        days = [start + dt.timedelta(days=d - _MARGIN_DAYS) for d in range(n_days + 2 * _MARGIN_DAYS)]
        self.day_str = np.array([d.isoformat() + "T" for d in days], dtype=object)
        self.day_json = np.array(['"' + d.isoformat() + "T" for d in days], dtype=object)
        self.plain, self.zulu, self.millis = _clock_strings("")
        _, self.zulu_json, self.millis_json = _clock_strings('"')

    def _iso(self, sec: np.ndarray, table: np.ndarray, days: np.ndarray) -> np.ndarray:
        d, r = np.divmod(sec, 86400)
        d = np.clip(d - self.first_day, 0, len(days) - 1)
        return days[d] + table[r]

    def _format(self, sec: np.ndarray, ms: np.ndarray, style: np.ndarray, tz: np.ndarray, as_json: bool) -> np.ndarray:
        out = np.empty(len(sec), dtype=object)
        if not len(sec):
            return out
        q = '"' if as_json else ""
        days = self.day_json if as_json else self.day_str
        for k in np.unique(style).tolist():
            m = style == k
            s = sec[m]
            if k == 0:
                out[m] = self._iso(s, self.zulu_json if as_json else self.zulu, days)
            elif k == 1:
                out[m] = self._iso(s, self.plain, days) + (self.millis_json if as_json else self.millis)[ms[m]]
            elif k == 2:
                off = tz[m]
                offsets = np.unique(off)
                suffix = np.array([_offset_string(o) + q for o in offsets.tolist()], dtype=object)
                out[m] = self._iso(s + off * 60, self.plain, days) + suffix[np.searchsorted(offsets, off)]
            elif k == 3:
                out[m] = [str(x) for x in s.tolist()] if as_json else s.tolist()
            else:
                values = (s + ms[m] / 1000.0).tolist()
                out[m] = [repr(x) for x in values] if as_json else values
        return out

    def tokens(self, sec: np.ndarray, ms: np.ndarray, style: np.ndarray, tz: np.ndarray) -> list[object]:
        """JSON values (str, int or float) for each time, in the style of its user."""
        return self._format(sec, ms, style, tz, as_json=False).tolist()

    def json_tokens(self, sec: np.ndarray, ms: np.ndarray, style: np.ndarray, tz: np.ndarray) -> np.ndarray:
        """The same values as JSON text (quoted strings or numbers), as an object array."""
        return self._format(sec, ms, style, tz, as_json=True)

    def one(self, sec: int, ms: int, style: int, tz: int) -> object:
        return self.tokens(np.array([sec]), np.array([ms]), np.array([style]), np.array([tz]))[0]

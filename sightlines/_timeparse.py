"""Vectorised timestamp parsing: ISO 8601 strings and epoch seconds -> float epoch seconds.

Profiles carry millions of timestamps a day, so the common ISO forms are
parsed with numpy on the raw bytes (about 100 ns each); anything unusual goes
through :func:`datetime.datetime.fromisoformat`. Whatever cannot be read, or
lies outside ``[1970, latest]``, becomes NaN: a bad time makes a field
missing, never a whole user bad.
"""

from __future__ import annotations

import datetime as dt
import math
from itertools import compress, repeat
from operator import is_not

import numpy as np

__all__ = ["parse_times", "parse_time", "epoch_of_date", "end_of_day"]

_DAY = 86400.0
# "YYYY-MM-DDTHH:MM:SS" is 19 bytes; the suffix gives the zone
_WIDTH = 32


def epoch_of_date(day: dt.date) -> float:
    """Epoch seconds of 00:00:00 UTC on ``day``."""
    return float((day - dt.date(1970, 1, 1)).days) * _DAY


def end_of_day(day: dt.date) -> float:
    """Epoch seconds of the end of ``day`` (00:00:00 UTC the next day): the as-of instant of a snapshot."""
    return epoch_of_date(day) + _DAY


def parse_time(value: object) -> float:
    """Parse one timestamp (ISO 8601 string or epoch seconds) to epoch seconds, NaN if unreadable."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        v = float(value)
        return v if math.isfinite(v) else math.nan
    if isinstance(value, str):
        s = value.strip()
        if not s or len(s) > 40:
            return math.nan
        try:
            t = dt.datetime.fromisoformat(s)
        except ValueError:
            return math.nan
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        try:
            return t.timestamp()
        except (OverflowError, OSError, ValueError):
            return math.nan
    return math.nan


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (vectorised, int64)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_MDAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _parse_iso_bytes(b: np.ndarray) -> np.ndarray:
    """Parse an ``S{_WIDTH}`` array of ISO strings; NaN where the fast grammar does not match.

    The fast grammar is ``YYYY-MM-DD[T ]HH:MM:SS[.f+][Z|+HH:MM|-HH:MM|<none>]``.
    """
    n = len(b)
    m = b.view(np.uint8).reshape(n, _WIDTH)
    ok = (m[:, 4] == 45) & (m[:, 7] == 45) & ((m[:, 10] == 84) | (m[:, 10] == 32)) & (m[:, 13] == 58) & (m[:, 16] == 58)
    cols = {}
    for k in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18):
        c = m[:, k].astype(np.int32) - 48
        ok &= (c >= 0) & (c <= 9)
        cols[k] = c
    year = cols[0] * 1000 + cols[1] * 100 + cols[2] * 10 + cols[3]
    month = cols[5] * 10 + cols[6]
    day = cols[8] * 10 + cols[9]
    hour = cols[11] * 10 + cols[12]
    minute = cols[14] * 10 + cols[15]
    sec = cols[17] * 10 + cols[18]
    month_c = np.clip(month, 0, 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = _MDAYS[month_c] - ((month_c == 2) & ~leap).astype(np.int64)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= mdays) & (hour <= 23) & (minute <= 59) & (sec <= 60)
    days = _days_from_civil(year.astype(np.int64), month.astype(np.int64), day.astype(np.int64))
    out = (days * 86400 + (hour * 3600 + minute * 60 + sec)).astype(np.float64)

    # zone suffix: the common 'Z' and '' cases are cheap; fractions and offsets take a slower path
    c19, c20 = m[:, 19], m[:, 20]
    simple = ((c19 == 90) & (c20 == 0)) | (c19 == 0)
    rest = np.flatnonzero(ok & ~simple)
    if len(rest):
        sub = m[rest].astype(np.int64)
        k = len(rest)
        rows = np.arange(k)
        frac = np.zeros(k)
        pos = np.full(k, 19, dtype=np.int64)
        has_frac = sub[:, 19] == 46
        if has_frac.any():
            scale = np.full(k, 0.1)
            pos = np.where(has_frac, 20, 19)
            active = has_frac
            for _ in range(9):
                c = sub[rows, np.minimum(pos, _WIDTH - 1)]
                isdig = active & (c >= 48) & (c <= 57) & (pos < _WIDTH - 1)
                frac = np.where(isdig, frac + (c - 48) * scale, frac)
                scale = np.where(isdig, scale / 10, scale)
                pos = np.where(isdig, pos + 1, pos)
                active = isdig

        def at(off: int) -> np.ndarray:
            return sub[rows, np.minimum(pos + off, _WIDTH - 1)]

        z0 = at(0)
        end_z = (z0 == 90) & (at(1) == 0)
        end_naive = z0 == 0
        sign = np.where(z0 == 43, 1, np.where(z0 == 45, -1, 0))
        oh = (at(1) - 48) * 10 + (at(2) - 48)
        om = (at(4) - 48) * 10 + (at(5) - 48)
        off_ok = (sign != 0) & (at(3) == 58) & (at(6) == 0)
        for j in (1, 2, 4, 5):
            c = at(j)
            off_ok &= (c >= 48) & (c <= 57)
        off_ok &= (oh <= 23) & (om <= 59)
        good = end_z | end_naive | off_ok
        vals = out[rest] + frac - np.where(off_ok, sign * (oh * 3600 + om * 60), 0)
        vals[~good] = np.nan
        out[rest] = vals
    out[~ok] = np.nan
    return out


def _parse_bytes(b: np.ndarray) -> np.ndarray:
    """Parse an ``S{_WIDTH}`` array; the common ``YYYY-MM-DDTHH:MM:SSZ`` goes through numpy's own parser."""
    n = len(b)
    m = b.view(np.uint8).reshape(n, _WIDTH)
    out = np.full(n, np.nan)
    canonical = ((m[:, 4] == 45) & (m[:, 7] == 45) & (m[:, 10] == 84) & (m[:, 13] == 58) & (m[:, 16] == 58)
                 & (m[:, 19] == 90) & (m[:, 20] == 0))
    idx = np.flatnonzero(canonical)
    if len(idx):
        try:
            out[idx] = b[idx].astype("S19").astype("datetime64[s]").astype(np.int64)
        except ValueError:  # an impossible date somewhere: check each one
            out[idx] = _parse_iso_bytes(b[idx])
    millis = ((m[:, 4] == 45) & (m[:, 7] == 45) & (m[:, 10] == 84) & (m[:, 13] == 58) & (m[:, 16] == 58)
              & (m[:, 19] == 46) & (m[:, 23] == 90) & (m[:, 24] == 0))
    idx = np.flatnonzero(millis)
    if len(idx):
        sub = b[idx]
        sm = m[idx]
        ms = (sm[:, 20].astype(np.int64) - 48) * 100 + (sm[:, 21].astype(np.int64) - 48) * 10 + (sm[:, 22] - 48)
        ok = (sm[:, 20:23] >= 48).all(axis=1) & (sm[:, 20:23] <= 57).all(axis=1)
        try:
            secs = sub.astype("S19").astype("datetime64[s]").astype(np.int64)
            out[idx] = np.where(ok, secs + ms / 1000.0, np.nan)
        except ValueError:
            out[idx] = _parse_iso_bytes(sub)
    rest = np.flatnonzero(~canonical & ~millis & (m[:, 0] >= 48) & (m[:, 0] <= 57) & (m[:, _WIDTH - 1] == 0))
    if len(rest):
        out[rest] = _parse_iso_bytes(b[rest])
    return out


def parse_times(values: list[object] | np.ndarray, *, latest: float | None = None) -> np.ndarray:
    """Parse many timestamps to float64 epoch seconds.

    Parameters
    ----------
    values : list
        ISO 8601 strings (``Z``, ``+HH:MM`` or no zone = UTC; optional fraction),
        epoch seconds (int/float), ``None`` or anything else.
    latest : float, optional
        Epoch seconds after which a time is considered absurd (e.g. far in the
        future of the snapshot) and becomes NaN.

    Returns
    -------
    numpy.ndarray of float64
        NaN where a value is missing, unreadable, before 1970 or after ``latest``.

    Examples
    --------
    >>> parse_times(["2026-11-24T00:00:00Z", "2026-11-24T02:00:00+02:00", 1764000000, "soon", None]).tolist()
    [1795478400.0, 1795478400.0, 1764000000.0, nan, nan]
    """
    n = len(values)
    if n == 0:
        return np.full(0, np.nan)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        out = values.astype(np.float64)
    else:
        if not isinstance(values, list):
            values = list(values)
        nones = values.count(None)
        if nones == n:
            return np.full(n, np.nan)
        if nones > n // 8:  # mostly-null fields (e.g. "opened"): parse the non-null ones only
            mask = np.fromiter(map(is_not, values, repeat(None)), dtype=bool, count=n)
            out = np.full(n, np.nan)
            out[mask] = parse_times(list(compress(values, mask)), latest=latest)
            return out
        try:
            b = np.array(values, dtype=f"S{_WIDTH}")
            if b.shape != (n,):
                raise ValueError("nested values")
        except (UnicodeEncodeError, ValueError, TypeError):
            b = None
        if b is not None:
            out = _parse_bytes(b)
            retry = np.flatnonzero(np.isnan(out))
        else:
            out = np.full(n, np.nan)
            retry = range(n)
        for j in retry:  # None, numbers, unusual spellings: the slow, general parser
            v = values[j]
            t = type(v)
            if t is int or t is float:
                out[j] = v
            elif v is not None:
                out[j] = parse_time(v)
    with np.errstate(invalid="ignore"):
        out[~np.isfinite(out) | (out < 0)] = np.nan
        if latest is not None:
            out[out > latest] = np.nan
    return out

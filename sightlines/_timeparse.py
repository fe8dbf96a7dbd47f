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


_FRAC_WEIGHTS = 10.0 ** -np.arange(1, 10)


def _parse_iso_bytes(b: np.ndarray) -> np.ndarray:
    """Parse an ``S{_WIDTH}`` array of ISO strings; NaN where the fast grammar does not match.

    The grammar is ``YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+HH:MM|-HH:MM|<none>]``,
    parsed with whole-array numpy arithmetic on the bytes.
    """
    n = len(b)
    m = b.view(np.uint8).reshape(n, _WIDTH)
    d = m[:, :29].astype(np.int16) - 48  # int16: a wider cast of the whole block is ten times slower
    dig = (d >= 0) & (d <= 9)
    ok = dig[:, [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]].all(axis=1)
    ok &= (m[:, 4] == 45) & (m[:, 7] == 45) & ((m[:, 10] == 84) | (m[:, 10] == 32)) & (m[:, 13] == 58) & (m[:, 16] == 58)

    def num(i: int, j: int) -> np.ndarray:
        v = d[:, i].astype(np.int32)
        for k in range(i + 1, j):
            v = v * 10 + d[:, k]
        return v

    year, month, day = num(0, 4), num(5, 7), num(8, 10)
    hour, minute, sec = num(11, 13), num(14, 16), num(17, 19)
    month_c = np.clip(month, 0, 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = _MDAYS[month_c] - ((month_c == 2) & ~leap).astype(np.int64)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= mdays) & (hour <= 23) & (minute <= 59) & (sec <= 60)
    days = _days_from_civil(year.astype(np.int64), month.astype(np.int64), day.astype(np.int64))
    out = (days * 86400 + (hour * 3600 + minute * 60 + sec)).astype(np.float64)

    # optional fraction: a run of 1-9 digits after a '.' at byte 19
    has_frac = m[:, 19] == 46
    length = np.zeros(n, dtype=np.int64)
    fr = np.flatnonzero(has_frac)
    if len(fr):
        run = np.cumprod(dig[fr, 20:29], axis=1)
        length[fr] = run.sum(axis=1)
        out[fr] += (d[fr, 20:29] * run) @ _FRAC_WEIGHTS
    ok &= ~has_frac | (length > 0)
    pos = np.where(has_frac, 20 + length, 19)
    rows = np.arange(n)

    def at(off: int) -> np.ndarray:
        return m[rows, np.minimum(pos + off, _WIDTH - 1)].astype(np.int32)

    z0 = at(0)
    end_z = (z0 == 90) & (at(1) == 0)  # 'Z'
    end_naive = z0 == 0  # no zone: UTC
    sign = np.where(z0 == 43, 1, np.where(z0 == 45, -1, 0))
    o1, o2, o4, o5 = at(1) - 48, at(2) - 48, at(4) - 48, at(5) - 48
    off_ok = (sign != 0) & (at(3) == 58) & (at(6) == 0)
    for c in (o1, o2, o4, o5):
        off_ok &= (c >= 0) & (c <= 9)
    oh, om = o1 * 10 + o2, o4 * 10 + o5
    off_ok &= (oh <= 23) & (om <= 59)
    ok &= end_z | end_naive | off_ok
    out -= np.where(off_ok, sign * (oh * 3600 + om * 60), 0)
    out[~ok] = np.nan
    return out


_DIGIT_COLS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)


def _parse_common(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The common spellings, cheaply: ``...SS`` followed by ``Z``, ``.mmmZ``, ``+HH:MM`` or nothing.

    Returns the epoch seconds and a mask of the rows this grammar covers;
    the caller sends the other rows to :func:`_parse_iso_bytes`.
    """
    n = len(m)
    u8 = np.uint8
    ok = (m[:, 4] == 45) & (m[:, 7] == 45) & ((m[:, 10] == 84) | (m[:, 10] == 32)) & (m[:, 13] == 58) & (m[:, 16] == 58)
    d = {}
    for k in _DIGIT_COLS:
        c = m[:, k] - u8(48)  # wraps below '0', so one comparison checks the digit
        ok &= c <= 9
        d[k] = c.astype(np.int32)
    year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]
    month = d[5] * 10 + d[6]
    day = d[8] * 10 + d[9]
    secs_of_day = (d[11] * 10 + d[12]) * 3600 + (d[14] * 10 + d[15]) * 60 + d[17] * 10 + d[18]
    ok &= (d[11] * 10 + d[12] <= 23) & (d[14] <= 5) & (d[17] <= 6)
    month_c = np.clip(month, 0, 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = _MDAYS[month_c] - ((month_c == 2) & ~leap).astype(np.int64)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= mdays)
    out = (_days_from_civil(year.astype(np.int64), month.astype(np.int64), day.astype(np.int64)) * 86400
           + secs_of_day).astype(np.float64)
    c19, c20 = m[:, 19], m[:, 20]
    zulu = (c19 == 90) & (c20 == 0)
    naive = c19 == 0
    ms = (c19 == 46) & (m[:, 23] == 90) & (m[:, 24] == 0)
    ms_digits = [m[:, k] - u8(48) for k in (20, 21, 22)]
    ms &= (ms_digits[0] <= 9) & (ms_digits[1] <= 9) & (ms_digits[2] <= 9)
    off = ((c19 == 43) | (c19 == 45)) & (m[:, 22] == 58) & (m[:, 25] == 0)
    off_digits = [m[:, k] - u8(48) for k in (20, 21, 23, 24)]
    for c in off_digits:
        off &= c <= 9
    if ms.any():
        millis = (ms_digits[0].astype(np.int32) * 100 + ms_digits[1].astype(np.int32) * 10 + ms_digits[2]) / 1000.0
        out += np.where(ms, millis, 0.0)
    if off.any():
        oh = off_digits[0].astype(np.int32) * 10 + off_digits[1]
        om = off_digits[2].astype(np.int32) * 10 + off_digits[3]
        off &= (oh <= 23) & (om <= 59)
        sign = np.where(c19 == 43, 1, -1)
        out -= np.where(off, sign * (oh * 3600 + om * 60), 0)
    covered = ok & (zulu | naive | ms | off)
    del n
    return out, covered


def _parse_bytes(b: np.ndarray) -> np.ndarray:
    """Parse an ``S{_WIDTH}`` array of ISO strings (NaN where no ISO grammar matches).

    Only numpy arithmetic on the bytes: numpy's own string-to-datetime64
    conversion crashed the interpreter (a segmentation fault) on a real
    snapshot, so it is not used.
    """
    n = len(b)
    m = b.view(np.uint8).reshape(n, _WIDTH)
    out, covered = _parse_common(m)
    out[~covered] = np.nan
    rest = np.flatnonzero(~covered & (m[:, 0] >= 48) & (m[:, 0] <= 57) & (m[:, _WIDTH - 1] == 0))
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
            # a non-ASCII or nested value among them: those alone go to the general parser below,
            # so that each value's result never depends on its neighbours
            b = np.array([v if type(v) is str and v.isascii() else "" for v in values], dtype=f"S{_WIDTH}")
        out = _parse_bytes(b)
        retry = np.flatnonzero(np.isnan(out))
        for j in retry:  # None, numbers, unusual spellings: the slow, general parser
            v = values[j]
            t = type(v)
            if t is int or t is float:
                out[j] = v if -1e18 < v < 1e18 else np.nan  # an integer beyond any float would overflow
            elif v is not None:
                out[j] = parse_time(v)
    with np.errstate(invalid="ignore"):
        out[~np.isfinite(out) | (out < 0)] = np.nan
        if latest is not None:
            out[out > latest] = np.nan
    return out

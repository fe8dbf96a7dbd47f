"""The ground-truth table: latent parameters of a snapshot's users, as Arrow/pandas."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ._catalog import TIER_NAMES
from ._latent import TS_STYLES
from ._world import Sim, World

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ..storage import ClientStore

__all__ = ["load_truth", "truth_table", "WORLD_METADATA_KEY", "days_from_timestamps", "TIME_COLUMNS"]

WORLD_METADATA_KEY = b"sightlines.synth.world"
#: truth column -> the world-day column it is made from
TIME_COLUMNS = {"created": "created_day", "churn_at": "churn_day", "messaging_end": "mail_end_day", "optout_at": "optout_day"}


def _timestamps(sim: Sim, days: np.ndarray) -> pa.Array:
    import pyarrow as pa

    finite = np.isfinite(days)
    us = np.where(finite, np.round((sim.epoch0 + np.where(finite, days, 0.0) * 86400.0) * 1e6), 0).astype(np.int64)
    return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=~finite)


def truth_table(sim: Sim, cols: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table of the truth columns of some users (see :func:`._profile.truth_columns`)."""
    import pyarrow as pa

    arrays: dict[str, Any] = {
        "user_id": pa.array([sim.user_id(int(i)) for i in cols["index"]], type=pa.string()),
        "index": pa.array(cols["index"], type=pa.int64()),
    }
    for name, src in TIME_COLUMNS.items():
        arrays[name] = _timestamps(sim, cols[src])
    names = {
        "source": np.asarray(sim.params.sources, dtype=object),
        "signup": np.asarray(sim.params.signup_channels, dtype=object),
        "ts_style": np.asarray(TS_STYLES, dtype=object),
    }
    for key, value in cols.items():
        if key in ("index", *TIME_COLUMNS.values()):
            continue
        if key in names:
            arrays[key] = pa.array(names[key][value].tolist(), type=pa.string())
        elif key == "tz_offset":
            arrays["tz_offset_minutes"] = pa.array(value, type=pa.int32())
        elif key in ("member", "one_off"):
            arrays[key] = pa.array(value, type=pa.bool_())
        elif key.startswith("tier_prob_"):
            arrays[f"tier_prob_{TIER_NAMES[int(key[-1])]}"] = pa.array(value, type=pa.float64())
        else:
            arrays[key] = pa.array(value, type=pa.float64())
    table = pa.table(arrays)
    return table.replace_schema_metadata({WORLD_METADATA_KEY: orjson.dumps(sim.world.definition())})


def days_from_timestamps(world_start_epoch: int, values: Any) -> np.ndarray:
    """World days of a pandas/NumPy datetime column; missing values become inf."""
    arr = np.asarray(values, dtype="datetime64[us]")
    us = arr.astype(np.int64)
    out = (us / 1e6 - world_start_epoch) / 86400.0
    out[np.isnat(arr)] = np.inf
    return out


def world_of(metadata: dict[bytes, bytes] | None) -> World | None:
    if not metadata or WORLD_METADATA_KEY not in metadata:
        return None
    return World.from_json(orjson.loads(metadata[WORLD_METADATA_KEY]))


def load_truth(store: ClientStore, date: dt.date | str) -> pd.DataFrame:
    """The ground truth of one snapshot: one row per good user, with every latent parameter.

    Parameters
    ----------
    store : ClientStore
        The synthetic client.
    date : datetime.date or str
        A snapshot date written by :func:`generate_client`.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id``, ``index``, the times ``created``, ``churn_at``
        (activity stops), ``messaging_end`` (the brand stops messaging),
        ``optout_at`` (the realised e-mail opt-out, NaT if none in the world),
        and the latent rates and propensities (``pv_rate``, ``conv``,
        ``purchase_rate``, ``mail_rate``, ``sms_rate``, ``push_rate``,
        ``open_prob``, ``click_prob``, ``optout_prob``, ``aov_mean`` ...).
        ``attrs["world"]`` holds the world definition the oracle functions need.

    Raises
    ------
    NotFoundError
        If that snapshot was not generated.

    Examples
    --------
    >>> from sightlines.storage import Storage
    >>> from sightlines.synth import generate_client, load_truth
    >>> acme = Storage("memory://doctest-synth-truth").client("acme")
    >>> _ = generate_client(acme, users=200, date="2026-11-24", workers=1)
    >>> truth = load_truth(acme, "2026-11-24")
    >>> truth["user_id"].iloc[0], truth.attrs["world"]["anchor"]
    ('u-000000', '2026-11-24')
    """
    from ..errors import NotFoundError
    from ._generate import truth_key

    key = truth_key(date)
    try:
        table = store.read_parquet(key)
    except NotFoundError:
        raise NotFoundError(
            f"no synthetic truth at {store.url_of(key)}; run generate_client(store, date={str(date)!r}, ...) first",
            path=key,
        ) from None
    world = world_of(table.schema.metadata)
    df = table.replace_schema_metadata(None).to_pandas()
    if world is not None:
        df.attrs["world"] = world.definition()
    return df

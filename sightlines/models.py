"""Model files: ``models/{date}/{sightline}.txt`` (LightGBM text) + ``.json`` (how it was made). Never pickle.

The ``.txt`` is written first and the ``.json`` last; the JSON carries the
SHA-256 of the text model, so a reader that finds the JSON knows the model
beside it is complete and the one the record describes. :func:`last_good_model`
walks back through the dates to the newest model whose record says ``ok``:
that is how a sightline whose training failed today is still scored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import StorageError
from .storage import ClientStore, date_str

if TYPE_CHECKING:  # LightGBM (with scikit-learn and SciPy) takes seconds to import: only where a model is used
    import lightgbm as lgb

log = logging.getLogger(__name__)

__all__ = ["save_model", "load_model", "last_good_model", "StoredModel", "CONTEXT_WEEKDAY"]

#: context feature added to every model: weekday (0 = Monday) of the first day of the predicted window
CONTEXT_WEEKDAY = "_ctx.weekday"


@dataclass
class StoredModel:
    """A model found in storage: its date, record and (lazily loaded) booster."""

    date: str
    sightline: str
    meta: dict[str, Any]
    store: ClientStore

    def booster(self) -> lgb.Booster:
        text = self.store.read_bytes(self.store.model_file(self.date, self.sightline, "txt"))
        if hashlib.sha256(text).hexdigest() != self.meta.get("model_sha256"):
            raise StorageError(f"model {self.sightline} of {self.date} does not match its record (checksum); "
                               "retrain it", path=self.store.model_file(self.date, self.sightline, "txt"))
        import lightgbm as lgb

        return lgb.Booster(model_str=text.decode())


def save_model(store: ClientStore, date: dt.date | str, sightline: str, booster: lgb.Booster,
               meta: dict[str, Any]) -> dict[str, str]:
    """Write the text model, then its JSON record (the commit). Returns the two keys."""
    text = booster.model_to_string().encode()
    txt = store.model_file(date, sightline, "txt")
    js = store.model_file(date, sightline, "json")
    store.write_bytes(txt, text)
    record = dict(meta, model_sha256=hashlib.sha256(text).hexdigest(), date=date_str(date), status="ok")
    store.write_json(js, record)
    return {"model": txt, "record": js}


def load_model(store: ClientStore, date: dt.date | str, sightline: str) -> StoredModel | None:
    """The model of ``sightline`` trained on ``date``, if its record exists and says ok."""
    key = store.model_file(date, sightline, "json")
    if not store.exists(key):
        return None
    meta = store.read_json(key)
    if meta.get("status") != "ok":
        return None
    return StoredModel(date=date_str(date), sightline=sightline, meta=meta, store=store)


def last_good_model(store: ClientStore, date: dt.date | str, sightline: str) -> StoredModel | None:
    """The newest good model of ``sightline`` trained on or before ``date``."""
    limit = date_str(date)
    for d in reversed(store.dates("models")):
        if d > limit:
            continue
        m = load_model(store, d, sightline)
        if m is not None:
            return m
    return None

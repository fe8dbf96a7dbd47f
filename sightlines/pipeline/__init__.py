"""The idempotent daily steps of Sightlines, each a function of (client, date, storage).

Every step reads its inputs from storage and commits its outputs atomically,
so a step can be retried, re-run or backfilled at will:

========  =====================================================  =========================
step      reads                                                  writes
========  =====================================================  =========================
extract   ``raw/{date}/``                                        ``features/{date}/``
sample    ``raw/{date}/``, ``features/{date}/`` (and earlier)    ``training/{date}/``
train     ``training/{date}/``                                   ``models/{date}/{name}.*``
score     ``features/{date}/``, the newest good models           ``scores/{date}/``
publish   ``scores/{date}/`` or the last predictions             ``predictions/{date}/``
========  =====================================================  =========================
"""

from ._extract import extract, learn_client_schema
from ._publish import latest_predictions, publish, read_predictions
from ._records import read_records, recorded
from ._run import DailyRun, run_daily
from ._sample import sample
from ._score import score
from ._train import train

#: step name -> step function, as exposed by ``sightlines step NAME``
STEPS = {"extract": extract, "sample": sample, "train": train, "score": score, "publish": publish}

__all__ = ["extract", "sample", "train", "score", "publish", "run_daily", "DailyRun", "learn_client_schema",
           "recorded", "read_records", "latest_predictions", "read_predictions", "STEPS"]

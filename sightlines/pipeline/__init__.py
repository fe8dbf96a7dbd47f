"""The idempotent daily steps of Sightlines, each a function of (client, date, storage).

Every step reads its inputs from storage and commits its outputs atomically,
so a step can be retried, re-run or backfilled at will.
"""

from ._extract import extract, learn_client_schema
from ._records import read_records, recorded

#: step name -> step function, as exposed by ``sightlines step NAME``
STEPS = {"extract": extract}

__all__ = ["extract", "learn_client_schema", "recorded", "read_records", "STEPS"]

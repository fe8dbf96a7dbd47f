"""An operator that fails with a client's registry error, so that an invalid entry shows in the UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ClientConfigErrorOperator"]


class ClientConfigErrorOperator(BaseOperator):
    """Fail (without retries) with the error found in a client's registry entry.

    Parameters
    ----------
    client : str
        Client id.
    error : str
        What is wrong with its entry (the message of the config error).
    """

    template_fields: Sequence[str] = ()
    ui_color = "#f8d7da"

    def __init__(self, *, client: str, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.error = error

    def execute(self, context: Context) -> None:
        """Raise the registry error; fix the entry with ``sightlines clients add CLIENT --config ...``."""
        raise AirflowFailException(f"the registry entry of {self.client} is invalid: {self.error}; fix it with "
                                   f"`sightlines clients add {self.client} --config '{{...}}'` (or remove it) and "
                                   "the DAG is rebuilt at the next parse")

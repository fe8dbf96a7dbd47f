"""``SightlinesPlugin``: the Sightlines pages inside the Airflow UI (entry point ``airflow.plugins``).

It mounts a small read-only web app (:mod:`sightlines_airflow._ui`) under
``/sightlines`` in the API server and adds a "Sightlines" entry to the UI's
navigation that shows it. The pages read stored run records and fleet status
and never launch jobs.

Every Airflow process loads plugins (a task does, to collect macros), so this
module imports nothing heavy: the FastAPI app is built on its first request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

__all__ = ["LazySightlinesApp", "SightlinesPlugin"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazySightlinesApp:
    """An ASGI app that builds :func:`sightlines_airflow._ui.create_app` on its first request."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._app: Any = None

    @property
    def app(self) -> Any:
        """The FastAPI app (built now if it was not yet)."""
        if self._app is None:
            from ._ui import create_app

            self._app = create_app(**self.options)
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class SightlinesPlugin(AirflowPlugin):
    """Read-only pages of Sightlines: the fleet on a date, and per client which steps and sightlines were
    fresh, fell back or failed."""

    name = "sightlines"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": LazySightlinesApp(), "url_prefix": "/sightlines", "name": "Sightlines"},
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Sightlines",
            "href": "/sightlines/",
            "url_route": "sightlines",
            "destination": "nav",
            "category": "browse",
        },
    ]

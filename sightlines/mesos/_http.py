"""HTTP plumbing shared by the scheduler client, the operator API and master detection.

One place decides TLS verification, authentication and timeouts, and one
place understands the master's 307 redirects to the leader.
"""

from __future__ import annotations

import logging
import os
import ssl
import urllib.parse
from typing import Any, Mapping

import httpx

from .config import MesosConfig
from .errors import MesosAuthError, MesosConfigError, MesosProtocolError

__all__ = ["build_http_client", "resolve_location", "post_json", "describe_transport_error", "auth_error"]

logger = logging.getLogger(__name__)

#: a master that redirects more often than this is misconfigured
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
#: path suffixes that are API endpoints rather than part of a master's base URL
_API_SUFFIXES = ("/api/v1/scheduler", "/api/v1", "/master/redirect")


def _verify_setting(config: MesosConfig) -> bool | ssl.SSLContext:
    if config.verify is False:
        logger.warning(
            "TLS certificate verification is OFF for the Mesos master (MesosConfig.verify=False): "
            "anyone on the network path can impersonate the master and read the credentials. "
            "Give the CA bundle path instead."
        )
        return False
    if isinstance(config.verify, str):
        if not os.path.isfile(config.verify):
            raise MesosConfigError(
                f"MesosConfig: verify={config.verify!r} is not a readable CA bundle file; "
                "give the path of the PEM file holding the CA that signed the master's certificate."
            )
        return ssl.create_default_context(cafile=config.verify)
    return True


def build_http_client(config: MesosConfig) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with the config's TLS, auth and timeouts; redirects are handled by us.

    Parameters
    ----------
    config : MesosConfig
        Cluster settings.

    Returns
    -------
    httpx.AsyncClient
        The caller closes it (``await client.aclose()``).
    """
    auth = httpx.BasicAuth(config.principal, config.secret) if config.principal is not None else None
    timeout = httpx.Timeout(config.request_timeout, connect=config.connect_timeout)
    return httpx.AsyncClient(
        verify=_verify_setting(config),
        auth=auth,
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": "sightlines-mesos", "Accept": "application/json"},
    )


def base_url(url: str) -> str:
    """``https://m1:5050/api/v1/scheduler`` -> ``https://m1:5050`` (a path prefix is kept)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    for suffix in _API_SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def resolve_location(current: str, location: str) -> str:
    """The base URL of the master a 307 ``Location`` points at.

    Masters send scheme-relative locations (``//m2:5050/api/v1/scheduler``);
    older docs show a bare ``m2:5050``; absolute URLs are accepted too. The
    scheme of the current URL is kept when the location has none.

    Examples
    --------
    >>> resolve_location("https://m1:5050", "//m2:5050/api/v1/scheduler")
    'https://m2:5050'
    >>> resolve_location("http://m1:5050", "m2:5050")
    'http://m2:5050'
    """
    scheme = urllib.parse.urlsplit(current).scheme or "http"
    location = location.strip()
    if location.startswith("//"):
        url = f"{scheme}:{location}"
    elif "://" in location:
        url = location
    elif location.startswith("/"):
        current_parts = urllib.parse.urlsplit(current)
        url = f"{scheme}://{current_parts.netloc}{location}"
    else:
        url = f"{scheme}://{location}"
    return base_url(url)


def describe_transport_error(url: str, exc: Exception) -> str:
    """A one-line description of a failed connection, with a hint for TLS problems."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = getattr(exc, "__cause__", None) or getattr(exc, "__context__", None)
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(cause, ssl.SSLCertVerificationError):
        text += (
            " (the master's TLS certificate is not trusted: set MesosConfig.verify to the path of the CA "
            "bundle that signed it)"
        )
    return f"{url}: {text}"


def auth_error(url: str, response: httpx.Response, config: MesosConfig, what: str) -> MesosAuthError:
    """The error for a 401/403 answer, saying which knob to turn."""
    body = response.text.strip()[:300]
    if response.status_code == 401:
        who = f"principal {config.principal!r}" if config.principal else "no credentials"
        return MesosAuthError(
            f"The Mesos master at {url} refused {what} with HTTP 401 (authentication failed, {who}). "
            "Check the principal and secret of the Mesos connection. Master said: " + (body or "(nothing)")
        )
    if "operator" in what:
        needed = "may use the operator API (ACLs view_frameworks, view_tasks, view_agents)"
    else:
        needed = f"may register frameworks in role {config.role!r}"
    return MesosAuthError(
        f"The Mesos master at {url} refused {what} with HTTP 403 (not authorized). Check that principal "
        f"{config.principal!r} {needed}. Master said: " + (body or "(nothing)")
    )


async def post_json(
    http: httpx.AsyncClient,
    base: str,
    path: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> tuple[httpx.Response, str]:
    """POST ``body`` as JSON to ``base + path``, following redirects to the leading master.

    Returns
    -------
    (httpx.Response, str)
        The final response (body read) and the base URL that answered it.
    """
    kwargs: dict[str, Any] = {"json": dict(body), "headers": dict(headers or {})}
    if timeout is not None:
        kwargs["timeout"] = timeout
    for _ in range(MAX_REDIRECTS + 1):
        response = await http.post(base + path, **kwargs)
        location = response.headers.get("location")
        if response.status_code in _REDIRECTS and location:
            new_base = resolve_location(base, location)
            logger.debug("Master %s redirected to %s", base, new_base)
            base = new_base
            continue
        return response, base
    raise MesosProtocolError(
        f"The Mesos masters redirected more than {MAX_REDIRECTS} times (last: {base}); "
        "check that a leader is elected."
    )

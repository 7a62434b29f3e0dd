"""Rate limits per client address, with Flask-Limiter and the ``limits`` library under it.

Two kinds, both settings (``mapservice/settings.py``):

- ``RATE_LIMIT`` (empty by default): every request to the pages and the API of one client
  address together (Flask-Limiter's *application limits*); static files do not count. Off by
  default because the reverse proxy's ``limit_req`` is the first line (docs/deployment.md) and
  because many people can share one address — a shelter's, a school's or a library's network —
  who must not lock each other out of the map.
- ``GEOCODER_RATE_LIMIT`` (``20/minute;200/day``): the requests to the *online* geocoder that
  one client address causes (:func:`admit_online_lookup`, called by ``geocode.find_place`` just
  before a request leaves the server; counted with ``limits`` directly, so that an app without
  ``RATE_LIMIT`` does not run Flask-Limiter's hooks on every request). Answers of the offline
  gazetteer and cached answers do not count. Without it one client could use up the
  deployment's whole pace (one request a second for the public Nominatim server) and everybody
  else's address searches would be answered "busy".

The client address is ``request.remote_addr``: behind a reverse proxy only with
``PROXY_COUNT`` set (otherwise every client is the proxy and shares one limit). The counts live
in ``RATE_LIMIT_STORAGE``: ``memory://`` per worker process, ``redis://…`` shared. A breached
limit is a 429 with ``Retry-After`` (problem+json for the API, the page in the visitor's language
for the map). When the storage fails (Redis down), requests are let through and it is logged:
the map must not go down with its rate limiter; a Redis that does not answer holds a request
at most half a second per check (Flask-Limiter then counts in memory until it is back).
"""
from __future__ import annotations

import ipaddress
import logging
import math
import time
from typing import Any, Callable

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from limits import parse_many
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from .errors import RateLimited
from .settings import PREFIX, SettingError

log = logging.getLogger(__name__)
SCOPE_GEOCODER = "geocoder"


def init_app(app: Flask) -> None:
    uri = app.config["RATE_LIMIT_STORAGE"]
    try:
        # the geocoder's limits count with the library Flask-Limiter is built on, on their own
        # (its request hooks cost ~45 µs a request even without a limit)
        ext = app.extensions["mapservice"]
        ext["geocoder_limiter"] = SlidingWindowCounterRateLimiter(
            storage_from_string(uri, **_storage_options(uri)))
        ext["geocoder_limits"] = parse_many(app.config["GEOCODER_RATE_LIMIT"]) \
            if app.config["GEOCODER_RATE_LIMIT"] else []
        general = app.config["RATE_LIMIT"]
        if not general:
            return
        limiter = Limiter(client_key, app=app, storage_uri=uri,
                          storage_options=_storage_options(uri),
                          in_memory_fallback_enabled=True,
                          strategy="sliding-window-counter", key_prefix="mapservice",
                          application_limits=[general],
                          # no X-RateLimit-* on every answer: they would differ per client
                          # on responses that shared caches keep
                          headers_enabled=False, swallow_errors=True, on_breach=_breached)
    except ConfigurationError as exc:
        raise SettingError(f"{PREFIX}RATE_LIMIT_STORAGE: {exc}") from None
    # static files are not counted, nor CORS preflights (browsers cache them for a day; a
    # 429 to one would read as a CORS failure)
    limiter.request_filter(lambda: request.endpoint == "static" or request.method == "OPTIONS")
    ext["limiter"] = limiter


def _storage_options(uri: str) -> dict[str, Any]:
    """A shared storage that hangs must not hold every request for the client's default
    timeout (5 s): Redis gets half a second."""
    if uri.startswith(("redis://", "rediss://", "redis+")):
        return {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    return {}


def _breached(limit: RequestLimit) -> None:
    """Flask-Limiter's callback on a breached limit: remember when to ask again (the 429's
    ``Retry-After``, written by the error handler in http.py)."""
    g.retry_after = max(1, math.ceil(limit.reset_at - time.time()))


def client_key() -> str:
    """The client address a limit counts: an IPv6 address by its /64 (one subscriber's
    network, inside which an address can be changed at will), an IPv4 address as it is."""
    address = get_remote_address() or ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def admit_online_lookup() -> Callable[[], None]:
    """Check the client's ``GEOCODER_RATE_LIMIT`` before a request to the online geocoder:
    :class:`RateLimited` when one of its limits is used up; else a function that counts the
    request, called once it has its turn (a request answered "busy" counts nothing)."""
    ext = current_app.extensions["mapservice"]
    limiter = ext["geocoder_limiter"]
    items = ext["geocoder_limits"]
    client = client_key()
    try:
        spent = next((item for item in items
                      if not limiter.test(item, SCOPE_GEOCODER, client)), None)
        reset_at = spent and limiter.get_window_stats(spent, SCOPE_GEOCODER, client).reset_time
    except Exception:  # the storage (Redis) failed: let the request through
        log.exception("rate limit storage failed; the geocoder request is let through")
        return lambda: None
    if spent is not None:
        wait = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(f"too many address lookups from this address ({spent}); ask again "
                          f"in {wait} s, or search by postcode or district, which needs none",
                          retry_after=wait)

    def count() -> None:
        try:
            for item in items:
                limiter.hit(item, SCOPE_GEOCODER, client)
        except Exception:
            log.exception("rate limit storage failed; the geocoder request was not counted")

    return count

"""Typed errors that carry their HTTP status; one handler turns them into problem+json."""
from __future__ import annotations

from typing import Any


class MapserviceError(Exception):
    """Base of every error mapservice reports to a user."""

    status = 500
    title = "Internal error"
    #: Seconds after which asking again may succeed (the ``Retry-After`` header), if known.
    retry_after: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def problem(self) -> dict[str, Any]:
        """RFC 9457 problem details."""
        return {"type": "about:blank", "title": self.title, "status": self.status,
                "detail": self.detail}


class InvalidParameter(MapserviceError):
    """A request parameter is malformed, out of range or unknown."""

    status = 400
    title = "Invalid parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "parameter": self.parameter}


class NotFound(MapserviceError):
    status = 404
    title = "Not found"


class GeocoderUnavailable(MapserviceError):
    """The online geocoder gave no usable answer: unreachable, too slow, an error status or a
    reply that is not Nominatim's JSON."""

    status = 503
    title = "Geocoder unavailable"


class GeocoderBusy(GeocoderUnavailable):
    """The online geocoder's pace (one request per ``GEOCODER_MIN_DELAY_S`` for the whole
    deployment) has no free turn soon enough for a web request."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TooCommon(MapserviceError):
    """A text to erase is in more listings than allowed: too common to be one person's."""

    status = 400
    title = "Too common"

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the text is in {count} listings, more than {limit}")
        self.count, self.limit = count, limit


class RateLimited(MapserviceError):
    """A client used up one of its rate limits (``GEOCODER_RATE_LIMIT``)."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

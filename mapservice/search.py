"""SearchQuery: the one parsed, validated description of "what to find".

The API, the map, the list and the exports all build a :class:`SearchQuery` with
:func:`parse_search` and hand it to ``Store.search``. Parsing is strict: a malformed value or a
parameter we do not understand is an :class:`~mapservice.errors.InvalidParameter`, never ignored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from .errors import InvalidParameter
from .models import COSTS, WHEELCHAIR

SORTS = ("distance", "name", "verified")
MAX_RADIUS_M = 100_000.0


class _Args(Protocol):
    def getlist(self, key: str) -> list[str]: ...

    def __iter__(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class SearchQuery:
    near: tuple[float, float] | None = None  # (lat, lon)
    radius: float | None = None  # metres, only with near
    bbox: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat
    categories: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    cost: tuple[str, ...] = ()
    wheelchair: tuple[str, ...] = ()
    sort: str | None = None  # None: distance with near, else a stable internal order
    limit: int = 50
    offset: int = 0
    statuses: tuple[str, ...] = field(default=("published",))

    @property
    def effective_sort(self) -> str | None:
        if self.sort is None and self.near is not None:
            return "distance"
        return self.sort


def _one(args: _Args, name: str) -> str | None:
    values = [v for v in args.getlist(name)]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(name, "given more than once")
    value = values[0].strip()
    if not value:
        raise InvalidParameter(name, "is empty")
    return value


def _floats(name: str, raw: str, count: int) -> list[float]:
    parts = raw.split(",")
    if len(parts) != count:
        raise InvalidParameter(name, f"expected {count} comma-separated numbers, got {len(parts)}")
    out = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise InvalidParameter(name, f"{part.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise InvalidParameter(name, f"{part.strip()!r} is not a finite number")
        out.append(value)
    return out


def _codes(args: _Args, name: str, allowed: Iterable[str]) -> tuple[str, ...]:
    allowed = set(allowed)
    codes: list[str] = []
    for raw in args.getlist(name):
        for code in raw.split(","):
            code = code.strip()
            if not code:
                raise InvalidParameter(name, "contains an empty value")
            if code not in allowed:
                raise InvalidParameter(name, f"unknown value {code!r}; allowed: "
                                             + ", ".join(sorted(allowed)))
            if code not in codes:
                codes.append(code)
    return tuple(codes)


def _int(args: _Args, name: str, default: int, low: int, high: int) -> int:
    raw = _one(args, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(name, f"{raw!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidParameter(name, f"must be between {low} and {high}, got {value}")
    return value


def parse_near(raw: str, name: str = "near") -> tuple[float, float]:
    lat, lon = _floats(name, raw, 2)
    if not -90 <= lat <= 90:
        raise InvalidParameter(name, f"latitude {lat} is outside -90..90 (format: lat,lon)")
    if not -180 <= lon <= 180:
        raise InvalidParameter(name, f"longitude {lon} is outside -180..180 (format: lat,lon)")
    return lat, lon


def parse_bbox(raw: str, name: str = "bbox") -> tuple[float, float, float, float]:
    minlon, minlat, maxlon, maxlat = _floats(name, raw, 4)
    for lon in (minlon, maxlon):
        if not -180 <= lon <= 180:
            raise InvalidParameter(name, f"longitude {lon} is outside -180..180 "
                                         "(format: minlon,minlat,maxlon,maxlat)")
    for lat in (minlat, maxlat):
        if not -90 <= lat <= 90:
            raise InvalidParameter(name, f"latitude {lat} is outside -90..90 "
                                         "(format: minlon,minlat,maxlon,maxlat)")
    if minlon > maxlon:
        raise InvalidParameter(name, f"minlon {minlon} is greater than maxlon {maxlon}")
    if minlat > maxlat:
        raise InvalidParameter(name, f"minlat {minlat} is greater than maxlat {maxlat}")
    return minlon, minlat, maxlon, maxlat


def parse_search(args: _Args, *, taxonomy, default_limit: int = 50, max_limit: int = 1000,
                 extra: Iterable[str] = ()) -> SearchQuery:
    """Build a :class:`SearchQuery` from request arguments (a ``MultiDict``-like object).

    ``extra`` names parameters the caller handles itself (output format, language); any other
    unknown parameter is an error so that no filter is ever silently ignored.
    """
    known = {"near", "radius", "bbox", "category", "audience", "language", "cost", "wheelchair",
             "sort", "limit", "offset", *extra}
    for name in args:
        if name not in known:
            raise InvalidParameter(name, "unknown parameter; known: " + ", ".join(sorted(known)))

    near_raw = _one(args, "near")
    near = parse_near(near_raw) if near_raw else None
    radius = None
    radius_raw = _one(args, "radius")
    if radius_raw is not None:
        if near is None:
            raise InvalidParameter("radius", "needs near=lat,lon")
        (radius,) = _floats("radius", radius_raw, 1)
        if not 0 < radius <= MAX_RADIUS_M:
            raise InvalidParameter("radius", f"must be > 0 and <= {MAX_RADIUS_M:.0f} metres")
    bbox_raw = _one(args, "bbox")
    bbox = parse_bbox(bbox_raw) if bbox_raw else None

    sort = _one(args, "sort")
    if sort is not None and sort not in SORTS:
        raise InvalidParameter("sort", f"unknown value {sort!r}; allowed: {', '.join(SORTS)}")
    if sort == "distance" and near is None:
        raise InvalidParameter("sort", "sort=distance needs near=lat,lon")

    return SearchQuery(
        near=near, radius=radius, bbox=bbox,
        categories=_codes(args, "category", taxonomy.categories),
        audiences=_codes(args, "audience", taxonomy.audiences),
        languages=_codes(args, "language", taxonomy.languages),
        cost=_codes(args, "cost", COSTS),
        wheelchair=_codes(args, "wheelchair", WHEELCHAIR),
        sort=sort,
        limit=_int(args, "limit", default_limit, 1, max_limit),
        offset=_int(args, "offset", 0, 0, 1_000_000),
    )

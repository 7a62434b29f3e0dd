"""SearchQuery: the one parsed, validated description of "what to find".

The API, the map, the list and the exports all build a :class:`SearchQuery` with
:func:`parse_search` and hand it to ``Store.search``. Parsing is strict: a malformed value or a
parameter we do not understand is an :class:`~mapservice.errors.InvalidParameter`, never ignored.

Text folding (:func:`fold`), shared by full-text search and place-name lookups, makes a search
case-, accent- and German-transliteration-insensitive. Both the stored text and the query are
brought to one canonical form:

1. lower case, accents removed (``é`` -> ``e``, ``ü`` -> ``u``), ``ß`` -> ``ss``;
2. then the German transliterations ``ae`` -> ``a``, ``oe`` -> ``o``, ``ue`` -> ``u``.

So "Müller", "Mueller", "MUELLER" and "muller" all become ``muller`` and find each other, and
"Straße" meets "Strasse". The price is a few extra matches where "ue" is no umlaut ("neue" and
"neu" fold alike) — harmless for finding places. The database applies the same scheme to the
documents (migration 0002: ``mapservice_fold()`` on PostgreSQL, the FTS5 triggers on SQLite).
"""
from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from .errors import InvalidParameter
from .hours import TIMEZONE, local
from .models import COSTS, WHEELCHAIR

if TYPE_CHECKING:
    from .geocode import Gazetteer

SORTS = ("distance", "name", "verified")
MAX_RADIUS_M = 100_000.0
MAX_TEXT_LENGTH = 200
MIN_YEAR, MAX_YEAR = 1900, 9998
DIGRAPHS = (("ae", "a"), ("oe", "o"), ("ue", "u"))
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
# "+01:00" arrives as " 01:00" when a client forgets to percent-encode the "+".
_LOST_PLUS = re.compile(r"^(?P<time>.*\d[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?) "
                        r"(?P<offset>\d{2}(?::?\d{2})?)$")
_HAS_TIME = re.compile(r"\d[Tt ]\d")
#: The forms the API documents (calendar dates, hours and minutes at least); Python's
#: fromisoformat also takes week dates (2026-W10-1), basic forms (20260302T1430) and an hour
#: alone (T14), which a typing mistake turns into another moment.
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                           r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?")


def fold(text: str) -> str:
    """``text`` in the canonical search form (see the module docstring)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    for digraph, single in DIGRAPHS:
        bare = bare.replace(digraph, single)
    return unicodedata.normalize("NFC", bare)


def words(text: str) -> list[str]:
    """The words of ``text``: runs of letters, digits and combining marks. Everything else
    (spaces, punctuation, FTS operators such as ``"``, ``*``, ``:``, ``-``) separates words."""
    out: list[str] = []
    current: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if ch.isalnum() or unicodedata.category(ch).startswith("M"):
            current.append(ch)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out


class _Args(Protocol):
    def getlist(self, key: str) -> list[str]: ...

    def __iter__(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class SearchQuery:
    near: tuple[float, float] | None = None  # (lat, lon)
    radius: float | None = None  # metres, only with near
    # minlon, minlat, maxlon, maxlat; minlon > maxlon: the box spans the antimeridian (OGC)
    bbox: tuple[float, float, float, float] | None = None
    categories: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    cost: tuple[str, ...] = ()
    wheelchair: tuple[str, ...] = ()
    text: str | None = None  # full text: every word must prefix-match a word of the resource
    open_at: dt.datetime | None = None  # aware (Europe/Berlin): only resources open then
    districts: tuple[str, ...] = ()  # gazetteer names: Stadtteil or Bezirk equals one of them
    updated_since: dt.datetime | None = None  # aware (UTC): updated_at >= this
    updated_before: dt.datetime | None = None  # aware (UTC): updated_at < this (OGC datetime)
    organization: str | None = None  # an organisation's public id (HSDS organization_id)
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


def parse_numbers(name: str, raw: str, count: int) -> list[float]:
    """``count`` comma-separated numbers in ASCII decimal notation, finite; else a 400 naming
    ``name``."""
    parts = raw.split(",")
    if len(parts) != count:
        raise InvalidParameter(name, f"expected {count} comma-separated numbers, got {len(parts)}")
    out = []
    for part in parts:
        # ASCII decimal notation only: float() also takes "1_0.3", fullwidth and Arabic-Indic
        # digits and "nan", which the API document's pattern (and other clients) do not
        if not DECIMAL.fullmatch(part.strip()):
            raise InvalidParameter(name, f"{part.strip()[:40]!r} is not a number")
        value = float(part)
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


#: An integer parameter as people write one: ASCII digits, perhaps a minus. Python's int()
#: would also take "1_0", "+5", "１０" (fullwidth) and "٥" (Arabic-Indic).
INTEGER = re.compile(r"-?[0-9]{1,18}")
#: A decimal number as the API takes it: sign, digits, point, exponent, in ASCII.
DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def integer(raw: str) -> int | None:
    """``raw`` (spaces around it allowed) as an int, or None if it is not written as one."""
    text = raw.strip()
    return int(text) if INTEGER.fullmatch(text) else None


def _int(args: _Args, name: str, default: int, low: int, high: int) -> int:
    raw = _one(args, name)
    if raw is None:
        return default
    value = integer(raw)
    if value is None:
        raise InvalidParameter(name, f"{raw!r} is not an integer")
    if not low <= value <= high:
        raise InvalidParameter(name, f"must be between {low} and {high}, got {value}")
    return value


def parse_near(raw: str, name: str = "near") -> tuple[float, float]:
    lat, lon = parse_numbers(name, raw, 2)
    if not -90 <= lat <= 90:
        raise InvalidParameter(name, f"latitude {lat} is outside -90..90 (format: lat,lon)")
    if not -180 <= lon <= 180:
        raise InvalidParameter(name, f"longitude {lon} is outside -180..180 (format: lat,lon)")
    return lat, lon


def parse_bbox(raw: str, name: str = "bbox", *, antimeridian: bool = False
               ) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat``. With ``antimeridian`` (OGC API - Features) a minlon
    greater than maxlon is a box that spans the antimeridian, else an error."""
    minlon, minlat, maxlon, maxlat = parse_numbers(name, raw, 4)
    for lon in (minlon, maxlon):
        if not -180 <= lon <= 180:
            raise InvalidParameter(name, f"longitude {lon} is outside -180..180 "
                                         "(format: minlon,minlat,maxlon,maxlat)")
    for lat in (minlat, maxlat):
        if not -90 <= lat <= 90:
            raise InvalidParameter(name, f"latitude {lat} is outside -90..90 "
                                         "(format: minlon,minlat,maxlon,maxlat)")
    if minlon > maxlon and not antimeridian:
        raise InvalidParameter(name, f"minlon {minlon} is greater than maxlon {maxlon}")
    if minlat > maxlat:
        raise InvalidParameter(name, f"minlat {minlat} is greater than maxlat {maxlat}")
    return minlon, minlat, maxlon, maxlat


def parse_text(raw: str | None, name: str = "q") -> str | None:
    """The full-text query: whitespace-normalised, control characters removed (a NUL byte
    cannot reach PostgreSQL); blank means no text filter."""
    if raw is None:
        return None
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in raw)
    cleaned = " ".join(unicodedata.normalize("NFC", cleaned).split())
    if not cleaned:
        return None
    if len(cleaned) > MAX_TEXT_LENGTH:
        raise InvalidParameter(name, f"longer than {MAX_TEXT_LENGTH} characters")
    return cleaned


def _text(args: _Args, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidParameter(name, "given more than once")
    return parse_text(values[0], name) if values else None


def parse_bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidParameter(name, f"expected true or false, got {raw!r}")


def parse_datetime(raw: str, name: str, *, date_only_ok: bool = False) -> dt.datetime:
    """An ISO 8601 date-time (``2026-03-02T14:30``, ``...T14:30:00+01:00``, ``...T13:30Z``);
    with ``date_only_ok`` also a date (``2026-03-02`` = its midnight). A time without an offset
    is Europe/Berlin time (see ``hours.local`` for the hours skipped or repeated by summer
    time). Returns an aware datetime in Europe/Berlin."""
    text = raw.strip()
    lost_plus = _LOST_PLUS.match(text)
    if lost_plus:
        text = f"{lost_plus['time']}+{lost_plus['offset']}"
    example = "e.g. 2026-03-02T14:30 or 2026-03-02T14:30:00+01:00"
    if date_only_ok:
        example = "e.g. 2026-03-02, 2026-03-02T14:30 or 2026-03-02T14:30:00+01:00"
    has_time = _HAS_TIME.search(text) is not None
    if not _ISO_DATETIME.fullmatch(text):
        raise InvalidParameter(name, f"{raw!r} is not an ISO 8601 date-time; {example}")
    text = text.upper()  # RFC 3339 allows "t" and "z"; fromisoformat does not
    try:
        if has_time:
            value = dt.datetime.fromisoformat(text)
        elif date_only_ok:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
        else:
            raise InvalidParameter(name, f"{raw!r} has no time of day; {example}")
    except ValueError:
        raise InvalidParameter(name, f"{raw!r} is not an ISO 8601 date-time; {example}") from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InvalidParameter(name, f"year {value.year} is outside {MIN_YEAR}..{MAX_YEAR}")
    # ... in Hamburg time too: 1900-01-01T00:00+01:01 is still 1899 there
    try:
        hamburg = local(value)
    except OverflowError:
        hamburg = None
    if hamburg is None or not MIN_YEAR <= hamburg.year <= MAX_YEAR:
        raise InvalidParameter(name, f"{raw!r} is outside the years {MIN_YEAR}..{MAX_YEAR} in "
                                     "Hamburg time")
    return hamburg


def parse_districts(values: Iterable[str], gazetteer: Gazetteer,
                    name: str = "district") -> tuple[str, ...]:
    """Stadtteil or Bezirk names (case-, accent- and transliteration-insensitive, comma-separated)
    -> their gazetteer spelling. An unknown name is an error that suggests the closest ones."""
    found: list[str] = []
    for raw in values:
        for part in raw.split(","):
            part = part.strip()
            if not part:
                raise InvalidParameter(name, "contains an empty value")
            places = gazetteer.places_named(part)
            if not places:
                close = gazetteer.suggest(part)
                hint = (f"did you mean {', '.join(close)}?" if close
                        else "see /api/v1/districts for the names")
                raise InvalidParameter(name, f"unknown Stadtteil or Bezirk {part[:60]!r}; {hint}")
            for place in places:
                if place.name not in found:
                    found.append(place.name)
    return tuple(found)


def parse_search(args: _Args, *, taxonomy, default_limit: int = 50, max_limit: int = 1000,
                 extra: Iterable[str] = (), gazetteer: Gazetteer | None = None,
                 now: Callable[[], dt.datetime] | None = None,
                 bbox_antimeridian: bool = False) -> SearchQuery:
    """Build a :class:`SearchQuery` from request arguments (a ``MultiDict``-like object).

    ``extra`` names parameters the caller handles itself (output format, language); any other
    unknown parameter is an error so that no filter is ever silently ignored. ``gazetteer``
    validates ``district`` (default: the shipped one); ``now`` is the clock for ``open_now``.
    ``bbox_antimeridian``: a ``bbox`` whose minlon exceeds its maxlon spans the antimeridian
    (OGC API - Features) instead of being an error (``/api/v1``).
    """
    known = {"near", "radius", "bbox", "category", "audience", "language", "cost", "wheelchair",
             "q", "open_now", "open_at", "district", "updated_since",
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
        (radius,) = parse_numbers("radius", radius_raw, 1)
        if not 0 < radius <= MAX_RADIUS_M:
            raise InvalidParameter("radius", f"must be > 0 and <= {MAX_RADIUS_M:.0f} metres")
    bbox_raw = _one(args, "bbox")
    bbox = parse_bbox(bbox_raw, antimeridian=bbox_antimeridian) if bbox_raw else None

    sort = _one(args, "sort")
    if sort is not None and sort not in SORTS:
        raise InvalidParameter("sort", f"unknown value {sort!r}; allowed: {', '.join(SORTS)}")
    if sort == "distance" and near is None:
        raise InvalidParameter("sort", "sort=distance needs near=lat,lon")

    open_now_raw, open_at_raw = _one(args, "open_now"), _one(args, "open_at")
    if open_now_raw is not None and open_at_raw is not None:
        raise InvalidParameter("open_at", "give either open_now or open_at, not both")
    open_at = None
    if open_at_raw is not None:
        open_at = parse_datetime(open_at_raw, "open_at")
    elif open_now_raw is not None and parse_bool(open_now_raw, "open_now"):
        open_at = (now or _now)().astimezone(TIMEZONE)

    updated_raw = _one(args, "updated_since")
    updated_since = None
    if updated_raw is not None:
        updated_since = parse_datetime(updated_raw, "updated_since",
                                       date_only_ok=True).astimezone(dt.timezone.utc)

    districts: tuple[str, ...] = ()
    if args.getlist("district"):
        if gazetteer is None:
            from .geocode import default as default_gazetteer

            gazetteer = default_gazetteer()
        districts = parse_districts(args.getlist("district"), gazetteer)

    return SearchQuery(
        near=near, radius=radius, bbox=bbox,
        categories=_codes(args, "category", taxonomy.categories),
        audiences=_codes(args, "audience", taxonomy.audiences),
        languages=_codes(args, "language", taxonomy.languages),
        cost=_codes(args, "cost", COSTS),
        wheelchair=_codes(args, "wheelchair", WHEELCHAIR),
        text=_text(args, "q"),
        open_at=open_at,
        districts=districts,
        updated_since=updated_since,
        sort=sort,
        limit=_int(args, "limit", default_limit, 1, max_limit),
        offset=_int(args, "offset", 0, 0, 1_000_000),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


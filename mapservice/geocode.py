"""Geocoding: the offline gazetteer first, an online geocoder only when the settings ask for it.

**The gazetteer** (``data/gazetteer/*.csv``: Hamburg postcodes, Stadtteile and Bezirke) answers
"where is 22767 / Ottensen / eimsbuettel?" without any network request, and it is the list of
district names that ``district=`` accepts. Names are compared folded (``search.fold``: case,
accents and ä/ae, ö/oe, ü/ue, ß/ss do not matter; "Sankt" = "St."; spaces and punctuation are
ignored). Four Stadtteile share their name with their Bezirk (Bergedorf, Eimsbüttel, Harburg,
Wandsbek): a lookup returns both. It is read once per process (:func:`default`).

**The online geocoder** (:class:`OnlineGeocoder`, Nominatim through geopy) resolves street
addresses. It is **off by default** (setting ``GEOCODER`` empty): then nothing here ever opens a
connection. When it is on (``GEOCODER=nominatim``), ``/api/v1/geocode`` asks it for a query the
gazetteer does not find, and ``mapservice import`` for a row without coordinates that the
gazetteer cannot place. What leaves the server then is the query text (what a user typed, or an
imported row's street, postcode and city), sent to the host of ``GEOCODER_URL`` with this
deployment's ``GEOCODER_USER_AGENT``; never a user's IP address, cookies or other fields.
Answers are restricted to the service region (``REGION_BBOX`` as a bounded viewbox,
``REGION_COUNTRY`` as country code) and cached per process (LRU). Requests are paced to one per
``GEOCODER_MIN_DELAY_S`` (default 1 s) for the whole deployment on this host (:class:`Pace`:
every worker process and a ``mapservice import`` share one turn list in the instance
directory), as the public server's usage policy
(https://operations.osmfoundation.org/policies/nominatim/) demands: at most 1 request/s, an
identifying User-Agent (startup refuses the public server without one naming a contact), no
bulk geocoding of large files, no autocomplete, and the ODbL attribution of OSM data (each
result carries it). A web request waits at most :data:`WEB_WAIT_S` for its turn, else it is
answered "busy" (:class:`~mapservice.errors.GeocoderBusy`, 503 with ``Retry-After``) instead of
holding a worker thread; an import waits its turn. For more than light traffic, use a
self-hosted Nominatim. A failed request (unreachable, timeout, error status, a reply that is not
Nominatim's JSON) raises :class:`~mapservice.errors.GeocoderUnavailable` (HTTP 503).
"""
from __future__ import annotations

import csv
import difflib
import fcntl
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from . import __version__
from .errors import GeocoderBusy, GeocoderUnavailable
from .paths import DATA_DIR
from .search import fold
from .settings import check_geocoder
from .settings import region_bbox as parse_region

log = logging.getLogger(__name__)
GAZETTEER_DIR = DATA_DIR / "gazetteer"
LEVELS = ("bezirk", "stadtteil")
_POSTCODE = re.compile(r"(?<!\d)(\d{5})(?!\d)")
_MIN_PREFIX = 3
_MAX_PREFIX_RESULTS = 10


def name_key(name: str) -> str:
    """The key two place names are compared by: folded, "sankt" as "st", letters and digits
    only ("St. Georg" = "sankt georg" = "ST GEORG")."""
    folded = re.sub(r"\bsankt\b", "st", fold(name))
    return "".join(ch for ch in folded if ch.isalnum())


@dataclass(frozen=True)
class Place:
    """A Bezirk or a Stadtteil, with its centroid and bounding box (minlon, minlat, maxlon,
    maxlat)."""

    level: str
    id: str
    name: str
    bezirk: str
    lat: float
    lon: float
    bbox: tuple[float, float, float, float]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.level, "id": self.id, "name": self.name}
        if self.level == "stadtteil":
            out["bezirk"] = self.bezirk
        out.update(lat=self.lat, lon=self.lon, bbox=list(self.bbox))
        return out


@dataclass(frozen=True)
class Postcode:
    postcode: str
    lat: float
    lon: float
    stadtteil: str
    bezirk: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": "postcode", "name": self.postcode, "postcode": self.postcode,
                "lat": self.lat, "lon": self.lon, "stadtteil": self.stadtteil,
                "bezirk": self.bezirk}


class Gazetteer:
    def __init__(self, places: list[Place], postcodes: list[Postcode]) -> None:
        # Bezirk before Stadtteil: a shared name means the larger area first.
        self.places = sorted(places, key=lambda p: (LEVELS.index(p.level), p.name))
        self.postcodes = {p.postcode: p for p in postcodes}
        self._by_key: dict[str, list[Place]] = {}
        for place in self.places:
            self._by_key.setdefault(name_key(place.name), []).append(place)

    @classmethod
    def load(cls, directory: Path = GAZETTEER_DIR) -> Gazetteer:
        with (directory / "places.csv").open(encoding="utf-8", newline="") as fh:
            places = [Place(level=row["level"], id=row["id"], name=row["name"],
                            bezirk=row["bezirk"], lat=float(row["lat"]), lon=float(row["lon"]),
                            bbox=(float(row["bbox_minlon"]), float(row["bbox_minlat"]),
                                  float(row["bbox_maxlon"]), float(row["bbox_maxlat"])))
                      for row in csv.DictReader(fh)]
        unknown = {p.level for p in places} - set(LEVELS)
        if unknown:
            raise ValueError(f"{directory / 'places.csv'}: unknown level(s) {sorted(unknown)}")
        with (directory / "postcodes.csv").open(encoding="utf-8", newline="") as fh:
            postcodes = [Postcode(postcode=row["postcode"], lat=float(row["lat"]),
                                  lon=float(row["lon"]), stadtteil=row["stadtteil"],
                                  bezirk=row["bezirk"])
                         for row in csv.DictReader(fh)]
        return cls(places, postcodes)

    def places_named(self, name: str) -> list[Place]:
        """The Bezirk and/or Stadtteil called ``name`` (folded comparison)."""
        return list(self._by_key.get(name_key(name), []))

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` place names closest to ``name`` (for "did you mean ...?")."""
        close = difflib.get_close_matches(name_key(name), list(self._by_key), n=n, cutoff=0.6)
        return [self._by_key[key][0].name for key in close]

    def bezirke(self) -> list[dict[str, Any]]:
        """Every Bezirk with its Stadtteile (by name), centroids and bounding boxes."""
        out = []
        for bezirk in (p for p in self.places if p.level == "bezirk"):
            item = bezirk.as_dict()
            item["stadtteile"] = [p.as_dict() for p in self.places
                                  if p.level == "stadtteil" and p.bezirk == bezirk.name]
            out.append(item)
        return out

    def geocode(self, query: str) -> list[dict[str, Any]]:
        """Postcodes, Stadtteile and Bezirke for a free-text ``query``.

        A five-digit number is a postcode (also inside "20095 Hamburg"). Otherwise a place whose
        name equals the query (folded); failing that, places whose name starts with it (at least
        three letters). Nothing found: an empty list.
        """
        results: list[dict[str, Any]] = []
        for code in _POSTCODE.findall(query):
            if code in self.postcodes:
                results.append(self.postcodes[code].as_dict())
        if results:
            return results
        key = name_key(query)
        if not key:
            return []
        exact = self._by_key.get(key)
        if exact:
            return [p.as_dict() for p in exact]
        if len(key) < _MIN_PREFIX:
            return []
        prefixed = [p for k, group in self._by_key.items() if k.startswith(key) for p in group]
        prefixed.sort(key=lambda p: (LEVELS.index(p.level), p.name))
        return [p.as_dict() for p in prefixed[:_MAX_PREFIX_RESULTS]]


@lru_cache(maxsize=1)
def default() -> Gazetteer:
    """The shipped gazetteer, read once per process (read-only data)."""
    return Gazetteer.load()


def centroid(value: str) -> tuple[float, float] | None:
    """(lat, lon) for an exact postcode or Stadtteil/Bezirk name, offline; None if unknown.

    Used by the importers to place records without coordinates. A name shared by a Stadtteil
    and a Bezirk (Wandsbek, Eimsbüttel, Bergedorf, Harburg) gives the Stadtteil: the smaller
    area is the better guess.
    """
    gazetteer = default()
    value = value.strip()
    if value in gazetteer.postcodes:
        code = gazetteer.postcodes[value]
        return code.lat, code.lon
    places = gazetteer.places_named(value)
    if not places:
        return None
    best = min(places, key=lambda p: -LEVELS.index(p.level))
    return best.lat, best.lon


# ---- the online geocoder -----------------------------------------------------------------
_ONLINE_LIMIT = 5  # results per query
_ONLINE_CACHE = 512  # answers kept per process
#: The longest a web request waits for its turn at the online geocoder (s); an import waits
#: as long as its turn takes.
WEB_WAIT_S = 2.0
PACE_FILE = "geocoder-pace"


class Pace:
    """One turn per ``min_delay_s`` for every process and thread that shares ``path``.

    The file holds the time of the latest turn given out (``time.monotonic()``: the same clock
    for every process of a host, and one that no one sets back). A caller takes the next free
    turn under an exclusive ``flock`` of the file, writes it down and releases the lock before
    it sleeps until its turn, so that callers queue without holding the lock. On one host the
    workers of ``mapservice serve`` and a ``mapservice import`` of the same instance directory
    thus keep one pace together (a pace per process would let N workers send N requests a
    second to a server that allows one). Hosts do not share it: a deployment on several hosts
    needs its own geocoder or a pace divided among them. When the file cannot be written
    (a read-only instance directory), the pace is kept per process, and that is logged.
    """

    def __init__(self, path: Path, min_delay_s: float) -> None:
        self.path = path
        self.min_delay_s = min_delay_s
        # A turn further ahead than this is not a queue but a clock from before a reboot.
        self._stale_s = max(60.0, 30 * min_delay_s)
        self._lock = threading.Lock()  # the fallback when the file cannot be used
        self._last = -math.inf
        self._warned = False

    def take(self, max_wait_s: float | None = None) -> None:
        """Wait for the next turn. With ``max_wait_s``, a turn further away is not taken:
        :class:`GeocoderBusy` says when to ask again."""
        if self.min_delay_s <= 0:
            return
        try:
            wait = self._reserve_in_file(max_wait_s)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("the geocoder's pace file %s cannot be used (%s): the pace is kept "
                            "per process; make the instance directory writable for the "
                            "service", self.path, exc)
            with self._lock:
                self._last, wait = self._reserve(self._last, max_wait_s)
        if wait > 0:
            time.sleep(wait)

    def _reserve_in_file(self, max_wait_s: float | None) -> float:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the close
            try:
                last = float(os.pread(fd, 64, 0).decode("ascii") or "-inf")
            except ValueError:  # not written by us (or cut short): no turn is pending
                last = -math.inf
            turn, wait = self._reserve(last, max_wait_s)
            os.ftruncate(fd, 0)
            os.pwrite(fd, repr(turn).encode("ascii"), 0)
        finally:
            os.close(fd)
        return wait

    def _reserve(self, last: float, max_wait_s: float | None) -> tuple[float, float]:
        """(the next turn after ``last``, the wait for it); :class:`GeocoderBusy` when that is
        more than ``max_wait_s`` away."""
        now = time.monotonic()
        if math.isnan(last) or last > now + self._stale_s:
            last = -math.inf
        turn = max(now, last + self.min_delay_s)
        wait = turn - now
        if max_wait_s is not None and wait > max_wait_s:
            raise GeocoderBusy(
                f"the online geocoder is busy: it is asked at most once every "
                f"{self.min_delay_s:g} s, and other requests have the next turns; ask "
                f"again in {math.ceil(wait)} s", retry_after=math.ceil(wait))
        return turn, wait


class OnlineGeocoder:
    """Nominatim's ``/search`` through geopy, restricted to the service region, paced by
    ``pace`` (shared with the deployment's other processes) and cached (LRU) per process.

    ``geocode`` gives results shaped like the gazetteer's: ``{"type": "address", "name":
    display name, "lat", "lon", "attribution": the server's licence note}``. ``url`` is the
    server's base URL (``/search`` is appended; a path prefix is kept).
    """

    def __init__(self, *, url: str, user_agent: str, timeout_s: float, pace: Pace,
                 region_bbox: tuple[float, float, float, float], country: str,
                 cache_size: int = _ONLINE_CACHE) -> None:
        # Imported here: only a deployment that switches the geocoder on loads geopy.
        from geopy.adapters import URLLibAdapter
        from geopy.geocoders import Nominatim

        parts = urlsplit(url)
        self.host = parts.netloc
        self.timeout_s = timeout_s
        self.region = region_bbox
        self.country = country.strip().lower()
        # urllib, not requests: the same client whether or not requests happens to be installed.
        nominatim = Nominatim(user_agent=user_agent, timeout=timeout_s,
                              domain=parts.netloc + parts.path.rstrip("/"), scheme=parts.scheme,
                              adapter_factory=URLLibAdapter)
        # No retries: a web request must not wait for them, and an import reports the row.
        self._search = nominatim.geocode
        self.pace = pace
        # Failures raise and so are never cached: the next call asks again. (A web worker
        # always passes the same ``max_wait_s``, an import another: one entry per text.)
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    def geocode(self, query: str, *, max_wait_s: float | None = None,
                before_request: Callable[[], Callable[[], None]] | None = None
                ) -> list[dict[str, Any]]:
        """Addresses in the service region matching ``query``, best first; [] when none.

        A query not in the cache waits for its turn (:class:`Pace`), at most ``max_wait_s``
        (None: as long as it takes). ``before_request`` (a client's rate limit) is called
        before that and may refuse the request by raising; the function it returns is called
        once the request has its turn (to count it). Raises :class:`GeocoderUnavailable` when the
        server gives no usable answer, :class:`GeocoderBusy` when no turn is free in time.
        """
        text = " ".join(query.split())
        if len(name_key(text)) < _MIN_PREFIX:  # too little to look up; nothing is sent
            return []
        return [dict(item) for item in self._cached(text, max_wait_s, before_request)]

    def _lookup(self, text: str, max_wait_s: float | None,
                before_request: Callable[[], Callable[[], None]] | None
                ) -> tuple[dict[str, Any], ...]:
        from geopy import exc as geopy_errors

        # the client's limit is checked first and counted only once the request has its turn
        # (a "busy" answer sends nothing and must not use the client's allowance up)
        count = before_request() if before_request is not None else None
        self.pace.take(max_wait_s)
        if count is not None:
            count()
        minlon, minlat, maxlon, maxlat = self.region
        try:
            found = self._search(text, exactly_one=False, limit=_ONLINE_LIMIT,
                                 viewbox=[(minlat, minlon), (maxlat, maxlon)], bounded=True,
                                 country_codes=self.country or None)
        except (geopy_errors.GeopyError, ValueError, TypeError, KeyError,
                AttributeError) as exc:
            raise GeocoderUnavailable(f"the online geocoder {self._cause(exc)}") from None
        results = []
        for location in found or ():
            lat, lon = location.latitude, location.longitude
            # bounded=1 already restricts the answer; a server that ignores it must not put
            # a point outside the region on the map.
            if lat is None or lon is None or not (minlon <= lon <= maxlon
                                                  and minlat <= lat <= maxlat):
                continue
            raw = location.raw if isinstance(location.raw, dict) else {}
            results.append({"type": "address", "name": location.address or text,
                            "lat": lat, "lon": lon,
                            "attribution": str(raw["licence"]) if raw.get("licence") else None})
        return tuple(results)

    def _cause(self, exc: Exception) -> str:
        """What went wrong, in words. geopy's classes alone mislead (its HTTP 503 is a
        "timeout", a refused connection a "service error"): look at what it wraps."""
        from geopy import exc as geopy_errors
        from geopy.adapters import AdapterHTTPError

        wrapped = exc.__cause__ or exc.__context__
        if isinstance(wrapped, AdapterHTTPError):
            return f"answered with an error: HTTP {wrapped.status_code}"
        if isinstance(exc, geopy_errors.GeocoderTimedOut):
            return f"did not answer within {self.timeout_s:g} s"
        if isinstance(exc, geopy_errors.GeocoderUnavailable) or isinstance(wrapped, OSError):
            reason = getattr(wrapped, "reason", None) or wrapped or exc
            return f"could not be reached: {reason}"
        if isinstance(exc, geopy_errors.GeopyError) \
                and not isinstance(exc, geopy_errors.GeocoderParseError):
            return f"failed: {exc}"
        return "answered with something that is not Nominatim's search JSON"


def online(config: Mapping[str, Any]) -> OnlineGeocoder | None:
    """The online geocoder the settings in ``config`` ask for; None when it is off (the
    default). One instance per configuration and process: its cache is shared by the threads,
    its pace (a file in ``INSTANCE_DIR``) by every process of the deployment on this host."""
    if not str(config.get("GEOCODER") or "").strip():
        return None
    with _ONLINE_LOCK:  # threads asking at once get the one instance too (one cache)
        return _online(*(str(config[name]) for name in (
            "GEOCODER", "GEOCODER_URL", "GEOCODER_USER_AGENT", "GEOCODER_TIMEOUT_S",
            "GEOCODER_MIN_DELAY_S", "REGION_BBOX", "REGION_COUNTRY")),
            str(Path(config["INSTANCE_DIR"]).resolve()))


_ONLINE_LOCK = threading.Lock()


def find_place(text: str, config: Mapping[str, Any],
               before_online: Callable[[], Callable[[], None]] | None = None
               ) -> list[dict[str, Any]]:
    """Places for ``text``: the offline gazetteer's postcodes, Stadtteile and Bezirke; only
    when it finds none, the online geocoder if ``config`` switches one on, waiting at most
    :data:`WEB_WAIT_S` for its turn (it may raise :class:`GeocoderUnavailable` or
    :class:`GeocoderBusy`) and calling ``before_online`` before it sends a request (a client's
    rate limit). What /api/v1/geocode answers and the map's "where" reads."""
    found = default().geocode(text)
    if not found:
        service = online(config)
        if service is not None:
            found = service.geocode(text, max_wait_s=WEB_WAIT_S, before_request=before_online)
    return found


@lru_cache(maxsize=8)
def _online(name: str, url: str, user_agent: str, timeout_s: str, min_delay_s: str,
            region_bbox: str, country: str, instance_dir: str) -> OnlineGeocoder:
    check_geocoder({"GEOCODER": name, "GEOCODER_URL": url, "GEOCODER_USER_AGENT": user_agent,
                    "GEOCODER_TIMEOUT_S": timeout_s, "GEOCODER_MIN_DELAY_S": min_delay_s})
    return OnlineGeocoder(url=url.strip(), user_agent=user_agent.strip()
                          or f"mapservice/{__version__}", timeout_s=float(timeout_s),
                          pace=Pace(Path(instance_dir) / PACE_FILE, float(min_delay_s)),
                          region_bbox=parse_region({"REGION_BBOX": region_bbox}),
                          country=country)


__all__ = ["Gazetteer", "OnlineGeocoder", "Pace", "Place", "Postcode", "centroid", "default",
           "name_key", "online"]

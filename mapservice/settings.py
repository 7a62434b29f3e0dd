"""Every setting of mapservice, as data: a name, a default, a type and a help text.

Each setting is read from the environment variable ``MAPSERVICE_<NAME>``; ``create_app(config)``
overrides them for tests. The README's configuration table lists all of them (a test checks it).
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

PREFIX = "MAPSERVICE_"
GEOCODERS = ("nominatim",)
PUBLIC_NOMINATIM = "https://nominatim.openstreetmap.org"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def rate_limits(value: str) -> str:
    """``value`` if it is a list of rate limits in Flask-Limiter's notation (``20/minute;200/day``;
    empty: none), else a ValueError naming what is wrong."""
    from limits import parse_many

    value = value.strip()
    if value:
        try:
            items = parse_many(value)
        except ValueError:
            items = []
        if not items or any(item.amount < 1 or item.get_expiry() < 1 for item in items):
            raise ValueError(f"expected rate limits like '20/minute;200/day', got {value!r}")
    return value


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def language_tag(value: str) -> str:
    """``value`` if it is a BCP 47 language tag like ``de`` or ``pt-BR`` (or empty)."""
    value = value.strip()
    if value and not _LANGUAGE_TAG.fullmatch(value):
        raise ValueError(f"expected a language tag like de or pt-BR, got {value!r}")
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    cast: Callable[[str], Any] = str

    @property
    def env(self) -> str:
        return PREFIX + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "", "SQLAlchemy URL of the database. Empty: a SpatiaLite file "
            "`instance/mapservice.sqlite` under the working directory. PostGIS: "
            "`postgresql+psycopg://user@host/db`."),
    Setting("SECRET_KEY", "", "Flask's key for signed data (session cookies). The app sets "
            "none today (its one cookie, `lang`, holds the chosen language unsigned); keep it "
            "secret and the same for every worker for what will use it. Empty: a random key is "
            "created once in `instance/secret_key`."),
    Setting("INSTANCE_DIR", "instance", "Directory for the embedded database and the generated "
            "secret key."),
    Setting("TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "URL template of the "
            "map tile server: the only third-party host the pages contact."),
    Setting("TILE_ATTRIBUTION", '&copy; <a href="https://www.openstreetmap.org/copyright">'
            "OpenStreetMap</a> contributors", "Attribution shown for the map tiles (HTML)."),
    Setting("TILE_MAX_ZOOM", 19, "Highest zoom level the tile server provides.", int),
    Setting("MAP_CENTER_LAT", 53.5511, "Latitude of the initial map centre.", float),
    Setting("MAP_CENTER_LON", 9.9937, "Longitude of the initial map centre.", float),
    Setting("MAP_ZOOM", 11, "Initial zoom level of the map.", int),
    Setting("REGION_BBOX", "8.40,53.39,10.33,53.97", "Bounding box `minlon,minlat,maxlon,maxlat` "
            "of the service region; importers warn about points outside it (default: Hamburg, "
            "Neuwerk included)."),
    Setting("REGION_CITY", "Hamburg", "City of every address the service lists (HSDS export and "
            "API address fields; an imported address in another city keeps its city)."),
    Setting("REGION_STATE", "Hamburg", "State or province of the addresses (HSDS "
            "`state_province`)."),
    Setting("REGION_COUNTRY", "DE", "ISO 3166-1 country code of the addresses (HSDS `country`); "
            "imported foreign postcodes are not used for geocoding."),
    Setting("DEFAULT_LANGUAGE", "de", "UI language when the browser asks for none we offer."),
    Setting("DATA_LANGUAGE", "de", "Language the sources write the listings' names and "
            "addresses in (a BCP 47 tag): pages in another language mark them with it, so "
            "that screen readers read them with the right voice. Empty: not marked.",
            language_tag),
    Setting("PAGE_SIZE", 50, "Default number of results per API page.", int),
    Setting("MAX_PAGE_SIZE", 1000, "Hard maximum of results per API page; the map shows an area "
            "with more places as counts per cell (`/api/v1/clusters`).", int),
    Setting("STATEMENT_TIMEOUT_MS", 5000, "Longest a single database query may run (ms); "
            "0: no limit. PostgreSQL: `statement_timeout`; SQLite: interrupted by a progress "
            "handler.", int),
    Setting("SPATIALITE_LIBRARY", "mod_spatialite", "Name or path of the SpatiaLite extension "
            "loaded into SQLite."),
    Setting("SQLITE_MMAP_MB", 1024, "SQLite: read up to this much of the database file through "
            "memory mapping instead of read calls (`PRAGMA mmap_size`; faster searches on a large "
            "file); 0: off (e.g. on a network file system).", int),
    Setting("WORKERS", 2, "Worker processes of `mapservice serve` (granian); about one per "
            "core.", int),
    Setting("THREADS", 4, "Threads per worker process of `mapservice serve`: requests a worker "
            "runs at once (each holds a database connection while it queries).", int),
    Setting("ACCESS_LOG", False, "`mapservice serve` logs every request (client address, "
            "request line, status) to stdout. Off by default: the reverse proxy in front logs "
            "what an operator needs, and the service keeps no record of who looked for what.",
            _bool),
    Setting("PROXY_COUNT", 0, "Number of reverse proxies in front of the app whose "
            "`X-Forwarded-For`, `-Proto` and `-Host` headers are trusted "
            "(werkzeug's ProxyFix): 1 behind one nginx, so that links the app writes (API "
            "`next`/`self`, OGC and HSDS links) carry the public https URL. 0: none trusted.",
            int),
    Setting("GEOCODER", "", "Online geocoder for street addresses, asked only when the offline "
            "gazetteer finds nothing (`/api/v1/geocode`, CSV rows without coordinates). Empty: "
            "off, no request leaves the server. `nominatim`: Nominatim (via geopy) at "
            "`MAPSERVICE_GEOCODER_URL`; the query text (a user's search, an imported row's "
            "street, postcode and city) is then sent to that host."),
    Setting("GEOCODER_URL", PUBLIC_NOMINATIM, "Base URL of the Nominatim server (`/search` is "
            "appended). The public server's usage policy: at most 1 request/s, an identifying "
            "User-Agent, no bulk geocoding of large files, no autocomplete, ODbL attribution. "
            "For more, run your own Nominatim and name it here."),
    Setting("GEOCODER_USER_AGENT", "", "User-Agent of the geocoder's requests. Empty: "
            "`mapservice/VERSION`, allowed for a self-hosted server only: with the public "
            "server the app refuses to start unless it names this deployment and a contact "
            "(a URL or e-mail address), like `mapservice (+https://map.example.org; "
            "admin@example.org)` with your own site and address in place of example.org."),
    Setting("GEOCODER_TIMEOUT_S", 3.0, "Longest wait for one answer of the online geocoder "
            "(s); then the API answers 503 and an import reports the row.", float),
    Setting("GEOCODER_MIN_DELAY_S", 1.0, "Least time between two requests to the online "
            "geocoder (s), for all worker processes and imports of this instance directory "
            "together (not across hosts). At least 1 for the public server. A web request "
            "waits at most 2 s for its turn, else it gets 503 with `Retry-After`.", float),
    Setting("GEOCODER_RATE_LIMIT", "20/minute;200/day", "Requests to the online geocoder one "
            "client address may cause (Flask-Limiter notation, `;` between limits); answers "
            "from the cache or the offline gazetteer do not count. Beyond it: 429 with "
            "`Retry-After`. Empty: no limit per client (the pace above still holds).",
            rate_limits),
    Setting("RATE_LIMIT", "", "Requests one client address may make to the pages and the API "
            "together, e.g. `600/minute` (static files do not count). Empty: none in the app "
            "(the reverse proxy's limits, docs/deployment.md). Many people can share one "
            "address (a shelter's or a library's network): keep it generous.",
            rate_limits),
    Setting("RATE_LIMIT_STORAGE", "memory://", "Where the rate limits count (a storage URI of "
            "the `limits` library). `memory://`: in each worker process (a client's limit is "
            "then up to WORKERS times as high); `redis://host:6379` shares the counts between "
            "workers and hosts (needs the `redis` package)."),
)

BY_NAME = {s.name: s for s in SETTINGS}


class SettingError(ValueError):
    """A MAPSERVICE_* variable holds a value of the wrong type."""


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read every setting from ``environ`` (default: ``os.environ``), falling back to defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.cast(raw)
        except ValueError as exc:
            kind = {int: "a whole number", float: "a number"}.get(setting.cast)
            raise SettingError(f"{setting.env}: " + (f"expected {kind}, got {raw!r}" if kind
                                                     else str(exc))) from None
    return values


def resolve(values: dict[str, Any]) -> dict[str, Any]:
    """Check the settings that depend on each other and fill those whose default depends on
    others (database file, secret key)."""
    check_geocoder(values)
    for key in ("RATE_LIMIT", "GEOCODER_RATE_LIMIT"):
        try:
            values[key] = rate_limits(str(values.get(key, BY_NAME[key].default)))
        except ValueError as exc:
            raise SettingError(f"{PREFIX}{key}: {exc}") from None
    try:
        values["DATA_LANGUAGE"] = language_tag(str(values.get(
            "DATA_LANGUAGE", BY_NAME["DATA_LANGUAGE"].default) or ""))
    except ValueError as exc:
        raise SettingError(f"{PREFIX}DATA_LANGUAGE: {exc}") from None
    storage = str(values.get("RATE_LIMIT_STORAGE", BY_NAME["RATE_LIMIT_STORAGE"].default))
    if "://" not in storage:
        raise SettingError(f"{PREFIX}RATE_LIMIT_STORAGE: expected a storage URI like "
                           f"memory:// or redis://host:6379, got {storage!r}")
    for key, least in (("WORKERS", 1), ("THREADS", 1), ("PROXY_COUNT", 0)):
        if int(values.get(key, BY_NAME[key].default)) < least:
            raise SettingError(f"{PREFIX}{key}: must be at least {least}, got {values[key]!r}")
    instance = Path(values["INSTANCE_DIR"]).resolve()
    if not values["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        values["DATABASE_URL"] = f"sqlite:///{instance / 'mapservice.sqlite'}"
    if not values["SECRET_KEY"]:
        values["SECRET_KEY"] = _instance_secret(instance)
    return values


# A contact the operators of the public server can reach: a URL or an e-mail address, and
# not one of the reserved example domains.
_CONTACT = re.compile(r"https?://[^\s/;)]+\.[^\s/;)]+|[^\s@;(<]+@[^\s@;)>]+\.[a-z]{2,}", re.I)
_PLACEHOLDER = re.compile(r"\bexample\.(?:org|com|net)\b", re.I)


def region_bbox(values: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """``REGION_BBOX`` of the settings ``values`` as (minlon, minlat, maxlon, maxlat)."""
    raw = str(values["REGION_BBOX"])
    try:
        minlon, minlat, maxlon, maxlat = (float(v) for v in raw.split(","))
    except ValueError:
        raise SettingError(f"MAPSERVICE_REGION_BBOX: expected minlon,minlat,maxlon,maxlat, "
                           f"got {raw!r}") from None
    return minlon, minlat, maxlon, maxlat


def check_geocoder(values: Mapping[str, Any]) -> None:
    """Refuse geocoder settings that cannot work, or that would break the public Nominatim
    server's usage policy (an identifying User-Agent, at most 1 request/s)."""
    name = str(values.get("GEOCODER") or "").strip().lower()
    if not name:
        return
    if name not in GEOCODERS:
        raise SettingError(f"{PREFIX}GEOCODER: unknown geocoder {name!r}; allowed: "
                           f"{', '.join(GEOCODERS)}, or empty (off)")
    url = str(values.get("GEOCODER_URL") or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise SettingError(f"{PREFIX}GEOCODER_URL: expected the server's base URL, "
                           f"http(s)://host[/path], got {url!r}")
    numbers = {}
    for key in ("GEOCODER_TIMEOUT_S", "GEOCODER_MIN_DELAY_S"):
        try:
            numbers[key] = float(values.get(key, BY_NAME[key].default))
        except (TypeError, ValueError):
            raise SettingError(f"{PREFIX}{key}: expected a number of seconds, got "
                               f"{values.get(key)!r}") from None
    if not 0 < numbers["GEOCODER_TIMEOUT_S"] <= 60:
        raise SettingError(f"{PREFIX}GEOCODER_TIMEOUT_S: must be more than 0 and at most 60")
    if not 0 <= numbers["GEOCODER_MIN_DELAY_S"] <= 3600:
        raise SettingError(f"{PREFIX}GEOCODER_MIN_DELAY_S: must be from 0 to 3600")
    if parts.hostname == urlsplit(PUBLIC_NOMINATIM).hostname:
        agent = str(values.get("GEOCODER_USER_AGENT") or "").strip()
        if not _CONTACT.search(agent) or _PLACEHOLDER.search(agent):
            given = f"got {agent!r}" if agent else "none is set"
            raise SettingError(
                f"{PREFIX}GEOCODER_USER_AGENT: the public Nominatim server's usage policy "
                "requires a User-Agent that identifies this deployment, with a contact (a URL "
                "or e-mail address), like 'mapservice (+https://map.example.org; "
                "admin@example.org)' with your own site and address in place of example.org; "
                f"{given}. Or set {PREFIX}GEOCODER_URL to your own Nominatim, or leave "
                f"{PREFIX}GEOCODER empty (off).")
        if numbers["GEOCODER_MIN_DELAY_S"] < 1:
            raise SettingError(f"{PREFIX}GEOCODER_MIN_DELAY_S: the public Nominatim server "
                               "allows at most 1 request/s: must be at least 1")


def _instance_secret(instance: Path) -> str:
    # One key on disk, shared by every worker process on this machine: sessions stay valid
    # whichever worker answers.
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        tmp = instance / f".secret_key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: the first worker wins, the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()

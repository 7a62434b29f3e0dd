"""The query the whole app uses: get, search, upsert, history.

Dialect differences are small hooks overridden in ``postgis.py`` and ``spatialite.py`` (compare
pygeoapi's ``GenericSQLProvider``): how to match a list of codes, how to measure metres, how to
find the radius that holds the k nearest, how to use the spatial index for a window, and how to
match full text (PostgreSQL: a trigger-maintained ``tsvector`` with a GIN index; SQLite: an FTS5
table kept in sync by triggers; both over the folded text, see ``search.fold``).

Nearest-k is exact in metres on both backends: a dialect hook finds a radius that surely holds
the k nearest matches (PostGIS: KNN ``<->`` on the GiST index; SpatiaLite: a widening R*Tree
window), then one shared query reads that window through the spatial index and orders by the
ellipsoidal distance.

``open_now``/``open_at`` cannot be evaluated in SQL (OSM opening hours): the store reads the
candidates in the query's order and keeps the open ones in Python (:mod:`mapservice.hours`).
"""
from __future__ import annotations

import datetime as dt
import functools
import math
import re
import threading
import time
import unicodedata
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import orjson
from rapidfuzz import fuzz
from rapidfuzz.utils import default_process
from geoalchemy2 import Geometry
from sqlalchemy import (ColumnElement, Select, and_, case, cast, delete, func, literal, not_,
                        null, or_, select, true, type_coerce, union, union_all, update)
from sqlalchemy import DateTime, bindparam, column, table, text, tuple_
from sqlalchemy import Float, Integer, LargeBinary, String, false
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from .. import hours
from ..db import SQLITE_BEGIN
from ..geojson import feature_head, stored_feature, unpack_feature
from ..models import (District, Organization, PossibleDuplicate, Resource, ResourceVersion,
                      Source)
from ..search import SearchQuery, fold

METRES_PER_DEG_LAT = 111_320.0
# Confidential places are shown as the centre of a grid cell of about 1.1 km x 1.0 km. The cell
# is fixed, so repeated queries cannot be averaged to the true point.
CONFIDENTIAL_CELL_DEG = (0.015, 0.01)  # lon, lat
# open_now/open_at first check at least this many candidates in Python (see Store._open_rows).
_OPEN_BATCH = 200

# The fields an import or an edit may set; a version is written only when one of them changes.
CONTENT_FIELDS: tuple[str, ...] = (
    "name", "description", "translations", "categories", "audiences", "languages", "cost",
    "wheelchair", "opening_hours", "address", "postcode", "stadtteil", "bezirk", "lat", "lon",
    "phone", "email", "website", "organization", "location_confidential", "status",
    "last_verified",
)
_DEFAULTS: dict[str, Any] = {
    "translations": {}, "categories": [], "audiences": [], "languages": [], "cost": "unknown",
    "wheelchair": "unknown", "location_confidential": False, "status": "published",
}
_FIELD_DEFAULTS = tuple((name, _DEFAULTS.get(name)) for name in CONTENT_FIELDS)


class Hit:
    """One search result: public fields only, ``distance_m`` when the query had ``near``.

    ``fragment`` is the resource's stored Feature text (``resource.feature``) when the store
    read one; then ``properties`` are parsed from it only if someone asks for them (the API
    sends the text as it is)."""

    __slots__ = ("_properties", "lon", "lat", "distance_m", "fragment")

    def __init__(self, properties: dict[str, Any] | None, lon: float, lat: float,
                 distance_m: float | None = None, fragment: bytes | str | None = None) -> None:
        if properties is None and fragment is None:
            raise ValueError("a hit needs its properties or its stored feature")
        self._properties = properties
        self.lon, self.lat, self.distance_m, self.fragment = lon, lat, distance_m, fragment

    @property
    def properties(self) -> dict[str, Any]:
        if self._properties is None:
            self._properties = unpack_feature(self.fragment)[0]
        return self._properties

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return ((self.properties, self.lon, self.lat, self.distance_m)
                == (other.properties, other.lon, other.lat, other.distance_m))

    def __repr__(self) -> str:
        return (f"Hit({self.properties.get('uid')!r}, lon={self.lon!r}, lat={self.lat!r}, "
                f"distance_m={self.distance_m!r})")


@dataclass
class SearchResult:
    hits: list[Hit]
    next_offset: int | None
    #: The newest ``resource.updated_at`` of any status (UTC), read on the search's own
    #: connection: the response's Last-Modified without a second checkout.
    last_modified: dt.datetime | None = None


@dataclass
class UpsertReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    archived: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "archived": self.archived, "conflicts": self.conflicts}


def slugify(text: str) -> str:
    ascii_text = (unicodedata.normalize("NFKD", text.replace("ß", "ss"))
                  .encode("ascii", "ignore").decode())
    slug = _SLUG_GAPS.sub("-", ascii_text).strip("-").lower()
    return slug[:120] or "resource"


_SLUG_GAPS = re.compile(r"[^a-zA-Z0-9]+")


def approximate(lon: float, lat: float) -> tuple[float, float]:
    """Centre of the fixed grid cell that holds (lon, lat): the only point shown for a
    confidential location."""
    dlon, dlat = CONFIDENTIAL_CELL_DEG
    return (round((math.floor(lon / dlon) + 0.5) * dlon, 6),
            round((math.floor(lat / dlat) + 0.5) * dlat, 6))


def window(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box that holds every point within ``radius_m`` of (lat, lon)."""
    dlat = radius_m / METRES_PER_DEG_LAT * 1.01  # 1 % margin for the ellipsoid
    coslat = max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    dlon = min(radius_m / (METRES_PER_DEG_LAT * coslat) * 1.01, 180.0)
    return (max(lon - dlon, -180.0), max(lat - dlat, -90.0),
            min(lon + dlon, 180.0), min(lat + dlat, 90.0))


def _point(lon: float, lat: float) -> ColumnElement:
    return type_coerce(func.ST_GeomFromText(f"POINT({lon!r} {lat!r})", 4326),
                       Geometry("POINT", srid=4326))


# The parameters of a bbox filter, in SearchQuery.bbox's order, and of a ``window``.
_BOX = ("minlon", "minlat", "maxlon", "maxlat")
_WINDOW = ("wminlon", "wminlat", "wmaxlon", "wmaxlat")
# More shapes than this in one process means something builds keys from values: start over.
_MAX_PLANS = 512


@dataclass(frozen=True)
class _Plan:
    """A search statement compiled once for a query shape and run with new values each time.

    Building and compiling SQLAlchemy expressions costs far more than running the query
    (thousands of coercions per search); a plan costs one dict merge and the driver call
    (:func:`_execute`: the connection's engine events see every statement).
    """

    sql: str
    names: tuple[str, ...]  # the parameters: in order (positional driver) or by name
    positional: bool
    defaults: Mapping[str, Any]  # values of the constants SQLAlchemy turned into parameters
    binders: tuple[tuple[str, Callable[[Any], Any]], ...]  # e.g. datetime -> SQLite text
    readers: tuple[tuple[int, Callable[[Any], Any]], ...]  # column index -> result processor
    # Results in the driver's binary format (PostgreSQL): statements that read the stored
    # Feature, which then arrives as the bytes the response sends (no decode, no encode).
    binary: bool = False

    @classmethod
    def compile(cls, stmt: Any, dialect: Any,
                reader: Callable[[Any], Callable[[Any], Any] | None]) -> _Plan:
        compiled = stmt.compile(dialect=dialect)
        positional = bool(compiled.positional)
        defaults = compiled.construct_params()
        names = tuple(compiled.positiontup if positional else defaults)
        binders = {}
        for bind, name in compiled.bind_names.items():
            if bind.expanding:
                raise ValueError(f"parameter {name!r} expands per call: use a list parameter")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binders[name] = process
        readers = []
        for index, selected in enumerate(getattr(stmt, "selected_columns", ())):
            process = reader(selected.type)
            if process is not None:
                readers.append((index, process))
        binary = any(getattr(c, "name", None) == "feature"
                     for c in getattr(stmt, "selected_columns", ()))
        return cls(compiled.string, names, positional, defaults, tuple(binders.items()),
                   tuple(readers), binary)

    def run(self, conn: Any, values: Mapping[str, Any], read: bool = True) -> list[Any]:
        """The rows for parameter ``values`` (names missing there keep their compiled
        value), result processors applied (``read``) or not (then :meth:`read` the rows that
        are used)."""
        params = {**self.defaults, **values}
        for name, process in self.binders:
            params[name] = process(params[name])
        if self.positional:
            args: Any = tuple([params[name] for name in self.names])
        else:
            args = {name: params[name] for name in self.names}
        rows = _execute(conn, self.sql, args, self.binary)
        return self.read(rows) if read else rows

    def read(self, rows: list[Any]) -> list[Any]:
        """``rows`` with the result processors applied."""
        if not self.readers:
            return rows
        out = []
        for row in rows:
            row = list(row)
            for index, process in self.readers:
                value = row[index]
                if value is not None:
                    row[index] = process(value)
            out.append(row)
        return out


def _execute(conn: Connection, sql: str, args: Any, binary: bool = False) -> list[Any]:
    """The rows (tuples) of ``sql`` with ``args`` on ``conn``'s driver connection.

    ``Connection.exec_driver_sql`` builds a result object with column metadata for every
    statement (the driver's description, SQLAlchemy's keymap): 0.3 ms of a 2 ms request, for
    rows that are read by position anyway. Here the driver's cursor runs the statement; what
    SQLAlchemy would add is kept: the ``before_cursor_execute`` listeners run first (SQLite's
    statement deadline, the benchmark's capture), and a driver error is raised as
    SQLAlchemy's (``OperationalError`` for a timeout; ``connection_invalidated`` and the
    connection invalidated when the server closed it, for :func:`retry_read`)."""
    dialect = conn.dialect
    driver = conn.connection.dbapi_connection
    # psycopg: results in binary format (``binary``); sqlite3 has only one format.
    cursor = driver.cursor(binary=True) if binary and dialect.name == "postgresql" else (
        driver.cursor())
    try:
        for listener in conn.dispatch.before_cursor_execute:
            sql, args = listener(conn, cursor, sql, args, None, False)
        cursor.execute(sql, args)
        return cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        closed = dialect.is_disconnect(exc, driver, cursor)
        if closed:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=closed, dialect=dialect) from exc
    finally:
        cursor.close()


#: "The statement did not read the newest change" (None means "no resources").
_UNREAD = object()


def _utc(value: Any) -> dt.datetime | None:
    """A ``max(updated_at)`` as an aware UTC datetime (SQLite's max() over text loses the
    column's type; stored values are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def retry_read(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a read once more when its connection turned out to be closed by the server (a
    restart, an idle timeout: ``connection_invalidated``; the pool then replaces its
    connections). Reads only: they are idempotent. See ``db._install_idle_ping``."""
    @functools.wraps(method)
    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return method(self, *args, **kwargs)
    return read


class Store:
    """Backend-neutral storage. Subclasses override the ``_hooks`` only."""

    backend = "generic"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._snapshots = threading.local()  # .conn: this thread's, see one_snapshot()
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        keys = tuple(select(*self._public_columns()).selected_columns.keys())
        assert keys[-2:] == ("lon", "lat"), keys
        self._public_keys = keys[:-2]

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self, *, dry_run: bool = False) -> Iterator[Connection]:
        """One transaction for several writes (an import: the source, the records, the
        archived ones, the possible duplicates): pass the connection it yields as ``conn=``
        to the writing methods. Committed at the end, rolled back on an error or for a
        ``dry_run``: either everything is written or nothing. Maintenance work: no
        statement timeout."""
        with self.engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            transaction = conn.begin()
            try:
                self._unbounded(conn)
                yield conn
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()

    @contextmanager
    def _writing(self, conn: Connection | None, dry_run: bool = False
                 ) -> Iterator[Connection]:
        """``conn`` (a caller's :meth:`transaction`), else a transaction of its own."""
        if conn is not None:
            if dry_run:
                raise ValueError("dry_run with conn=: the caller's transaction decides; "
                                 "use transaction(dry_run=True)")
            yield conn
            return
        with self.transaction(dry_run=dry_run) as own:
            yield own

    @contextmanager
    def _orm(self, conn: Connection | None, dry_run: bool = False) -> Iterator[Session]:
        """An ORM session inside :meth:`_writing`'s transaction; flushed at the end, never
        committing it (``rollback_only``: the transaction's owner decides)."""
        with self._writing(conn, dry_run) as c, Session(
                bind=c, expire_on_commit=False, join_transaction_mode="rollback_only",
                autoflush=True) as session:
            yield session
            session.flush()

    # ---- dialect hooks -------------------------------------------------------------------
    def _codes_overlap(self, column: Any, codes: Any) -> ColumnElement:
        """A predicate: the code list ``column`` shares a code with ``codes``, a parameter
        made by :meth:`_list_param`."""
        raise NotImplementedError

    def _list_value(self, values: Sequence[str]) -> Any:
        """A list of strings as the value of one parameter (an array, a JSON text)."""
        raise NotImplementedError

    def _list_param(self, name: str, value: Any) -> Any:
        """A bound parameter ``name`` holding ``value``, a list from :meth:`_list_value`."""
        raise NotImplementedError

    def _in_list(self, column: Any, values: Any) -> ColumnElement:
        """``column IN values``, ``values`` a parameter made by :meth:`_list_param`."""
        raise NotImplementedError

    def _text_value(self, conn: Any, text: str) -> str | None:
        """The full-text parameter for user input ``text``; None when it has no word (then
        nothing matches)."""
        raise NotImplementedError

    def _reader(self, type_: Any) -> Callable[[Any], Any] | None:
        """How a raw driver value of a public column of ``type_`` becomes what SQLAlchemy
        would return (None: as it comes)."""
        return None

    def _distance_m(self, lon: float, lat: float) -> ColumnElement:
        raise NotImplementedError

    def _index_window(self, box: tuple[float, float, float, float]) -> ColumnElement:
        """A predicate that reads ``box`` through the spatial index (may over-match)."""
        raise NotImplementedError

    def _knn_radius(self, conn: Any, lat: float, lon: float, k: int,
                    where: list[ColumnElement]) -> float | None:
        """A radius (m) around (lat, lon) that holds at least the k nearest matches of
        ``where``, or None when nothing matches."""
        raise NotImplementedError

    def _one_of(self, column: Any, values: Sequence[str]) -> ColumnElement:
        """``column IN values`` for a list that may be longer than the driver's parameter
        limit (one parameter, not one per value)."""
        raise NotImplementedError

    def _text_match(self, value: Any) -> ColumnElement:
        """A predicate: every word of the user's text prefix-matches a word of the resource's
        name, description or organisation name, compared in the folded form
        (``search.fold``). ``value`` is a parameter holding :meth:`_text_value` of the text,
        which must never fail on any input: the text is user input, not query syntax."""
        raise NotImplementedError

    def _point_in(self, polygon: Any, x: Any, y: Any) -> ColumnElement:
        """A predicate: ``polygon`` holds the point (x, y) (lon/lat), tested exactly."""
        raise NotImplementedError

    def _resource_window(self, resource: Any, polygon: Any) -> ColumnElement:
        """A predicate that reads the spatial index of ``resource`` (an alias of the table) for
        the points inside ``polygon``'s bounding box (may over-match)."""
        raise NotImplementedError

    def _unbounded(self, conn: Any) -> None:
        """Lift the statement timeout for one long maintenance statement on ``conn``."""
        conn.execution_options(statement_timeout_ms=0)

    # ---- public reading --------------------------------------------------------------------
    def _public_columns(self) -> list[Any]:
        r = Resource
        hidden = r.location_confidential
        return [
            r.uid, r.slug, r.name, r.description, r.translations, r.categories, r.audiences,
            r.languages, r.cost, r.wheelchair, r.opening_hours,
            case((hidden, null()), else_=r.address).label("address"),
            r.postcode, r.stadtteil, r.bezirk, r.phone, r.email, r.website,
            r.location_confidential, r.last_verified, r.updated_at, r.source,
            Organization.name.label("organization"),
            func.ST_X(r.geom).label("lon"), func.ST_Y(r.geom).label("lat"),
        ]

    def _exact_box(self, box: tuple[float, float, float, float]) -> list[ColumnElement]:
        # The index compares float4-rounded boxes and over-matches near the edges; this is
        # the exact re-check (SETUP-NOTES: 32 of 170 PostGIS queries over-matched without it).
        minlon, minlat, maxlon, maxlat = box
        # BETWEEN: SQLite evaluates ST_X once for both bounds (parsing the geometry)
        x, y = func.ST_X(Resource.geom), func.ST_Y(Resource.geom)
        return [self._index_window(box), x.between(minlon, maxlon), y.between(minlat, maxlat)]

    def _params(self, conn: Any, query: SearchQuery) -> dict[str, Any]:
        """The values of ``query``'s filters by parameter name. The names alone decide the
        SQL (:meth:`_where`), so they key the compiled statements; ``no_text``,
        ``bbox_wraps`` and ``has_hours`` are markers, not parameters."""
        params: dict[str, Any] = {"statuses": self._list_value(query.statuses)}
        for name in ("categories", "audiences", "languages", "cost", "wheelchair",
                     "districts"):
            values = getattr(query, name)
            if values:
                params[name] = self._list_value(values)
        if query.bbox:
            params.update(zip(_BOX, query.bbox))
            if query.bbox[0] > query.bbox[2]:
                params["bbox_wraps"] = True  # across the antimeridian: two boxes
        if query.text is not None:
            value = self._text_value(conn, query.text)
            if value is None:
                params["no_text"] = True  # no word in the text: nothing matches
            else:
                params["text"] = value
        if query.updated_since is not None:
            params["updated_since"] = query.updated_since
        if query.updated_before is not None:
            params["updated_before"] = query.updated_before
        if query.organization is not None:
            params["organization"] = query.organization
        if query.open_at is not None:
            params["has_hours"] = True
        return params

    def _where(self, params: Mapping[str, Any]) -> list[ColumnElement]:
        """The filters of :meth:`_params` as predicates over bound parameters of the same
        names (holding those values)."""
        r = Resource
        where = [self._in_list(r.status, self._list_param("statuses", params["statuses"]))]
        for name in ("categories", "audiences", "languages"):
            if name in params:
                where.append(self._codes_overlap(getattr(r, name),
                                                 self._list_param(name, params[name])))
        for name in ("cost", "wheelchair"):
            if name in params:
                where.append(self._in_list(getattr(r, name),
                                           self._list_param(name, params[name])))
        if "minlon" in params:
            minlon, minlat, maxlon, maxlat = (bindparam(name, params[name], type_=Float)
                                              for name in _BOX)
            if "bbox_wraps" in params:  # minlon..180 and -180..maxlon
                where.append(or_(and_(*self._exact_box((minlon, minlat, 180.0, maxlat))),
                                 and_(*self._exact_box((-180.0, minlat, maxlon, maxlat)))))
            else:
                where.extend(self._exact_box((minlon, minlat, maxlon, maxlat)))
        if "text" in params:
            where.append(self._text_match(bindparam("text", params["text"], type_=String)))
        if "no_text" in params:
            where.append(false())
        if "districts" in params:
            places = self._list_param("districts", params["districts"])
            where.append(or_(self._in_list(r.stadtteil, places),
                             self._in_list(r.bezirk, places)))
        if "updated_since" in params:
            where.append(r.updated_at >= bindparam("updated_since", params["updated_since"],
                                                   type_=DateTime(timezone=True)))
        if "updated_before" in params:
            where.append(r.updated_at < bindparam("updated_before", params["updated_before"],
                                                  type_=DateTime(timezone=True)))
        if "organization" in params:
            where.append(r.organization_id == select(Organization.id).where(
                Organization.uid == bindparam("organization", params["organization"],
                                              type_=String)).scalar_subquery())
        if "has_hours" in params:
            where.append(r.opening_hours.is_not(None))  # no hours: never "open"
        return where

    def _filters(self, conn: Any, query: SearchQuery) -> list[ColumnElement]:
        return self._where(self._params(conn, query))

    @retry_read
    def search(self, query: SearchQuery) -> SearchResult:
        """Run ``query``; the one search path for API, map, list and exports.

        The common shapes (no ``open_at``; with ``near`` ordered by distance) run statements
        compiled once per shape (:meth:`_plan`); the rest build their SQL per call."""
        newest: Any = _UNREAD
        with self._reading() as conn:
            if query.open_at is not None:
                rows = self._open_rows(conn, query, self._filters(conn, query),
                                       hours.local(query.open_at))
                hits = self._hits(conn, rows, distance=query.near is not None)
            elif query.near is not None and query.effective_sort != "distance":
                where = self._filters(conn, query)
                stmt = self._ordered(conn, query, where, self._public_select(),
                                     query.offset + query.limit + 1)
                rows = ([] if stmt is None else
                        conn.execute(stmt.limit(query.limit + 1).offset(query.offset)).all())
                hits = self._hits(conn, rows, distance=True)
            else:
                hits, newest = self._fast_search(conn, query, self._params(conn, query))
                if newest is not _UNREAD:
                    newest = _utc(newest)
            if newest is _UNREAD:
                newest = self._newest_change(conn)
        more = len(hits) > query.limit
        return SearchResult(hits[:query.limit], query.offset + query.limit if more else None,
                            newest)

    @retry_read
    def newest_change(self) -> dt.datetime | None:
        """The newest ``resource.updated_at`` of any status (archiving or unpublishing changes
        what the public sees, too), UTC; None when there is no resource."""
        with self._reading() as conn:
            return self._newest_change(conn)

    @retry_read
    def published_change_range(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The oldest and the newest ``updated_at`` of the published resources (UTC): the
        temporal extent of what the public sees (OGC ``datetime`` filters on it)."""
        r = Resource
        # Two subqueries: each reads one end of the index on updated_at (SQLite uses the
        # index for a lone min() or max() only; both in one SELECT scan the table).
        def end(aggregate: Any) -> Any:
            return select(aggregate(r.updated_at)).where(r.status == "published") \
                .scalar_subquery()
        stmt = select(end(func.min), end(func.max))
        with self._reading() as conn:
            oldest, newest = conn.execute(stmt).one()
        return (_utc(oldest) if oldest else None, _utc(newest) if newest else None)

    def _newest_change(self, conn: Any) -> dt.datetime | None:
        rows = self._plan(("newest",), lambda: select(self._newest_column())).run(conn, {})
        return _utc(rows[0][0]) if rows else None

    def _newest_column(self) -> ColumnElement:
        """:meth:`newest_change` as the last column of a search's statement: the
        response's Last-Modified comes with the page, in the same round trip (an
        uncorrelated subquery, evaluated once per statement, from the index on updated_at)."""
        return select(func.max(Resource.updated_at)).scalar_subquery().label("newest")

    def _fast_search(self, conn: Any, query: SearchQuery, params: dict[str, Any]
                     ) -> tuple[list[Hit], Any]:
        """The page (plus one row) of a query without ``open_at``, and with ``near`` only
        ordered by distance, through compiled statements; and the newest change, read with
        the page (:meth:`_newest_column`, the rows' last column), or ``_UNREAD``."""
        sort = query.effective_sort
        values = {**params, "limit": query.limit + 1, "offset": query.offset}
        if query.near is None:
            plan = self._plan(("list", sort, *sorted(params)),
                              lambda: self._list_select(query, params))
            rows = (self._run_planned_per_call(conn, plan, values) if "minlon" in params
                    else plan.run(conn, values))
            return self._hits(conn, rows), (rows[0][-1] if rows else _UNREAD)
        return self._nearest(conn, query, params, values)

    def _list_select(self, query: SearchQuery, params: dict[str, Any]) -> Select:
        """The page statement of a query without ``near`` (and without ``open_at``)."""
        return (self._public_select().add_columns(self._newest_column())
                .where(and_(true(), *self._where(params)))
                .order_by(*self._order(query, None))
                .limit(bindparam("limit", 1, type_=Integer))
                .offset(bindparam("offset", 0, type_=Integer)))

    def _nearest(self, conn: Any, query: SearchQuery, params: dict[str, Any],
                 values: dict[str, Any]) -> tuple[list[Hit], Any]:
        """The page (plus one row) of a ``near`` query ordered by distance (and id), and the
        newest change if the statement read it (else ``_UNREAD``): see :meth:`_fast_search`."""
        raise NotImplementedError

    # ---- compiled statements ----------------------------------------------------------------
    @contextmanager
    def one_snapshot(self) -> Iterator[None]:
        """Every search and count of this thread inside the block reads one state of the
        database: an export that pages through all resources sees neither a row twice nor
        a row skipped when an import changes the table meanwhile (with one read per page, a
        row archived on an earlier page shifted the later pages by one)."""
        if getattr(self._snapshots, "conn", None) is not None:  # nested: the outer one
            yield
            return
        with self._snapshot_connection() as conn, conn.begin():
            self._snapshots.conn = conn
            try:
                yield
            finally:
                self._snapshots.conn = None

    def _snapshot_connection(self) -> Connection:
        """A connection whose transaction reads one snapshot (SQLite in WAL mode: any read
        transaction, from its first read on)."""
        return self.engine.connect()

    def _reading(self) -> Any:
        """A pooled connection for the reads of one search (the thread's snapshot, if any)."""
        pinned = getattr(self._snapshots, "conn", None)
        return nullcontext(pinned) if pinned is not None else self._connect_for_reading()

    def _connect_for_reading(self) -> Connection:
        return self.engine.connect()

    @retry_read
    def clusters(self, query: SearchQuery, cell: tuple[float, float]
                 ) -> tuple[list[tuple[float, float, int]], dt.datetime | None]:
        """The matches of ``query`` (its filters and ``bbox``; not its order or page)
        counted per cell of a grid of ``cell`` = (degrees of longitude, of latitude),
        anchored at (-180, -90) so that a map panned at the same zoom gets the same cells:
        ``(lon, lat, count)`` per cell that holds any, at the mean of its members' public
        points (a confidential place counts at its approximate one); and the newest change
        (Last-Modified). What a map shows instead of the places when its area holds too many
        to send (``/api/v1/clusters``)."""
        cx, cy = cell
        with self._reading() as conn:
            where = self._filters(conn, query)
            if query.open_at is not None:
                # SQL cannot read OSM opening hours: the open ones among the matches' distinct
                # strings become a filter (as :meth:`_open_rows` does for a rare match)
                when = hours.local(query.open_at)
                values = conn.execute(select(Resource.opening_hours).where(
                    and_(true(), *where, Resource.opening_hours.is_not(None))).distinct()
                ).scalars()
                open_values = [v for v in values if hours.resource_is_open(v, when)]
                if not open_values:
                    return [], self._newest_change(conn)
                where = [*where, self._one_of(Resource.opening_hours, open_values)]
            x, y = func.ST_X(Resource.geom), func.ST_Y(Resource.geom)
            gx = self._cell_index((x + 180.0) / cx)
            gy = self._cell_index((y + 90.0) / cy)
            stmt = (select(func.avg(x), func.avg(y), func.count())
                    .where(and_(true(), *where)).group_by(gx, gy))
            cells = [(float(lon), float(lat), int(n)) for lon, lat, n in conn.execute(stmt)]
            return cells, self._newest_change(conn)

    def _cell_index(self, value: ColumnElement) -> ColumnElement:
        """The whole number below ``value`` (>= 0): a grid cell's index."""
        return func.floor(value)

    def _plan(self, key: tuple[Any, ...], build: Callable[[], Select]) -> _Plan:
        """The statement of shape ``key`` (see :meth:`_params`), built by ``build`` and
        compiled on first use. The cache holds SQL text derived from code only, one entry per
        shape (a few dozen in practice), per process."""
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = _Plan.compile(build(), self.engine.dialect,
                                                    self._reader)
        return plan

    def _run_planned_per_call(self, conn: Any, plan: _Plan, values: Mapping[str, Any]
                              ) -> list[Any]:
        """:meth:`_Plan.run` for a statement whose best plan depends on its values (a
        bbox: a few rows or thousands), so the database must plan it for each call."""
        return plan.run(conn, values)

    def _hits(self, conn: Any, rows: Sequence[Sequence[Any]], *, distance: bool = False,
              distances: Iterable[float] | None = None) -> list[Hit]:
        """Hits from rows of :meth:`_read_columns` (feature, id, lon, lat), with the distance
        from the column after them (``distance``) or from ``distances``, row by row. A row
        without its stored Feature gets one built from its columns (:meth:`_built_features`)."""
        if distances is None:
            distances = ([round(float(row[4]), 1) for row in rows] if distance
                         else [None] * len(rows))
        missing = [row[1] for row in rows if row[0] is None]
        built = self._built_features(conn, missing) if missing else {}
        return [Hit(None, row[2], row[3], d, row[0] if row[0] is not None else built[row[1]])
                for row, d in zip(rows, distances)]

    def _built_features(self, conn: Any, ids: Sequence[int]) -> dict[int, str]:
        """The Features of resources ``ids`` built from their columns, as the next write will
        store them (a reader never writes): for rows a writer left without one."""
        rows = conn.execute(self._feature_columns().where(Resource.id.in_(list(ids)))).all()
        return dict(self._features_of(rows))

    def _feature_columns(self) -> Select:
        """The public columns (lon, lat last) and the id of resources, to build Features from."""
        r = Resource
        return (select(*self._public_columns(), r.id)
                .outerjoin(Organization, Organization.id == r.organization_id))

    def _features_of(self, rows: Sequence[Sequence[Any]]) -> list[tuple[int, str]]:
        """(id, Feature text) of rows of :meth:`_feature_columns`."""
        keys = self._public_keys
        n = len(keys)
        return [(row[n + 2], stored_feature(dict(zip(keys, row[:n])), row[n], row[n + 1]))
                for row in rows]

    def _public_select(self) -> Select:
        return select(*self._read_columns())

    def _read_columns(self) -> list[Any]:
        """What a search reads per resource: its stored Feature (``resource.feature``,
        migration 0005), its id, lon and lat. Nothing else: decoding 25 columns of 1,000
        rows cost more than the query, and even 25 NULLs a row cost the driver half the
        fetch. Rows without a stored Feature are completed by :meth:`_hits`."""
        return [self._feature_bytes().label("feature"), Resource.id,
                *self._public_columns()[-2:]]

    def _feature_bytes(self) -> ColumnElement:
        """``resource.feature`` read as its UTF-8 bytes (a page is those bytes joined: a text
        would be decoded by the driver and encoded again for the response, ~2 ms for a
        1,000-feature page)."""
        return cast(Resource.feature, LargeBinary)  # SQLite: CAST(... AS BLOB), no decoding

    def _fill_features(self, conn: Any) -> int:
        """Build the stored Feature of every resource that has none (new, changed, or reset by
        a trigger of migration 0005), in batches, on ``conn`` (inside the writer's
        transaction); returns how many. Built from the stored columns by the function that
        builds it for a search that finds none, :func:`geojson.stored_feature`."""
        r = Resource
        plan = self._plan(("stale features",), lambda: (
            self._feature_columns()
            .where(r.feature.is_(None), r.id > bindparam("after", 0, type_=Integer))
            .order_by(r.id).limit(bindparam("batch", 1, type_=Integer))))
        done, after = 0, 0
        while True:
            built = self._features_of(plan.run(conn, {"after": after, "batch": _FILL_BATCH}))
            if not built:
                return done
            self._write_features(conn, [i for i, _ in built], [f for _, f in built])
            done += len(built)
            after = built[-1][0]

    def _write_features(self, conn: Any, ids: list[int], features: list[str]) -> None:
        """Store ``features`` for the resources ``ids`` (same order)."""
        conn.execute(text("UPDATE resource SET feature = :feature WHERE id = :id"),
                     [{"feature": f, "id": i} for i, f in zip(ids, features)])

    def fill_features(self) -> int:
        """:meth:`_fill_features` in a transaction of its own (``mapservice init-db`` runs it
        after the migrations, for rows written before migration 0005)."""
        with self.transaction() as conn:
            return self._fill_features(conn)

    def _ordered(self, conn: Any, query: SearchQuery, where: list[ColumnElement], stmt: Select,
                 stop: int) -> Select | None:
        """``stmt`` filtered by ``where`` in the query's order, exact for its first ``stop``
        rows (nearest first without a radius: only those lie in the window read); None when
        nothing matches. ``near`` without a radius filters nothing: sorted otherwise (name,
        verified), every match comes, each with its distance."""
        distance = None
        if query.near is not None:
            lat, lon = query.near
            radius = query.radius
            if radius is None and query.effective_sort == "distance":
                radius = self._knn_radius(conn, lat, lon, stop, where)
                if radius is None:
                    return None
            distance = self._distance_m(lon, lat)
            if radius is not None:
                where = [*where, *self._exact_box(window(lat, lon, radius))]
            if query.radius is not None:
                where.append(distance <= query.radius)
            stmt = stmt.add_columns(distance.label("distance_m"))
        return stmt.where(and_(true(), *where)).order_by(*self._order(query, distance))

    def _open_rows(self, conn: Any, query: SearchQuery, where: list[ColumnElement],
                   when: dt.datetime) -> list[Mapping[str, Any]]:
        """The page of matches that are open at ``when``, plus one to tell whether there is a
        next page. ``offset`` counts open matches.

        SQL cannot evaluate OSM opening hours. First one batch of candidates is read in the
        query's own order (id and opening hours only) and checked in Python; most of the day
        that batch holds the page. When it does not (at night few places are open), the
        distinct opening-hours strings of all matches are read once, the open ones picked in
        Python, and the page is read with ``opening_hours IN (those)`` like any other filter:
        a rare match costs one scan of the matches' hours, never a walk through all of them.
        """
        verdicts: dict[str, bool] = {}

        def is_open(value: str | None) -> bool:
            if value is None:
                return False
            if value not in verdicts:
                verdicts[value] = hours.resource_is_open(value, when)
            return verdicts[value]

        need = query.offset + query.limit + 1
        batch = max(2 * need, _OPEN_BATCH)
        stmt = self._ordered(conn, query, where, select(Resource.id, Resource.opening_hours),
                             batch)
        if stmt is None:
            return []
        rows = conn.execute(stmt.limit(batch)).all()
        open_ids = [row.id for row in rows if is_open(row.opening_hours)]
        if len(open_ids) >= need or len(rows) < batch:
            return self._rows_by_id(conn, query, open_ids[query.offset:need])

        scope = list(where)
        if query.near is not None and query.radius is not None:
            lat, lon = query.near
            scope += [*self._exact_box(window(lat, lon, query.radius)),
                      self._distance_m(lon, lat) <= query.radius]
        values = conn.execute(select(Resource.opening_hours).where(and_(true(), *scope))
                              .distinct()).scalars()
        open_values = [value for value in values if is_open(value)]
        if not open_values:
            return []
        where = [*where, self._one_of(Resource.opening_hours, open_values)]
        stmt = self._ordered(conn, query, where, self._public_select(), need)
        if stmt is None:
            return []
        return conn.execute(stmt.limit(query.limit + 1).offset(query.offset)).all()

    def _rows_by_id(self, conn: Any, query: SearchQuery, ids: list[int]) -> list[Sequence[Any]]:
        """The rows (:meth:`_read_columns`) of ``ids``, in that order (with ``distance_m`` for
        ``near``)."""
        if not ids:
            return []
        stmt = self._public_select().where(Resource.id.in_(ids))
        if query.near is not None:
            lat, lon = query.near
            stmt = stmt.add_columns(self._distance_m(lon, lat).label("distance_m"))
        by_id = {row[1]: row for row in conn.execute(stmt).all()}
        return [by_id[i] for i in ids if i in by_id]

    def _order(self, query: SearchQuery, distance: ColumnElement | None) -> list[Any]:
        sort = query.effective_sort
        if sort == "distance" and distance is not None:
            return [distance, Resource.id]
        if sort == "name":
            # Alphabetical the same way on both backends, whatever the database's collation:
            # by the slug (lower case, accents stripped, "ß" as "ss", punctuation as "-"),
            # which every write path keeps. A name without Latin letters has the slug
            # "resource": those come after the Latin ones, by the name itself.
            no_latin = case((and_(Resource.slug == "resource",
                                  func.lower(Resource.name) != "resource"), 1), else_=0)
            return [no_latin, Resource.slug, Resource.name, Resource.id]
        if sort == "verified":
            return [Resource.last_verified.desc().nulls_last(), Resource.id]
        return [Resource.id]

    @retry_read
    def get(self, uid: str, *, statuses: Iterable[str] = ("published",)) -> Hit | None:
        plan = self._plan(("get",), lambda: self._public_select().where(
            Resource.uid == bindparam("uid", "", type_=String),
            self._in_list(Resource.status,
                          self._list_param("statuses", self._list_value(["published"])))))
        with self._reading() as conn:
            rows = plan.run(conn, {"uid": uid, "statuses": self._list_value(tuple(statuses))})
            return self._hits(conn, rows[:1])[0] if rows else None

    def with_uids(self, uids: Iterable[str], *, conn: Connection | None = None
                  ) -> list[dict[str, Any]]:
        """The stored resources (any status) whose public id is one of ``uids``: ``uid``,
        ``name``, ``source``, ``source_id``."""
        wanted = sorted(set(map(str, uids)))
        stmt = (select(Resource.uid, Resource.name, Resource.source, Resource.source_id)
                .where(Resource.uid.in_(wanted)).order_by(Resource.uid))
        if conn is not None:
            return [dict(row) for row in conn.execute(stmt).mappings()]
        with self.engine.connect() as own:
            return [dict(row) for row in own.execute(stmt).mappings()]

    def count(self, statuses: Iterable[str] = ("published",)) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Resource)
                                .where(Resource.status.in_(tuple(statuses)))).scalar_one()

    @retry_read
    def count_matches(self, query: SearchQuery) -> int:
        """How many resources match ``query``'s filters (order and paging ignored), for APIs
        whose pages must state a total (HSDS). ``near`` and ``open_at`` are not counted here:
        the first needs the k-nearest window, the second Python."""
        if query.near is not None or query.open_at is not None:
            raise ValueError("count_matches does not evaluate near or open_at")
        with self._reading() as conn:
            return conn.execute(select(func.count()).select_from(Resource)
                                .where(and_(true(), *self._filters(conn, query)))).scalar_one()

    # ---- organisations (HSDS) ---------------------------------------------------------------
    _PUBLIC_ORG_FIELDS = ("uid", "name", "description", "website", "email", "phone")

    @retry_read
    def organizations(self, *, uid: str | None = None, limit: int = 50, offset: int = 0,
                      with_resources: bool = False) -> tuple[list[dict[str, Any]], int]:
        """Organisations with at least one published resource, by name: one page and the total.

        An organisation with only drafts or archived resources is not public, so it is left
        out. ``uid`` narrows to one organisation; ``with_resources`` adds ``resources``, the
        uid and name of each of its published resources.
        """
        o, r = Organization, Resource
        where = [select(r.id).where(r.organization_id == o.id,
                                    r.status == "published").exists()]
        if uid is not None:
            where.append(o.uid == uid)
        fields = self._PUBLIC_ORG_FIELDS
        columns = [o.id, *(getattr(o, name) for name in fields)]
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(o).where(*where)).scalar_one()
            rows = conn.execute(select(*columns).where(*where).order_by(o.name, o.id)
                                .limit(limit).offset(offset)).mappings().all()
            orgs = {row["id"]: {name: row[name] for name in fields} for row in rows}
            if with_resources and orgs:
                for org in orgs.values():
                    org["resources"] = []
                for res in conn.execute(select(r.organization_id, r.uid, r.name).where(
                        r.organization_id.in_(list(orgs)), r.status == "published")
                        .order_by(r.name, r.id)):
                    orgs[res.organization_id]["resources"].append({"uid": res.uid,
                                                                   "name": res.name})
        return list(orgs.values()), total

    def organizations_of(self, resource_uids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The organisation of each published resource in ``resource_uids``: resource uid ->
        the organisation's uid, name, description, website, email and phone (search hits carry
        only its name). Resources without an organisation are left out."""
        if not resource_uids:
            return {}
        o, r, fields = Organization, Resource, self._PUBLIC_ORG_FIELDS
        stmt = (select(r.uid.label("resource_uid"), *(getattr(o, n) for n in fields))
                .join(o, o.id == r.organization_id)
                .where(r.uid.in_(list(resource_uids)), r.status == "published"))
        with self._reading() as conn:
            return {row["resource_uid"]: {n: row[n] for n in fields}
                    for row in conn.execute(stmt).mappings()}

    def placed_addresses(self, source: str
                         ) -> dict[str, tuple[str, str | None, float, float, bool]]:
        """(address, postcode, lat, lon, address locked by a moderator) of the resources of
        ``source`` that have a street address and a public point, by source id: where an
        earlier import (or a moderator) placed them. A re-import reuses such a point instead
        of asking the online geocoder again (``importers.pipeline``). Confidential places
        are left out."""
        r = Resource
        stmt = (select(r.source_id, r.address, r.postcode, func.ST_Y(r.geom), func.ST_X(r.geom),
                       r.locked_fields)
                .where(r.source == source, r.address.is_not(None),
                       r.location_confidential.is_(False)))
        with self.engine.connect() as conn:
            self._unbounded(conn)  # a whole source: may take longer than a search
            return {sid: (address, postcode, lat, lon, "address" in (locked or ()))
                    for sid, address, postcode, lat, lon, locked in conn.execute(stmt)}

    def sources_in_use(self) -> list[dict[str, Any]]:
        """Sources of published resources, with their licence and attribution."""
        stmt = (select(Source.name, Source.licence, Source.attribution, Source.url)
                .where(Source.name.in_(select(Resource.source).where(
                    Resource.status == "published").distinct()))
                .order_by(Source.name))
        with self._reading() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def source_names(self) -> list[str]:
        """Every source the database knows (registered, or named by a resource), whatever
        its resources' status."""
        names = select(Source.name).union(select(Resource.source).distinct()).subquery()
        with self.engine.connect() as conn:
            return list(conn.execute(select(names.c[0]).order_by(names.c[0])).scalars())

    def history(self, uid: str) -> list[dict[str, Any]]:
        with self.session() as session:
            resource = session.scalar(select(Resource).where(Resource.uid == uid))
            if resource is None:
                return []
            return [{"version": v.version, "changed_by": v.changed_by,
                     "changed_at": v.changed_at, "diff": v.diff, "data": v.data}
                    for v in resource.versions]

    # ---- erasing personal data -----------------------------------------------------------
    def erase_text(self, needles: Sequence[str], *, changed_by: str, dry_run: bool = False,
                   max_resources: int | None = None, conn: Connection | None = None
                   ) -> ErasureReport:
        """Remove every occurrence of the ``needles`` (a contact person's name, phone number or
        e-mail address; compared without regard to case, as whole words: "Eva" is not taken
        out of "Evangelische", a number not out of a longer one) from the listings, the
        organisations, the sources' credits and every stored version, in one transaction.

        A contact field (phone, e-mail, website) that holds the text is emptied, as is any
        field that is all of it (a name becomes :data:`ERASED`); a longer text keeps its other
        words, the text replaced by :data:`ERASED`. A listing that changed, or whose
        organisation was renamed, gets a version by ``changed_by`` whose diff does not hold the
        old value, and its changed fields are locked, so that a re-import of a source that
        still has them reports conflicts instead of writing them back (:meth:`unlock` releases
        them). In the versions written before, the text is replaced in the stored state and in
        the diff. Archived listings are included. ``dry_run`` reports and rolls back; more
        than ``max_resources`` listings holding the text roll back with
        :class:`~mapservice.errors.TooCommon` (a word too common to be one person's).
        """
        from ..errors import TooCommon

        pattern = _needle_pattern(needles)
        report = ErasureReport()
        with self._orm(conn, dry_run) as session:
            renamed = self._erase_organizations(session, pattern, report)
            for src in session.scalars(select(Source)):
                for name in ("licence", "attribution", "url"):
                    value, changed = _erased_field(getattr(src, name), pattern,
                                                   contact=name == "url")
                    if changed:
                        setattr(src, name, value)
                        report.sources.append(src.name)
            r = Resource
            # Every listing's text columns are read, in id order: text inside JSON (the
            # translations, stored with \u escapes on SQLite) escapes a LIKE.
            after = 0
            while True:
                rows = session.execute(
                    select(r.id, r.organization_id, *(getattr(r, name) for name in _ERASABLE))
                    .where(r.id > after).order_by(r.id).limit(_ERASE_BATCH)).all()
                if not rows:
                    break
                after = rows[-1].id
                hit = [row.id for row in rows if row.organization_id in renamed or any(
                    _holds(getattr(row, name), pattern) for name in _ERASABLE)]
                for res in session.scalars(select(r).where(r.id.in_(hit))) if hit else ():
                    self._erase_resource(session, res, pattern, renamed, changed_by, report)
                if max_resources is not None and len(report.resources) > max_resources:
                    raise TooCommon(len(report.resources), max_resources)
            session.flush()
            v = ResourceVersion
            after = 0
            while True:
                rows = session.execute(select(v.id, v.data, v.diff).where(v.id > after)
                                       .order_by(v.id).limit(_ERASE_BATCH)).all()
                if not rows:
                    break
                after = rows[-1].id
                for row in rows:
                    data, data_changed = _erased(row.data, pattern)
                    diff, diff_changed = _erased(row.diff, pattern)
                    if data_changed or diff_changed:
                        session.execute(update(v).where(v.id == row.id)
                                        .values(data=data, diff=diff))
                        report.versions += 1
            session.flush()
            self._fill_features(session.connection())
            if not dry_run and (report.resources or report.organizations):
                self._after_erase(session.connection())
        return report

    def _after_erase(self, conn: Connection) -> None:
        """Dialect hook: make the full-text index let go of erased words (SQLite's FTS5 keeps
        them in its segments until they are merged)."""

    def _erase_organizations(self, session: Session, pattern: re.Pattern[str],
                             report: ErasureReport) -> dict[int, str]:
        """Erase in the organisations; {id: the old name} of those renamed (their listings'
        versions name them)."""
        renamed: dict[int, str] = {}
        for org in session.scalars(select(Organization)):
            fields, old_name = [], org.name
            for name in ("name", "description", "website", "email", "phone", "source_id"):
                value, changed = _erased_field(getattr(org, name), pattern,
                                               required=name in ("name", "source_id"),
                                               contact=name in _CONTACT_FIELDS)
                if changed:
                    setattr(org, name, value)
                    fields.append(name)
            if fields:
                report.organizations.append({"uid": org.uid, "name": org.name,
                                             "fields": fields})
                if "name" in fields:
                    renamed[org.id] = old_name
        return renamed

    def _erase_resource(self, session: Session, res: Resource, pattern: re.Pattern[str],
                        renamed: Mapping[int, str], changed_by: str,
                        report: ErasureReport) -> None:
        fields = []
        for name in _ERASABLE:
            value, changed = _erased_field(getattr(res, name), pattern, required=name == "name",
                                           contact=name in _CONTACT_FIELDS)
            if changed:
                setattr(res, name, value)
                fields.append(name)
        if res.organization_id in renamed:
            fields.append("organization")
        if not fields:
            return
        if "name" in fields:
            res.slug = slugify(res.name)
        res.locked_fields = sorted({*(res.locked_fields or ()), *fields})
        res.version += 1
        res.updated_at = dt.datetime.now(dt.timezone.utc)
        after = self.snapshot(res)
        session.add(ResourceVersion(
            resource_id=res.id, version=res.version, changed_by=changed_by,
            data=_jsonable(after),
            diff={name: [ERASED, _jsonable(after.get(name))] for name in fields}))
        report.resources.append({"uid": res.uid, "name": res.name, "status": res.status,
                                 "fields": fields})

    def unlock(self, uid: str, fields: Iterable[str]) -> list[str]:
        """Release ``fields`` of the listing ``uid`` (locked by a moderator or by
        :meth:`erase_text`), so that the next import writes them again; the fields still
        locked. :class:`~mapservice.errors.NotFound` for an unknown uid."""
        from ..errors import NotFound

        with self._orm(None) as session:
            res = session.scalar(select(Resource).where(Resource.uid == uid))
            if res is None:
                raise NotFound(f"no resource {uid!r}")
            gone = set(fields)
            res.locked_fields = [f for f in (res.locked_fields or ()) if f not in gone]
            return list(res.locked_fields)

    # ---- writing ---------------------------------------------------------------------------
    def register_source(self, name: str, *, licence: str | None = None,
                        attribution: str | None = None, url: str | None = None,
                        conn: Connection | None = None) -> None:
        """Create source ``name`` or mark it imported now. A value not given (None) keeps the
        stored one: a re-import without ``--licence`` must not drop the attribution that the
        map is obliged to show. ``conn``: inside a caller's :meth:`transaction`."""
        with self._orm(conn) as session:
            source = session.scalar(select(Source).where(Source.name == name))
            if source is None:
                source = Source(name=name)
                session.add(source)
            for field, value in (("licence", licence), ("attribution", attribution),
                                 ("url", url)):
                if value is not None:
                    setattr(source, field, value)
            source.imported_at = dt.datetime.now(dt.timezone.utc)

    def upsert(self, records: Iterable[Mapping[str, Any]], *, source: str, changed_by: str,
               dry_run: bool = False, conn: Connection | None = None) -> UpsertReport:
        """Insert or update resources keyed by (source, ``source_id``), in one transaction.

        A record is a mapping with ``source_id`` and any of :data:`CONTENT_FIELDS`
        (``organization`` is a mapping with at least ``name``). A version is written only when
        a field changed; fields a moderator locked keep their value and are reported as
        conflicts. This is the ORM path for small batches; bulk imports use the dialect's
        bulk loader. ``dry_run`` does all the work, reports it, and rolls it back. ``conn``:
        inside a caller's :meth:`transaction` (which then decides; ``dry_run`` is its own).
        """
        with self._orm(conn, dry_run) as session:
            report = self._upsert(session, list(records), source, changed_by)
            session.flush()
            self._fill_features(session.connection())
        return report

    def _upsert(self, session: Session, records: list[Mapping[str, Any]], source: str,
                changed_by: str) -> UpsertReport:
        report = UpsertReport()
        ids = [str(rec["source_id"]) for rec in records]
        wanted = select(Resource).where(Resource.source == source)
        if len(ids) <= 5000:  # else read the whole source: a long IN list costs more
            wanted = wanted.where(Resource.source_id.in_(ids))
        existing = {res.source_id: res for res in session.scalars(wanted)}
        orgs: dict[str, Organization] = {}
        for rec in records:
            data = self._normalise(rec)
            org = self._organization(session, source, rec.get("organization"), orgs)
            data["organization"] = org.name if org else None
            res = existing.get(str(rec["source_id"]))
            if res is None:
                res = Resource(source=source, source_id=str(rec["source_id"]), version=1,
                               locked_fields=[])
                self._apply(res, data, org)
                session.add(res)
                session.flush()
                session.add(ResourceVersion(resource_id=res.id, version=1,
                                            changed_by=changed_by, data=_jsonable(data),
                                            diff={}))
                report.created += 1
                continue
            diff = _diff(res.source_id, self.snapshot(res), data, res.locked_fields,
                         report.conflicts)
            if not diff:
                report.unchanged += 1
                continue
            if "organization" in (res.locked_fields or ()):
                org = res.organization  # locked: the listing keeps its organisation
            self._apply(res, data, org)
            res.version += 1
            res.updated_at = dt.datetime.now(dt.timezone.utc)
            session.add(ResourceVersion(resource_id=res.id, version=res.version,
                                        changed_by=changed_by, data=_jsonable(data),
                                        diff=diff))
            report.updated += 1
        return report

    def archive_missing(self, source: str, keep_ids: Iterable[str], *, changed_by: str,
                        dry_run: bool = False, conn: Connection | None = None) -> int:
        """Archive (never delete) resources of ``source`` not in ``keep_ids``; ``dry_run``
        and ``conn`` as for :meth:`upsert`."""
        keep = set(map(str, keep_ids))
        archived = 0
        with self._orm(conn, dry_run) as session:
            live = session.execute(select(Resource.id, Resource.source_id).where(
                Resource.source == source, Resource.status != "archived")).all()
            gone = [rid for rid, sid in live if sid not in keep]
            # Only the records to archive become ORM objects (not a whole large source).
            for start in range(0, len(gone), 1000):
                ids = gone[start:start + 1000]
                for res in session.scalars(select(Resource).where(Resource.id.in_(ids))):
                    archived += self._archive(session, res, changed_by)
            session.flush()
            self._fill_features(session.connection())
        return archived

    def _archive(self, session: Session, res: Resource, changed_by: str) -> int:
        """Archive ``res`` with its version; 1."""
        before = res.status
        res.status = "archived"
        res.version += 1
        res.updated_at = dt.datetime.now(dt.timezone.utc)
        session.add(ResourceVersion(resource_id=res.id, version=res.version,
                                    changed_by=changed_by, data=_jsonable(self.snapshot(res)),
                                    diff={"status": [before, "archived"]}))
        return 1

    def replace_districts(self, levels: Mapping[str, Sequence[Mapping[str, Any]]], *,
                          conn: Connection | None = None) -> dict[str, int]:
        """Replace all districts of each level in ``levels`` (level -> rows of
        :class:`~mapservice.models.District` columns, ``geom`` as EWKT); returns the number
        loaded per level. Resources keep their Stadtteil/Bezirk until :meth:`assign_districts`
        (``importers.boundaries.load_boundaries`` runs both in one transaction)."""
        loaded: dict[str, int] = {}
        with self._orm(conn) as session:
            for level, rows in levels.items():
                session.execute(delete(District).where(District.level == level))
                session.add_all(District(**row) for row in rows)
                loaded[level] = len(rows)
        return loaded

    def assign_districts(self, *, conn: Connection | None = None) -> int:
        """Set every resource's ``stadtteil`` and ``bezirk`` from the district polygons that
        hold its point (a confidential resource: its exact point), in one UPDATE through the
        spatial index; returns the number of resources that changed.

        The Bezirk is the Stadtteil's own (the Bezirk layer leaves out Neuwerk), else the Bezirk
        polygon's. A point outside every polygon keeps its values. These are derived values:
        no version is written, ``updated_at`` moves so that ``updated_since`` sees the change.
        ``importers.boundaries.derive`` applies the same rule to records before an import.
        """
        res, dis = Resource.__table__, District.__table__
        located = res.alias("located")
        exact = and_(located.c.location_confidential, located.c.exact_lat.isnot(None))

        def hits(level: str, *skip: ColumnElement) -> Any:
            # District by district, its points through the resources' spatial index (the
            # polygon stays the same while they are tested); the few confidential resources by
            # their exact point. MATERIALIZED: computed once, never copied into the UPDATE.
            public = (select(located.c.id, dis.c.id.label("did"))
                      .select_from(dis.join(located, and_(
                          self._resource_window(located, dis.c.geom),
                          self._point_in(dis.c.geom, func.ST_X(located.c.geom),
                                         func.ST_Y(located.c.geom)))))
                      .where(dis.c.level == level, not_(exact), *skip))
            secret = select(located.c.id, select(func.min(dis.c.id)).where(
                dis.c.level == level, self._point_in(dis.c.geom, located.c.exact_lon,
                                                     located.c.exact_lat)
            ).scalar_subquery().label("did")).where(exact, *skip)
            pairs = union_all(public, secret).subquery(f"{level}_pairs")
            return (select(pairs.c.id, func.min(pairs.c.did).label("did"))  # lowest id wins
                    .where(pairs.c.did.isnot(None)).group_by(pairs.c.id)
                    .cte(f"{level}_hits").prefix_with("MATERIALIZED"))

        st_hits = hits("stadtteil")
        named = dis.alias("named")  # a Stadtteil that names its Bezirk: no Bezirk lookup
        bz_hits = hits("bezirk", not_(located.c.id.in_(
            select(st_hits.c.id).join(named, named.c.id == st_hits.c.did)
            .where(named.c.bezirk.isnot(None)))))
        ids = union(select(st_hits.c.id), select(bz_hits.c.id)).subquery("hit_ids")
        st, bz = dis.alias("st"), dis.alias("bz")
        derived = (select(ids.c.id, st.c.name.label("stadtteil"),
                          func.coalesce(st.c.bezirk, bz.c.name).label("bezirk"))
                   .select_from(ids.outerjoin(st_hits, st_hits.c.id == ids.c.id)
                                .outerjoin(st, st.c.id == st_hits.c.did)
                                .outerjoin(bz_hits, bz_hits.c.id == ids.c.id)
                                .outerjoin(bz, bz.c.id == bz_hits.c.did))
                   .subquery("derived"))
        stadtteil = func.coalesce(derived.c.stadtteil, res.c.stadtteil)
        bezirk = func.coalesce(derived.c.bezirk, res.c.bezirk)
        stmt = (res.update()
                .where(res.c.id == derived.c.id,
                       or_(res.c.stadtteil.is_distinct_from(stadtteil),
                           res.c.bezirk.is_distinct_from(bezirk)))
                .values(stadtteil=stadtteil, bezirk=bezirk,
                        updated_at=dt.datetime.now(dt.timezone.utc)))
        with self._writing(conn) as c:
            changed = c.execute(stmt).rowcount
            self._fill_features(c)
            return changed

    @staticmethod
    def _normalise(rec: Mapping[str, Any]) -> dict[str, Any]:
        get = rec.get  # a bulk import calls this a million times
        data = {name: get(name, default) for name, default in _FIELD_DEFAULTS}
        for name in ("categories", "audiences", "languages"):
            data[name] = list(dict.fromkeys(data[name] or []))
        data["translations"] = dict(data["translations"] or {})
        data["lat"], data["lon"] = round(float(rec["lat"]), 7), round(float(rec["lon"]), 7)
        if isinstance(data["last_verified"], str):
            data["last_verified"] = dt.date.fromisoformat(data["last_verified"])
        data["location_confidential"] = bool(data["location_confidential"])
        return data

    @staticmethod
    def _organization(session: Session, source: str, org: Mapping[str, Any] | None,
                      cache: dict[str, Organization]) -> Organization | None:
        if not org or not org.get("name"):
            return None
        key = str(org.get("source_id") or org["name"])
        if key in cache:
            return cache[key]
        found = session.scalar(select(Organization).where(Organization.source == source,
                                                          Organization.source_id == key))
        if found is None:
            found = Organization(source=source, source_id=key, name=org["name"])
            session.add(found)
        for name in ("name", "description", "website", "email", "phone"):
            if org.get(name) is not None:
                setattr(found, name, org[name])
        session.flush()
        cache[key] = found
        return found

    @staticmethod
    def snapshot(res: Resource) -> dict[str, Any]:
        """The content fields of a stored resource, in the form :meth:`upsert` compares."""
        if res.location_confidential and res.exact_lat is not None:
            lat, lon = res.exact_lat, res.exact_lon
        else:
            lat, lon = _point_of(res)
        data = {name: getattr(res, name) for name in CONTENT_FIELDS
                if name not in ("lat", "lon", "organization")}
        data.update(lat=lat, lon=lon,
                    organization=res.organization.name if res.organization else None)
        return data

    @staticmethod
    def _apply(res: Resource, data: Mapping[str, Any], org: Organization | None) -> None:
        for name in CONTENT_FIELDS:
            if name in ("lat", "lon", "organization"):
                continue
            setattr(res, name, data[name])
        res.slug = slugify(data["name"])
        res.organization = org
        lon, lat = data["lon"], data["lat"]
        if data["location_confidential"]:
            res.exact_lat, res.exact_lon = lat, lon
            lon, lat = approximate(lon, lat)
        else:
            res.exact_lat = res.exact_lon = None
        res.geom = f"SRID=4326;POINT({lon!r} {lat!r})"

    # ---- bulk writing ------------------------------------------------------------------------
    def bulk_upsert(self, records: Iterable[Mapping[str, Any]], *, source: str, changed_by: str,
                    dry_run: bool = False, timings: dict[str, float] | None = None,
                    conn: Connection | None = None) -> UpsertReport:
        """:meth:`upsert` for many records, set-based; the same result.

        Same rules as :meth:`upsert`: keyed by (source, ``source_id``), one transaction,
        idempotent, a version only for a changed record, moderator-locked fields kept and
        reported as conflicts. But the rows are streamed into a staging table (PostGIS: COPY,
        SpatiaLite: executemany) and merged with a few statements: SQL compares the existing
        resources with the staging rows, and only the ones that differ come back to Python to
        be diffed field by field exactly as :meth:`upsert` does (:func:`_diff`); then the new
        rows are inserted and the changed ones updated, each with its version, set-based. The
        ORM path needs round trips per row; this one a fixed number of statements (see
        docs/benchmarks.md for the rates).

        The dialect modules decide how indexes and triggers are maintained during the load
        (e.g. built after the load when the table was empty). ``timings``, when given, gets
        the seconds per phase: ``load`` (preparing and streaming the rows),
        ``organizations``, ``merge``, ``index`` (spatial/full-text/secondary indexes),
        ``commit``. ``dry_run`` and ``conn`` as for :meth:`upsert`.
        """
        clock = _Clock(timings)
        report = UpsertReport()
        now = dt.datetime.now(dt.timezone.utc)
        with self._writing(conn, dry_run) as conn:
            orgs: dict[str, dict[str, Any]] = {}
            # A source with no rows yet: every row is new, so each staging row carries
            # the Feature it is inserted with. Otherwise most rows usually exist already
            # (a re-import), and building Features nobody writes would cost more than
            # storing the few new ones after the merge (_fill_features).
            fresh = conn.execute(select(Resource.id).where(Resource.source == source)
                                 .limit(1)).first() is None
            total = self._bulk_load(conn, "bulk_staging", BULK_COLUMNS,
                                    self._bulk_rows(records, orgs, source, now, fresh))
            clock("load")
            if not total:
                return report
            if orgs:
                self._bulk_load(conn, "bulk_orgs", ("org_key", *_ORG_FIELDS),
                                ((key, *(org.get(f) for f in _ORG_FIELDS))
                                 for key, org in orgs.items()))
                conn.execute(text(self._bulk_organizations_sql()), {"source": source})
            clock("organizations")
            empty = conn.execute(select(Resource.id).limit(1)).first() is None
            changes = [] if empty else self._bulk_changes(conn, source, report, now)
            report.created, finish = self._bulk_insert(conn, source, changed_by, now, empty)
            if changes:
                self._bulk_load(conn, "bulk_changes", BULK_COLUMNS, changes)
                self._bulk_update(conn, changed_by, now)
            report.updated = len(changes)
            report.unchanged = total - report.created - report.updated
            clock("merge")
            finish()
            clock("index")
            # new rows of a source that had rows; renamed organisations
            self._fill_features(conn)
            clock("features")
        clock("commit")
        return report

    def _bulk_rows(self, records: Iterable[Mapping[str, Any]],
                   orgs: dict[str, dict[str, Any]], source: str, now: dt.datetime,
                   features: bool) -> Iterator[tuple[Any, ...]]:
        """The staging rows of ``records`` (a stream: nothing is held but the organisations,
        merged per key in record order as :meth:`_organization` does); with ``features``
        each with the uid and the Feature it gets if it is new (:func:`geojson.feature_head`:
        the insert appends the stored organisation's name), else without (the insert
        generates the uid, and the Feature is stored after the merge)."""
        seen: set[str] = set()
        for key, rec in enumerate(records):
            sid = str(rec["source_id"])
            if sid in seen:
                raise ValueError(f"source id {sid!r} appears more than once")
            seen.add(sid)
            data = self._normalise(rec)
            org = rec.get("organization")
            org_key = None
            if org and org.get("name"):
                org_key = str(org.get("source_id") or org["name"])
                merged = orgs.setdefault(org_key, {})
                for name in _ORG_FIELDS:
                    if org.get(name) is not None:
                        merged[name] = org[name]
                data["organization"] = org["name"]
            else:
                data["organization"] = None
            yield self._bulk_row(key, sid, data, org_key, None, _dumps(data), None,
                                 (source, now, None) if features else None)

    def _bulk_row(self, key: int, source_id: str, data: Mapping[str, Any], org_key: str | None,
                  org_id: int | None, data_json: str, diff_json: str | None,
                  new: tuple[str, dt.datetime, str | None] | None = None) -> tuple[Any, ...]:
        """One staging row (:data:`BULK_COLUMNS`); ``data`` in Python or JSON form. ``new``:
        (source, time of the write, uid or None for a new one): the row gets its uid and the
        head of the Feature it is written with (:func:`geojson.feature_head`)."""
        values = [data[name] for name in CONTENT_FIELDS]
        for i in _LIST_INDEXES:
            values[i] = self._bulk_list(values[i] or ())
        translations = values[_TRANSLATIONS_INDEX]
        values[_TRANSLATIONS_INDEX] = _dumps(translations) if translations else "{}"
        verified = values[_VERIFIED_INDEX]
        if verified is not None and not isinstance(verified, str):
            values[_VERIFIED_INDEX] = verified.isoformat()
        glon = glat = None
        if data["location_confidential"]:
            glon, glat = approximate(data["lon"], data["lat"])
        slug = slugify(data["name"])
        uid = head = None
        if new is not None:
            uid = new[2] or str(uuid.uuid4())
            known = {"uid": uid, "slug": slug, "updated_at": new[1], "source": new[0],
                     "organization": None}
            if data["location_confidential"]:
                known["address"] = None
            # In the order a search reads them, so that the text equals what
            # _fill_features would build from the stored row.
            public = {name: known[name] if name in known else data[name]
                      for name in self._public_keys}
            head = feature_head(public, data["lon"] if glon is None else glon,
                                data["lat"] if glat is None else glat)
        return (key, source_id, *values, org_key, org_id, slug, glon, glat,
                data_json, diff_json, uid, head)

    def _bulk_changes(self, conn: Connection, source: str, report: UpsertReport,
                      now: dt.datetime) -> list[tuple[Any, ...]]:
        """Staging rows for the existing resources that changed (key = resource id).

        SQL finds the rows whose stored content is not identical to the staging row; an exact
        comparison can only err towards "maybe changed", and those few are diffed in Python
        with :func:`_diff`, as :meth:`upsert` does (float tolerance, locked fields).
        """
        s = _STAGING
        r = Resource
        stored = [self._bulk_stored(name) for name in CONTENT_FIELDS]
        before = [_stored_value(name).label(name) for name in CONTENT_FIELDS]
        stmt = (select(r.id, r.uid, r.version, r.locked_fields, r.organization_id, r.exact_lat,
                       s.c.source_id, s.c.org_key, s.c.data, *before)
                .select_from(s.join(r, and_(r.source == source, r.source_id == s.c.source_id))
                             .outerjoin(Organization, Organization.id == r.organization_id))
                .where(tuple_(*stored).is_distinct_from(tuple_(*(s.c[name]
                                                                for name in CONTENT_FIELDS))))
                .execution_options(yield_per=10_000))  # a re-import may change every row
        changes: list[tuple[Any, ...]] = []
        org_ids: dict[str, int] | None = None
        for row in conn.execute(stmt).mappings():
            old = _jsonable({name: row[name] for name in CONTENT_FIELDS})
            if not (row["location_confidential"] and old["lat"] is not None
                    and row["exact_lat"] is not None):
                old["lat"], old["lon"] = _round7(old["lat"]), _round7(old["lon"])
            data = orjson.loads(row["data"])
            diff = _diff(row["source_id"], old, data, row["locked_fields"], report.conflicts)
            if not diff:
                continue
            if "organization" in (row["locked_fields"] or ()):
                org_id = row["organization_id"]
            else:
                if org_ids is None:
                    org_ids = dict(conn.execute(
                        select(Organization.source_id, Organization.id)
                        .where(Organization.source == source)).all())
                org_id = org_ids.get(row["org_key"]) if row["org_key"] else None
            changes.append(self._bulk_row(row["id"], row["source_id"], data, row["org_key"],
                                          org_id, _dumps(data), _dumps(diff),
                                          (source, now, row["uid"])))
        return changes

    def _bulk_update(self, conn: Connection, changed_by: str, now: dt.datetime) -> None:
        """Write the ``bulk_changes`` rows and one version for each (triggers keep the spatial
        and full-text indexes current: these are few)."""
        point = self._sql_point("coalesce(c.glon, c.lon)", "coalesce(c.glat, c.lat)")
        sets = ", ".join(f"{name} = c.{name}" for name in PLAIN_FIELDS)
        conn.execute(text(f"""
            UPDATE resource AS r SET {sets}, slug = c.slug, organization_id = c.org_id,
                exact_lat = CASE WHEN c.location_confidential THEN c.lat END,
                exact_lon = CASE WHEN c.location_confidential THEN c.lon END,
                geom = {point}, version = r.version + 1, updated_at = :now,
                feature = {self._sql_feature(
                    "c.feature", "(SELECT o.name FROM organization AS o WHERE o.id = c.org_id)")}
            FROM bulk_changes AS c WHERE r.id = c.key""").bindparams(_now_param(now)))
        conn.execute(text(f"""
            INSERT INTO resource_version (resource_id, version, changed_by, changed_at, data, diff)
            SELECT c.key, r.version, :changed_by, :now, {self._sql_json("c.data")},
                   {self._sql_json("c.diff")}
            FROM bulk_changes AS c JOIN resource AS r ON r.id = c.key""").bindparams(
            _now_param(now)), {"changed_by": changed_by})

    def _bulk_organizations_sql(self) -> str:
        # ON CONFLICT: the same merge as _organization (the name always, other fields when
        # given), but only rows that change are written: an UPDATE fires the full-text
        # triggers of the organisation's resources. "WHERE true" keeps SQLite from reading
        # ON CONFLICT as a join constraint.
        merged = {name: f"coalesce(excluded.{name}, organization.{name})"
                  for name in _ORG_FIELDS if name != "name"}
        merged["name"] = "excluded.name"
        distinct = self._sql_distinct(
            "(" + ", ".join(f"organization.{name}" for name in merged) + ")",
            "(" + ", ".join(merged.values()) + ")")
        return f"""
            INSERT INTO organization (uid, source, source_id, {", ".join(_ORG_FIELDS)})
            SELECT {self._sql_uuid()}, :source, o.org_key,
                   {", ".join(f"o.{n}" for n in _ORG_FIELDS)}
            FROM bulk_orgs AS o WHERE true
            ON CONFLICT (source, source_id) DO UPDATE
            SET {", ".join(f"{name} = {value}" for name, value in merged.items())}
            WHERE {distinct}"""

    # dialect hooks of the bulk path
    def _bulk_load(self, conn: Connection, table: str, columns: Sequence[str],
                   rows: Iterable[tuple[Any, ...]]) -> int:
        """Create the temporary ``table`` and stream ``rows`` into it; the number of rows."""
        raise NotImplementedError

    def _bulk_list(self, values: Sequence[str]) -> str:
        """A code list as the staging table's text for it."""
        raise NotImplementedError

    def _bulk_stored(self, name: str) -> ColumnElement:
        """The stored value of content field ``name``, comparable with the staging column."""
        return _stored_value(name)

    def _bulk_insert(self, conn: Connection, source: str, changed_by: str, now: dt.datetime,
                     empty: bool) -> tuple[int, Callable[[], None]]:
        """Insert the staging rows that are new, each with version 1. Returns their number and
        what completes the indexes afterwards (run after the updates, in the same
        transaction). ``empty``: the resource table was empty, so its indexes may be dropped
        and built after the load."""
        raise NotImplementedError

    def _sql_point(self, lon: str, lat: str) -> str:
        raise NotImplementedError

    def _sql_uuid(self) -> str:
        raise NotImplementedError

    def _sql_json(self, expr: str) -> str:
        return expr

    def _sql_json_text(self, expr: str) -> str:
        """SQL: the JSON text of the SQL string ``expr`` (a quoted string, or ``null``)."""
        raise NotImplementedError

    def _sql_feature(self, head: str, org_name: str) -> str:
        """SQL: a stored Feature from a :func:`geojson.feature_head` and the organisation's
        stored name (the rest :func:`geojson.stored_feature` appends)."""
        return f"{head} || coalesce({self._sql_json_text(org_name)}, 'null') || '}}}}'"

    def _sql_distinct(self, a: str, b: str) -> str:
        """SQL: ``a`` and ``b`` differ, NULL counting as a value."""
        return f"{a} IS DISTINCT FROM {b}"

    # ---- possible duplicates -------------------------------------------------------------------
    def flag_duplicates(self, source: str, *, conn: Connection | None = None
                        ) -> list[dict[str, Any]]:
        """Flag resources of ``source`` that look like a resource of another source: within
        :data:`DUPLICATE_RADIUS_M` of each other (true points, also of confidential places) and
        names scoring at least :data:`DUPLICATE_MIN_SCORE` (:func:`name_score`). Stores each
        new pair as an open :class:`PossibleDuplicate` for moderation — nothing is merged —
        and returns them for the import report (``name``, ``other_name``, ``other_source``,
        ``distance_m``, ``score``, ``uid``, ``other_uid``). A pair is stored once: flagging
        again, or after a moderator dismissed the pair, adds nothing.

        One set-based query finds the pairs in reach through the spatial index, driven from
        the smaller side (a 1M-row source next to a small one probes the index for the small
        one); only those pairs are scored in Python. ``conn``: inside a caller's
        :meth:`transaction` (an import flags its pairs in its own transaction).
        """
        r = Resource
        live = r.status != "archived"

        def count(where: ColumnElement, cap: int) -> int:
            rows = select(literal(1)).where(where, live).limit(cap).subquery()
            return conn.execute(select(func.count()).select_from(rows)).scalar_one()

        with self._writing(conn) as conn:
            # Which side is smaller, counted no further than needed: a first import of 1M
            # rows with no other source costs two index probes, not two scans of the table
            # (SQLite: ~16 s inside the import's transaction). "<> source" as two ranges, so
            # that the (source, source_id) index serves it.
            theirs = count(or_(r.source < source, r.source > source), _DUPLICATE_COUNT_CAP)
            ours = count(r.source == source, theirs + 1) if theirs else 0
            if not ours:
                return []
            dlat = DUPLICATE_RADIUS_M / METRES_PER_DEG_LAT * 1.01  # 1 % margin: the ellipsoid
            rows = conn.execute(text(self._near_pairs_sql(drive_ours=ours <= theirs)),
                                {"source": source, "radius": DUPLICATE_RADIUS_M,
                                 "dlat": dlat}).all()
            now = dt.datetime.now(dt.timezone.utc)
            stored: list[dict[str, Any]] = []
            found: list[dict[str, Any]] = []
            for a_id, a_uid, a_name, b_id, b_uid, b_name, b_source, distance in rows:
                score = name_score(a_name, b_name)
                if score < DUPLICATE_MIN_SCORE:
                    continue
                pair = {"distance_m": round(float(distance), 1), "score": round(score, 1)}
                stored.append({"resource_a_id": min(a_id, b_id),
                               "resource_b_id": max(a_id, b_id), "status": "open",
                               "created_at": now, **pair})
                found.append({"name": a_name, "other_name": b_name, "other_source": b_source,
                              "uid": a_uid, "other_uid": b_uid, **pair})
            if stored:
                conn.execute(PossibleDuplicate.__table__.insert(), stored)
        return found

    def _near_pairs_sql(self, drive_ours: bool) -> str:
        """Pairs (ours, theirs) of live resources within ``:radius`` m of each other, not yet
        stored. The driving side's rows probe the spatial index of the other side around
        their true point; a confidential row's indexed point is only its grid cell, so
        confidential rows of the probed side drive their own probe, and confidential pairs are
        compared directly (they are few)."""
        def hidden(alias: str) -> str:
            return f"({alias}.location_confidential AND {alias}.exact_lat IS NOT NULL)"

        def point(alias: str) -> tuple[str, str]:
            return (f"CASE WHEN {hidden(alias)} THEN {alias}.exact_lon "
                    f"ELSE ST_X({alias}.geom) END",
                    f"CASE WHEN {hidden(alias)} THEN {alias}.exact_lat "
                    f"ELSE ST_Y({alias}.geom) END")

        (ax, ay), (bx, by) = point("a"), point("b")
        distance = self._sql_distance(ax, ay, bx, by)
        side = {"a": "a.source = :source", "b": "b.source <> :source"}
        drive, probe = ("a", "b") if drive_ours else ("b", "a")
        dx, dy = point(drive)
        px, py = point(probe)
        select_ = (f"SELECT a.id AS a_id, a.uid AS a_uid, a.name AS a_name, b.id AS b_id, "
                   f"b.uid AS b_uid, b.name AS b_name, b.source AS b_source, "
                   f"{distance} AS distance_m")
        live = "a.status <> 'archived' AND b.status <> 'archived'"
        return f"""
            SELECT * FROM (
                {select_} FROM resource AS {drive}
                JOIN resource AS {probe} ON {self._sql_window(probe, dx, dy)}
                WHERE {side[drive]} AND {side[probe]} AND {live} AND NOT {hidden(probe)}
                UNION ALL
                {select_} FROM resource AS {probe}
                JOIN resource AS {drive} ON {self._sql_window(drive, px, py)}
                WHERE {side[probe]} AND {side[drive]} AND {live} AND {hidden(probe)}
                  AND NOT {hidden(drive)}
                UNION ALL
                {select_} FROM resource AS a JOIN resource AS b ON {hidden("a")} AND {hidden("b")}
                WHERE {side["a"]} AND {side["b"]} AND {live}
            ) AS near
            WHERE distance_m <= :radius
              AND NOT EXISTS (SELECT 1 FROM possible_duplicate AS d
                              WHERE d.resource_a_id = near.a_id AND d.resource_b_id = near.b_id)
              AND NOT EXISTS (SELECT 1 FROM possible_duplicate AS d
                              WHERE d.resource_a_id = near.b_id AND d.resource_b_id = near.a_id)
            ORDER BY a_id, b_id"""

    def possible_duplicates(self, status: str | None = "open", *, limit: int = 1000
                            ) -> list[dict[str, Any]]:
        """Flagged pairs (``status`` or all), newest first, with both resources' names,
        sources and public ids — what moderators review."""
        pd = PossibleDuplicate
        a, b = Resource.__table__.alias("a"), Resource.__table__.alias("b")
        stmt = (select(pd.id, pd.status, pd.score, pd.distance_m, pd.created_at,
                       a.c.uid.label("uid"), a.c.name.label("name"), a.c.source.label("source"),
                       a.c.source_id.label("source_id"), a.c.status.label("listing_status"),
                       b.c.uid.label("other_uid"), b.c.name.label("other_name"),
                       b.c.source.label("other_source"), b.c.source_id.label("other_source_id"),
                       b.c.status.label("other_listing_status"))
                .join(a, a.c.id == pd.resource_a_id).join(b, b.c.id == pd.resource_b_id)
                .order_by(pd.created_at.desc(), pd.id.desc()).limit(limit))
        if status is not None:
            stmt = stmt.where(pd.status == status)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def resolve_duplicate(self, pair_id: int, *, keep: str | None, changed_by: str
                          ) -> dict[str, Any]:
        """A moderator's decision on an open pair: ``keep`` None dismisses it (they are two
        places); ``keep`` a public id of the pair merges it: the other listing is archived
        (a version by ``changed_by``) with its status locked, so that a re-import of its
        source reports a conflict instead of publishing it again. Returns the pair's new
        status and the archived uid. :class:`NotFound` for an unknown pair,
        :class:`InvalidParameter` for a decided pair or a ``keep`` not of the pair."""
        from ..errors import InvalidParameter, NotFound

        with self._orm(None) as session:
            pair = session.get(PossibleDuplicate, pair_id)
            if pair is None:
                raise NotFound(f"no possible duplicate #{pair_id}")
            if pair.status != "open":
                raise InvalidParameter("pair", f"#{pair_id} is {pair.status} already")
            a, b = pair.resource_a, pair.resource_b
            if keep is None:
                pair.status = "dismissed"
                return {"id": pair_id, "status": "dismissed", "archived": None}
            if keep not in (a.uid, b.uid):
                raise InvalidParameter("keep", f"{keep} is not one of the pair #{pair_id} "
                                               f"({a.uid}, {b.uid})")
            kept, other = (a, b) if keep == a.uid else (b, a)
            if kept.status != "published":
                # (merging into it would leave the place with no published listing)
                raise InvalidParameter("keep", f"{keep} is {kept.status}: keep the published "
                                               f"one, or dismiss the pair")
            if other.status != "archived":
                self._archive(session, other, changed_by)
            other.locked_fields = sorted({*(other.locked_fields or ()), "status"})
            pair.status = "merged"
            session.flush()
            self._fill_features(session.connection())
            return {"id": pair_id, "status": "merged", "archived": other.uid}

    def _sql_window(self, alias: str, x: str, y: str) -> str:
        """SQL: ``alias`` (a resource) lies in the window of ``:dlat`` degrees of latitude
        (and as many metres of longitude) around (x, y), read through the spatial index."""
        raise NotImplementedError

    def _sql_distance(self, x1: str, y1: str, x2: str, y2: str) -> str:
        """SQL: metres between two lon/lat points, on the ellipsoid."""
        raise NotImplementedError


#: Resources of different sources this close (metres) are compared by name.
DUPLICATE_RADIUS_M = 50.0
#: :func:`name_score` from which two nearby resources are a possible duplicate. 85 keeps
#: "Haus der Jugend Osdorfer Born" ~ "Haus d. Jugend Osdorfer-Born" (96), "Kulturhof Dulsberg"
#: ~ "Kulturhof Dulsberg e.V." (100), "Goldbekhaus" ~ "Goldbek Haus" (96), and leaves out
#: "Jugendclub Burgwedel" ~ "Jugendzentrum Burgwedel" (79), "Elternschule Harburg" ~
#: "Elternschule Wilhelmsburg" (80), "Bücherhalle Kirchdorf" ~ "Haus der Jugend Kirchdorf" (65).
DUPLICATE_MIN_SCORE = 85.0
# flag_duplicates counts each side up to this many rows: beyond it, which side drives the
# pair search matters little.
_DUPLICATE_COUNT_CAP = 100_000


def name_score(a: str, b: str) -> float:
    """Similarity 0-100 of two names: rapidfuzz's token set ratio of the folded names (case,
    accents, umlaut spellings and punctuation do not count; nor do words only one name has,
    such as "e.V." or the Stadtteil)."""
    return fuzz.token_set_ratio(fold(a), fold(b), processor=default_process)


#: Above this many records the import pipeline writes with :meth:`Store.bulk_upsert`; below it
#: the ORM path is as fast and simpler to follow.
BULK_THRESHOLD = 5_000
#: Content fields stored in a column of the same name.
PLAIN_FIELDS: tuple[str, ...] = tuple(f for f in CONTENT_FIELDS
                                      if f not in ("lat", "lon", "organization"))
#: The staging table of the bulk path: ``key`` (input position, or resource id for changes),
#: the content fields as columns (``organization`` = its name), the organisation's key (or id,
#: for changes), the slug, the public point of a confidential location, the version's data
#: and diff (JSON text), and for a row that may be new its uid and Feature head.
BULK_COLUMNS: tuple[str, ...] = ("key", "source_id", *CONTENT_FIELDS, "org_key", "org_id",
                                 "slug", "glon", "glat", "data", "diff", "uid", "feature")
_ORG_FIELDS = ("name", "description", "website", "email", "phone")
_LIST_INDEXES = tuple(CONTENT_FIELDS.index(f) for f in ("categories", "audiences", "languages"))
_TRANSLATIONS_INDEX = CONTENT_FIELDS.index("translations")
_VERIFIED_INDEX = CONTENT_FIELDS.index("last_verified")
_STAGING = table("bulk_staging", *(column(name) for name in BULK_COLUMNS))
# Stored Features built per statement by Store._fill_features.
_FILL_BATCH = 5_000


class _Clock:
    """Adds the seconds since the previous mark to ``timings[phase]`` (when timings is given)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.mark = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[phase] = self.timings.get(phase, 0.0) + now - self.mark
        self.mark = now


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # keys that are not strings (json.dumps would write them as strings)
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _round7(value: float | None) -> float | None:
    return None if value is None else round(value, 7)


def _stored_value(name: str) -> ColumnElement:
    """Content field ``name`` of a stored resource, as :meth:`Store.snapshot` reads it: the
    exact point of a confidential location, the organisation's name."""
    r = Resource
    if name in ("lat", "lon"):
        exact = r.exact_lat if name == "lat" else r.exact_lon
        shown = func.ST_Y(r.geom) if name == "lat" else func.ST_X(r.geom)
        return case((and_(r.location_confidential, r.exact_lat.isnot(None)), exact),
                    else_=shown)
    if name == "organization":
        return Organization.name
    return getattr(r, name)


def _now_param(now: dt.datetime) -> Any:
    return bindparam("now", now, type_=DateTime(timezone=True))


def _point_of(res: Resource) -> tuple[float | None, float | None]:
    geom = res.geom
    if geom is None:
        return None, None
    if isinstance(geom, str):
        match = re.search(r"POINT\s*\(([-\d.eE]+) ([-\d.eE]+)\)", geom)
        return (round(float(match.group(2)), 7), round(float(match.group(1)), 7))
    from geoalchemy2.shape import to_shape

    point = to_shape(geom)
    return round(point.y, 7), round(point.x, 7)


#: What replaces an erased text (``Store.erase_text``): the same in every language.
ERASED = "[…]"
#: The listing fields ``Store.erase_text`` looks into (free text and contacts).
_ERASABLE = ("name", "description", "address", "opening_hours", "phone", "email", "website",
             "translations")
#: Fields that are emptied when they hold an erased text (a part of a number or an address
#: is no use, nor is a website with a hole).
_CONTACT_FIELDS = ("phone", "email", "website")
_ERASE_BATCH = 2000


@dataclass
class ErasureReport:
    """What :meth:`Store.erase_text` changed: listings and organisations (uid, name after,
    fields), the sources whose credits held the text, and how many earlier versions did."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    organizations: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    versions: int = 0


_PHONE_LIKE = re.compile(r"\+?[\d\s/().-]+")
_PHONE_SEPARATORS = r"[\s/().-]*"


def _needle_pattern(needles: Sequence[str]) -> re.Pattern[str]:
    """One pattern for the texts to erase. A number (six digits or more: a phone number) is
    found however it is written ("040 1234567", "040/123 45 67", "(040) 1234567"); "ß"
    matches "ss" and the other way round; any run of white space matches one space."""
    words = sorted({" ".join(n.split()) for n in needles if n and n.strip()}, key=len,
                   reverse=True)
    if not words:
        raise ValueError("nothing to erase")
    alternatives = []
    for word in words:
        digits = re.sub(r"\D", "", word)
        if _PHONE_LIKE.fullmatch(word) and len(digits) >= 6:
            alternatives.append(r"[+(]?" + _PHONE_SEPARATORS.join(digits))
            continue
        pieces = [re.escape(unicodedata.normalize("NFC", part)) for part in word.split(" ")]
        pattern = r"\s+".join(pieces)
        alternatives.append(re.sub(r"ß|ss", "(?:ß|ss)", pattern, flags=re.IGNORECASE))
    # a match starts and ends at a word's edge ("Eva" is not in "Evangelische", "040 123" not
    # in "040 1234", "anna@x.org" not in "joanna@x.org")
    return re.compile(rf"(?<![\w+])(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


def _holds(value: Any, pattern: re.Pattern[str]) -> bool:
    if isinstance(value, str):
        return pattern.search(unicodedata.normalize("NFC", value)) is not None
    if isinstance(value, dict):
        return any(_holds(v, pattern) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, pattern) for v in value)
    return False


def _erased(value: Any, pattern: re.Pattern[str]) -> tuple[Any, bool]:
    """``value`` (JSON: text, lists, objects) with the text replaced; and whether it was in."""
    if isinstance(value, str):
        composed = unicodedata.normalize("NFC", value)  # "Mu\u0308ller" is "Müller"
        out = pattern.sub(ERASED, composed)
        return (out, True) if out != composed else (value, False)
    if isinstance(value, dict):
        pairs = {k: _erased(v, pattern) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    if isinstance(value, list):
        items = [_erased(v, pattern) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def _erased_field(value: Any, pattern: re.Pattern[str], *, required: bool = False,
                  contact: bool = False) -> tuple[Any, bool]:
    """A stored field without the text: emptied when the text is all of it (``required``:
    :data:`ERASED`) or when it is a ``contact`` field that holds it, else the text
    replaced."""
    composed = unicodedata.normalize("NFC", value) if isinstance(value, str) else None
    if composed is not None and (pattern.fullmatch(composed.strip())
                                 or (contact and pattern.search(composed))):
        return (ERASED if required else None), True
    return _erased(value, pattern)  # a longer text, translations: {lang: {field: text}}


def _diff(source_id: str, before: Mapping[str, Any], data: dict[str, Any],
          locked: Iterable[str] | None, conflicts: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The content fields in which ``data`` differs from ``before``, as {field: [old, new]}.

    The one comparison of both write paths (:meth:`Store.upsert`, :meth:`Store.bulk_upsert`):
    a field a moderator ``locked`` keeps its ``before`` value (written back into ``data``) and
    is reported in ``conflicts`` instead of the diff.
    """
    locked = set(locked or ())
    diff: dict[str, list[Any]] = {}
    for name in CONTENT_FIELDS:
        if _same(before.get(name), data.get(name)):
            continue
        if name in locked:
            conflicts.append({"source_id": source_id, "field": name,
                              "kept": _jsonable(before.get(name)),
                              "incoming": _jsonable(data.get(name))})
            data[name] = before.get(name)
            continue
        diff[name] = [_jsonable(before.get(name)), _jsonable(data.get(name))]
    return diff


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) < 1e-7
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


__all__ = ["Store", "Hit", "SearchResult", "UpsertReport", "ErasureReport", "CONTENT_FIELDS",
           "ERASED", "approximate", "window", "slugify", "literal"]

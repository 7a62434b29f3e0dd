"""PostGIS specifics: KNN ``<->`` on the GiST index, ``text[]`` overlap on GIN, geography metres,
full text on the ``search_vector`` column (GIN)."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

import orjson
from geoalchemy2 import Geometry
from sqlalchemy import (ColumnElement, Float, Integer, LargeBinary, Select, String, Text,
                        TypeDecorator, any_,
                        bindparam, cast, func, literal, literal_column, or_, select,
                        text, true, type_coerce)
from sqlalchemy.dialects.postgresql import ARRAY, REGCONFIG, TSQUERY
from sqlalchemy.engine import Connection

from ..models import STATUSES, Resource
from ..search import SearchQuery
from .base import _UNREAD, PLAIN_FIELDS, Hit, Store, _now_param, _Plan, _point


#: Nearest-k reads 2k + this many sphere-nearest matches first (_knn_select).
KNN_SLACK = 8
#: An upper bound of ellipsoidal over spherical distance. On the ellipsoid a length element is
#: M dphi along a meridian and N cos(phi) dlambda along a parallel, on the sphere R dphi and
#: R cos(phi) dlambda; so any path is at most max(M, N) / R longer on the ellipsoid, and the
#: geodesic is no longer than the image of the great circle: at most N(pole) / R =
#: a / (sqrt(1 - e^2) R) = 6,399,594 / 6,371,009 = 1.00449 times the spherical distance.
#: k matches within spherical distance s therefore lie within ellipsoidal distance
#: 1.005 s: a reach that holds the true k nearest (_knn_select, _knn_radius).
SPHERE_TO_ELLIPSOID = 1.005
#: Likewise the ellipsoid is at least min(M, N) / R = M(equator) / R = a (1 - e^2) / R =
#: 0.99441 times the sphere, so a place within ellipsoidal distance 1.005 s lies within
#: spherical distance 1.005 s / 0.99441 < 1.011 s (_knn_select).
SPHERE_WINDOW = 1.011
#: A place within ellipsoidal distance r is within spherical distance r / 0.99441 (see
#: above) < 1.006 r (_radius_select).
RADIUS_ON_SPHERE = 1.006


class PostGISStore(Store):
    backend = "postgis"

    def _codes_overlap(self, column: Any, codes: Any) -> ColumnElement:
        # varchar(32)[] && varchar(32)[]: the GIN index's operator
        return type_coerce(column, ARRAY(String(32))).overlap(cast(codes, ARRAY(String(32))))

    def _list_value(self, values: Sequence[str]) -> Any:
        return list(values)

    def _list_param(self, name: str, value: Any) -> Any:
        return bindparam(name, value, type_=ARRAY(Text))

    def _in_list(self, column: Any, values: Any) -> ColumnElement:
        return column == any_(values)

    def _snapshot_connection(self) -> Connection:
        return self.engine.connect().execution_options(isolation_level="REPEATABLE READ",
                                                       postgresql_readonly=True)

    def _connect_for_reading(self) -> Connection:
        # Autocommit: no BEGIN and ROLLBACK round trips around a search (each statement
        # reads a snapshot of its own, as under READ COMMITTED anyway).
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _run_planned_per_call(self, conn: Any, plan: _Plan, values: Mapping[str, Any]
                              ) -> list[Any]:
        # psycopg prepares a statement on its fifth run, and PostgreSQL then plans it once for
        # all values ("generic plan"). For a bbox it cannot know how many rows the box holds,
        # guesses one, and reads the GiST index's matches in index order, one random heap
        # page at a time; planned with the box, it reads them in table order (bitmap heap
        # scan): 5.0 instead of 7.9 ms for 1,300 rows at 100k, more where the pages are not
        # cached. Planning costs ~0.5 ms. So these statements are never prepared.
        driver = conn.connection.dbapi_connection
        threshold = driver.prepare_threshold
        driver.prepare_threshold = None
        try:
            return plan.run(conn, values)
        finally:
            driver.prepare_threshold = threshold

    def _feature_bytes(self) -> ColumnElement:
        # convert_to, not ::bytea (that cast reads backslashes, which JSON text has, as
        # escapes); fetched in binary format (store.base._execute) the bytes arrive as they are.
        return func.convert_to(Resource.feature, literal("UTF8"), type_=LargeBinary)

    def _public_columns(self) -> list[Any]:
        # translations (jsonb) as text, parsed by orjson: psycopg's jsonb loader (the stdlib
        # json) costs more than the rest of a row.
        as_text = type_coerce(cast(Resource.translations, Text), _JsonText()).label(
            "translations")
        return [as_text if column is Resource.translations else column
                for column in super()._public_columns()]

    def _reader(self, type_: Any) -> Callable[[Any], Any] | None:
        return orjson.loads if isinstance(type_, _JsonText) else None

    def _nearest(self, conn: Any, query: SearchQuery, params: dict[str, Any],
                 values: dict[str, Any]) -> tuple[list[Hit], Any]:
        lat, lon = query.near
        values.update(lat=lat, lon=lon)
        if query.radius is not None:
            values["radius"] = query.radius
            plan = self._plan(("radius", *sorted(params)), lambda: self._radius_select(params))
            rows = plan.run(conn, values)
            return self._hits(conn, rows, distance=True), (rows[0][-1] if rows else _UNREAD)
        k = query.offset + query.limit + 1
        n = 2 * k + KNN_SLACK
        while True:
            values.update(k=k, n=n)
            # Without filters whose selectivity matters, the statuses and row counts are
            # written into the SQL: PostgreSQL then settles on one generic plan for the
            # prepared statement and skips planning (about half of the query's time). As
            # parameters, their unknown values make the generic plan look costly, and it
            # keeps planning every call.
            fixed = None
            if set(params) == {"statuses"} and set(query.statuses) <= set(STATUSES):
                fixed = (k, n, query.limit + 1, query.offset, tuple(query.statuses))
            plan = self._plan(("near", *sorted(params), fixed),
                              lambda: self._knn_select(params, fixed))
            rows = plan.run(conn, values)
            if not rows or rows[0][-1]:
                break
            n *= 4  # more matches lie about as near as the k-th than n held: read more
        return (self._hits(conn, [row[:-1] for row in rows], distance=True),
                (rows[0][-2] if rows else _UNREAD))

    def _knn_select(self, params: dict[str, Any],
                    fixed: tuple[int, int, int, int, tuple[str, ...]] | None = None) -> Select:
        """Nearest-k, exact on the ellipsoid, in one statement that reads about k rows
        wherever the point lies.

        1. KNN on the sphere: the ``n`` matches nearest by great-circle distance, read in that
           order from the GiST index on ``geography(geom)`` (migration 0007; PostGIS's
           geography ``<->`` is the spherical distance), ids and distances only.
        2. The k-th of them, ``s``: k matches lie within ellipsoidal distance
           ``s`` x :data:`SPHERE_TO_ELLIPSOID`, so the true k nearest do; and any place that
           near is within spherical distance ``s`` x :data:`SPHERE_WINDOW`.
        3. Those of the ``n`` within that spherical bound are joined to their rows and
           ordered by the ellipsoidal distance (then id): the page.

        The last column tells whether the ``n`` held every match within the bound (fewer
        than ``n`` matches, or the n-th lies beyond it); if not, :meth:`_nearest` asks again
        with more. The planar KNN on ``geom`` this replaces needed 4k candidates (degrees
        overrate east-west distances 1.7x in Hamburg) and then a box around the reach, which
        at the edge of the city held thousands of rows of a dense neighbour for ten (100 ms
        at 1M resources). ``fixed``: (k, n, limit, offset, statuses) as literals (statuses:
        words of ``STATUSES``)."""
        r = Resource
        if fixed is None:
            k, n, limit, offset = (bindparam("k", 1, type_=Integer),
                                   bindparam("n", 1, type_=Integer),
                                   bindparam("limit", 1, type_=Integer),
                                   bindparam("offset", 0, type_=Integer))
            where = self._where(params)
        else:
            k, n, limit, offset = (literal_column(str(int(v))) for v in fixed[:4])
            assert set(fixed[4]) <= set(STATUSES)
            where = [r.status == any_(literal_column(f"'{{{','.join(fixed[4])}}}'::text[]"))]
        point, _lat = _param_point()
        sphere = _sphere_knn(r.geom, point)
        knn = (select(r.id.label("kid"), sphere.label("s")).where(*where).order_by(sphere)
               .limit(n).cte("knn").prefix_with("MATERIALIZED"))
        kth = (select(knn.c.s).order_by(knn.c.s).offset(k - 1).limit(1)
               .scalar_subquery())
        # Fewer than k matches: all of them (none is beyond the last).
        info = (select(func.coalesce(kth * SPHERE_WINDOW, func.max(knn.c.s)).label("b"),
                       func.max(knn.c.s).label("last"), func.count().label("got"))
                .select_from(knn).cte("info"))
        complete = or_(info.c.got < n, info.c.last > info.c.b).label("complete")
        distance = _geodesic(r.geom, point)
        return (self._public_select()
                .add_columns(distance.label("distance_m"), self._newest_column(), complete)
                .select_from(knn.join(r, r.id == knn.c.kid).join(info, true()))
                .where(knn.c.s <= info.c.b)
                .order_by(distance, r.id).limit(limit).offset(offset))

    def _radius_select(self, params: dict[str, Any]) -> Select:
        """The matches within ``radius`` metres (on the ellipsoid), nearest first. The
        geography index (migration 0007) finds those within the spherical distance that can
        hold them (radius / 0.99441, see :data:`SPHERE_WINDOW`): a cap of the sphere, where a
        box in degrees would also read its corners (beside a dense area, most of its rows)."""
        r = Resource
        point, _lat = _param_point()
        distance = _geodesic(r.geom, point)
        radius = bindparam("radius", 0.0, type_=Float)
        return (self._public_select()
                .add_columns(distance.label("distance_m"), self._newest_column())
                .where(*self._where(params),
                       func.ST_DWithin(func.geography(r.geom), func.geography(point),
                                       radius * RADIUS_ON_SPHERE + 0.01, False),
                       distance <= radius)
                .order_by(distance, r.id)
                .limit(bindparam("limit", 1, type_=Integer))
                .offset(bindparam("offset", 0, type_=Integer)))

    def _distance_m(self, lon: float, lat: float, geom: Any = None) -> ColumnElement:
        geom = Resource.geom if geom is None else geom
        return func.ST_Distance(func.geography(geom), func.geography(_point(lon, lat)))

    def _index_window(self, box: tuple[float, float, float, float]) -> ColumnElement:
        return Resource.geom.op("&&")(func.ST_MakeEnvelope(*box, 4326))

    def _knn_radius(self, conn: Any, lat: float, lon: float, k: int,
                    where: list[ColumnElement]) -> float | None:
        # The k sphere-nearest matches (KNN on the geography index): they lie within
        # ellipsoidal distance SPHERE_TO_ELLIPSOID x the k-th, so the true k nearest do
        # (see _knn_select).
        sphere = _sphere_knn(Resource.geom, _point(lon, lat))
        nearest = select(sphere.label("d")).where(*where).order_by(sphere).limit(k).subquery()
        radius = conn.execute(select(func.max(nearest.c.d))).scalar()
        return None if radius is None else float(radius) * SPHERE_TO_ELLIPSOID + 0.01

    def _point_in(self, polygon: Any, x: Any, y: Any) -> ColumnElement:
        return func.ST_Intersects(polygon, func.ST_SetSRID(func.ST_MakePoint(x, y), 4326))

    def _resource_window(self, resource: Any, polygon: Any) -> ColumnElement:
        return resource.c.geom.op("&&")(polygon)

    def _unbounded(self, conn: Any) -> None:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")

    def _one_of(self, column: Any, values: Sequence[str]) -> ColumnElement:
        return column == any_(literal(list(values), ARRAY(Text)))

    def _text_value(self, conn: Any, text: str) -> str | None:
        # The query goes through the very function that built the documents
        # (mapservice_fold, migration 0002) and the same 'simple' parser, so both sides are
        # folded alike by construction. Its lexemes become a prefix AND query; they are quoted
        # as tsquery literals, so no input can be read as tsquery syntax. The tsquery is
        # built in a round trip of its own (on the search's connection) and handed to the
        # search as a constant: the planner then estimates from the column's statistics
        # whether the GIN index pays (a subquery would leave it guessing). (PostgreSQL text
        # cannot hold NUL.)
        def build() -> Select:
            folded = func.mapservice_fold(bindparam("text", "", type_=String))
            lexemes = func.unnest(func.to_tsvector(literal("simple", REGCONFIG), folded)
                                  ).table_valued("lexeme")
            quoted = func.replace(func.replace(lexemes.c.lexeme, "\\", "\\\\"), "'", "''")
            return (select(func.string_agg(literal("'") + quoted + literal("':*"),
                                           literal(" & ")))
                    .select_from(lexemes))

        rows = self._plan(("tsquery",), build).run(conn, {"text": text.replace("\x00", " ")})
        return rows[0][0]  # None: no word in the text (q="*")

    def _text_match(self, value: Any) -> ColumnElement:
        return literal_column("resource.search_vector").op("@@")(cast(value, TSQUERY))

    # ---- bulk path (Store.bulk_upsert) ---------------------------------------------------
    def _bulk_load(self, conn: Connection, table: str, columns: Sequence[str],
                   rows: Iterable[tuple[Any, ...]]) -> int:
        # COPY streams the rows while Python prepares the next ones: the server parses on the
        # second core. A temporary table is never WAL-logged.
        spec = ", ".join(f"{name} {_BULK_TYPES.get(name, 'text')}" for name in columns)
        # Memory for the merge's hash joins over a million rows (instead of spilling to disk).
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        # A second bulk load in the same transaction finds the first one's table.
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{table}")
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {table} ({spec}) ON COMMIT DROP")
        count = 0
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for count, row in enumerate(rows, 1):
                copy.write_row(row)
        # The merge joins need the table's size and the keys' distribution; the other columns'
        # statistics would cost a second or more of sampling for nothing.
        keys = [name for name in ("key", "source_id", "org_key") if name in columns]
        conn.exec_driver_sql(f"ANALYZE {table} ({', '.join(keys)})")
        return count

    def _bulk_stored(self, name: str) -> ColumnElement:
        stored = super()._bulk_stored(name)
        # varchar(32)[] has no = with the staging table's text[]
        return cast(stored, ARRAY(Text)) if name in _CODE_LISTS else stored

    def _bulk_list(self, values: Sequence[str]) -> str:
        # A text[] literal; every element quoted, so none can read as NULL.
        if not values:
            return "{}"
        inner = '","'.join(values)
        if "\\" in inner or inner.count('"') != 2 * (len(values) - 1):  # rare: escape
            return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                  for v in values) + "}"
        return '{"' + inner + '"}'

    def _bulk_insert(self, conn: Connection, source: str, changed_by: str, now: dt.datetime,
                     empty: bool) -> tuple[int, Callable[[], None]]:
        columns = (f"uid, source, source_id, {', '.join(PLAIN_FIELDS)}, slug, organization_id, "
                   "exact_lat, exact_lon, geom, locked_fields, version, created_at, updated_at, "
                   "feature")
        point = self._sql_point("coalesce(s.glon, s.lon)", "coalesce(s.glat, s.lat)")
        values = (f"coalesce(s.uid, {self._sql_uuid()}), :source, s.source_id, "
                  f"{', '.join(f's.{name}' for name in PLAIN_FIELDS)}, s.slug, o.id, "
                  "CASE WHEN s.location_confidential THEN s.lat END, "
                  "CASE WHEN s.location_confidential THEN s.lon END, "
                  f"{point}, '[]', 1, :now, :now, {self._sql_feature('s.feature', 'o.name')}")
        rows = ("FROM bulk_staging AS s LEFT JOIN organization AS o "
                "ON o.source = :source AND o.source_id = s.org_key")
        version = ("INSERT INTO resource_version (resource_id, version, changed_by, changed_at, "
                   "data, diff) SELECT {id}, 1, :changed_by, :now, s.data::json, '{{}}'")
        params = {"source": source, "changed_by": changed_by}
        rebuild: list[str] = []
        if empty:
            # Into an empty table, indexes and constraints (but the primary keys) are built
            # after the load: one sort per index instead of a million index insertions, one
            # anti-join per foreign key instead of a lookup per row. Every staging row is new:
            # with ids reserved from the sequence (the dropped indexes lock the table), the
            # versions come straight from the staging rows, without joining a million back.
            rebuild = self._drop_indexes(conn)
            params["base"] = conn.exec_driver_sql("""
                SELECT setval(s.seq, nextval(s.seq) + greatest(n - 1, 0)) - greatest(n - 1, 0)
                FROM (SELECT pg_get_serial_sequence('resource', 'id')::regclass AS seq,
                             (SELECT count(*) FROM bulk_staging) AS n) AS s""").scalar_one()
            # The full-text document is most of the cost of a first load (~35 us a row in the
            # trigger, on one core): compute the documents first, in a parallel query, and
            # insert them with the rows while the trigger is off. The indexes are dropped, so
            # the table is locked already; both statements are undone with the transaction.
            docs = self._bulk_documents(conn, source)
            conn.exec_driver_sql(f"ALTER TABLE resource DISABLE TRIGGER {_SEARCH_TRIGGER}")
            created = conn.execute(text(
                f"INSERT INTO resource (id, {columns}, search_vector) "
                f"SELECT :base + s.key, {values}, d.doc {rows} JOIN {docs} AS d ON d.key = s.key "
                # In spatial order (a geohash is a Z-order curve): the rows of a map window
                # or a nearest-k reach then share heap pages instead of each being a page of
                # its own (1M rows, SQL p95: nearest-10 2.9 -> 1.9 ms, bbox-1000 52 -> 32 ms).
                f"ORDER BY ST_GeoHash({point}, 12)"
            ).bindparams(_now_param(now)), params).rowcount
            conn.exec_driver_sql(f"ALTER TABLE resource ENABLE TRIGGER {_SEARCH_TRIGGER}")
            conn.exec_driver_sql(f"DROP TABLE {docs}")
            conn.execute(text(version.format(id=":base + s.key") + " FROM bulk_staging AS s")
                         .bindparams(_now_param(now)), params)
        else:
            created = conn.execute(text(f"""
                WITH new AS (
                    INSERT INTO resource ({columns}) SELECT {values} {rows}
                    WHERE NOT EXISTS (SELECT FROM resource AS r
                                      WHERE r.source = :source AND r.source_id = s.source_id)
                    RETURNING id, source_id)
                {version.format(id="new.id")}
                FROM new JOIN bulk_staging AS s ON s.source_id = new.source_id
                """).bindparams(_now_param(now)), params).rowcount

        def finish() -> None:
            if not rebuild:
                return
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            for statement in rebuild:
                conn.exec_driver_sql(statement)
            # A table loaded in one go has no statistics yet: plan the next queries well.
            conn.exec_driver_sql("ANALYZE resource, resource_version (resource_id), organization")

        return created, finish

    @staticmethod
    def _bulk_documents(conn: Connection, source: str) -> str:
        """A table (key, doc) of the full-text documents of the staging rows, exactly as the
        trigger of migration 0002 computes them (``mapservice_document`` of the name, the
        description and the stored organisation's name); its name.

        ``CREATE TABLE AS`` runs in parallel on all cores, but parallel workers cannot read the
        session's temporary tables: the three input columns are first copied into an unlogged
        table (a tenth of the documents' cost). Both tables get names of their own, so that
        imports into different sources can run side by side, and live only as long as the
        transaction if it fails."""
        suffix = uuid.uuid4().hex[:12]
        parts, docs = f"mapservice_bulk_parts_{suffix}", f"mapservice_bulk_docs_{suffix}"
        conn.exec_driver_sql(f"CREATE UNLOGGED TABLE {parts} "
                             "(key bigint, name text, description text, org_name text)")
        conn.execute(text(f"""
            INSERT INTO {parts} SELECT s.key, s.name, s.description, o.name
            FROM bulk_staging AS s LEFT JOIN organization AS o
                 ON o.source = :source AND o.source_id = s.org_key"""), {"source": source})
        conn.exec_driver_sql(f"ANALYZE {parts}")  # the planner's row count decides on workers
        conn.exec_driver_sql(f"""
            CREATE UNLOGGED TABLE {docs} AS
            SELECT key, mapservice_document(name, description, org_name) AS doc FROM {parts}""")
        conn.exec_driver_sql(f"DROP TABLE {parts}")
        conn.exec_driver_sql(f"ANALYZE {docs}")
        return docs

    @staticmethod
    def _drop_indexes(conn: Connection) -> list[str]:
        """Drop the indexes and the unique and foreign-key constraints of ``resource`` and
        ``resource_version`` (not the primary keys); the statements that recreate them."""
        rows = conn.exec_driver_sql("""
            SELECT 'DROP INDEX ' || i.indexrelid::regclass, pg_get_indexdef(i.indexrelid), 1
            FROM pg_index AS i
            WHERE i.indrelid IN ('resource'::regclass, 'resource_version'::regclass)
              AND NOT i.indisprimary
              AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
            UNION ALL
            SELECT 'ALTER TABLE ' || c.conrelid::regclass || ' DROP CONSTRAINT '
                       || quote_ident(c.conname),
                   'ALTER TABLE ' || c.conrelid::regclass || ' ADD CONSTRAINT '
                       || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid),
                   CASE c.contype WHEN 'u' THEN 2 ELSE 3 END
            FROM pg_constraint AS c
            WHERE c.conrelid IN ('resource'::regclass, 'resource_version'::regclass)
              AND c.contype IN ('u', 'f')
            ORDER BY 3""").all()
        for drop, _create, _order in reversed(rows):
            conn.exec_driver_sql(drop)
        return [create for _drop, create, _order in rows]

    def _sql_point(self, lon: str, lat: str) -> str:
        return f"ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326)"

    def _write_features(self, conn: Any, ids: list[int], features: list[str]) -> None:
        # One statement per batch (executemany sends one UPDATE per row).
        conn.execute(text("UPDATE resource AS r SET feature = v.feature "
                          "FROM unnest(CAST(:ids AS integer[]), CAST(:features AS text[])) "
                          "AS v(id, feature) WHERE r.id = v.id"),
                     {"ids": ids, "features": features})

    def _sql_json_text(self, expr: str) -> str:
        return f"to_json({expr})::text"

    def _sql_uuid(self) -> str:
        return "gen_random_uuid()::text"

    def _sql_json(self, expr: str) -> str:
        return f"CAST({expr} AS json)"

    def _sql_window(self, alias: str, x: str, y: str) -> str:
        dlon = f"(:dlat / greatest(cos(radians({y})), 0.01))"
        return (f"{alias}.geom && ST_MakeEnvelope({x} - {dlon}, {y} - :dlat, {x} + {dlon}, "
                f"{y} + :dlat, 4326)")

    def _sql_distance(self, x1: str, y1: str, x2: str, y2: str) -> str:
        return (f"ST_Distance(ST_SetSRID(ST_MakePoint({x1}, {y1}), 4326)::geography, "
                f"ST_SetSRID(ST_MakePoint({x2}, {y2}), 4326)::geography)")


class _JsonText(TypeDecorator):
    """JSON that arrives as text, parsed by orjson."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else orjson.loads(value)


def _param_point() -> tuple[ColumnElement, Any]:
    """The point of parameters ``lon`` and ``lat`` (and the ``lat`` parameter)."""
    lat = bindparam("lat", 0.0, type_=Float)
    point = func.ST_SetSRID(func.ST_MakePoint(bindparam("lon", 0.0, type_=Float), lat), 4326)
    return type_coerce(point, Geometry("POINT", srid=4326)), lat


def _geodesic(geom: Any, point: Any) -> ColumnElement:
    """Metres between ``geom`` and ``point`` on the ellipsoid (what ``_distance_m`` measures)."""
    return func.ST_Distance(func.geography(geom), func.geography(point))


def _sphere_knn(geom: Any, point: Any) -> ColumnElement:
    """PostGIS's geography ``<->``: the spherical distance in metres, ordered by the GiST index
    on ``geography(geom)`` (migration 0007)."""
    return func.geography(geom).op("<->", return_type=Float)(func.geography(point))


_CODE_LISTS = ("categories", "audiences", "languages")
# Column types of the bulk staging tables (text unless named here).
#: The trigger of migration 0002 that keeps ``resource.search_vector`` current.
_SEARCH_TRIGGER = "resource_search_vector"
_BULK_TYPES = {"key": "bigint", "org_id": "integer", "translations": "jsonb",
               "categories": "text[]", "audiences": "text[]", "languages": "text[]",
               "lat": "float8", "lon": "float8", "glon": "float8", "glat": "float8",
               "location_confidential": "boolean", "last_verified": "date"}

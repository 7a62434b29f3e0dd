"""PostGIS specifics: KNN ``<->`` on the GiST index, ``text[]`` overlap on GIN, geography metres,
full text on the ``search_vector`` column (GIN)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import (ColumnElement, String, Text, any_, cast, false, func, literal,
                        literal_column, select, text, type_coerce)
from sqlalchemy.dialects.postgresql import ARRAY, REGCONFIG, TSQUERY
from sqlalchemy.engine import Connection

from ..models import Resource
from .base import PLAIN_FIELDS, Store, _now_param, _point


class PostGISStore(Store):
    backend = "postgis"

    def _codes_overlap(self, column: Any, codes: Sequence[str]) -> ColumnElement:
        return type_coerce(column, ARRAY(String(32))).overlap(
            literal(list(codes), ARRAY(String(32))))

    def _distance_m(self, lon: float, lat: float, geom: Any = None) -> ColumnElement:
        geom = Resource.geom if geom is None else geom
        return func.ST_Distance(func.geography(geom), func.geography(_point(lon, lat)))

    def _index_window(self, box: tuple[float, float, float, float]) -> ColumnElement:
        return Resource.geom.op("&&")(func.ST_MakeEnvelope(*box, 4326))

    def _knn_radius(self, conn: Any, lat: float, lon: float, k: int,
                    where: list[ColumnElement]) -> float | None:
        # The k nearest by planar degrees (index-ordered KNN scan) are k matches within the
        # largest of their true distances: that radius holds the true k nearest in metres.
        nearest = (select(Resource.geom).where(*where)
                   .order_by(Resource.geom.op("<->")(_point(lon, lat))).limit(k).subquery())
        radius = conn.execute(select(func.max(self._distance_m(lon, lat, nearest.c.geom)))
                              ).scalar()
        return None if radius is None else float(radius) + 0.01

    def _point_in(self, polygon: Any, x: Any, y: Any) -> ColumnElement:
        return func.ST_Intersects(polygon, func.ST_SetSRID(func.ST_MakePoint(x, y), 4326))

    def _resource_window(self, resource: Any, polygon: Any) -> ColumnElement:
        return resource.c.geom.op("&&")(polygon)

    def _unbounded(self, conn: Any) -> None:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")

    def _one_of(self, column: Any, values: Sequence[str]) -> ColumnElement:
        return column == any_(literal(list(values), ARRAY(Text)))

    def _text_match(self, text: str) -> ColumnElement:
        # The query goes through the very function that built the documents
        # (mapservice_fold, migration 0002) and the same 'simple' parser, so both sides are
        # folded alike by construction. Its lexemes become a prefix AND query; they are quoted
        # as tsquery literals, so no input can be read as tsquery syntax. The tsquery is
        # built in a round trip of its own and handed to the search as a constant: the planner
        # then estimates from the column's statistics whether the GIN index pays (a subquery
        # would leave it guessing). (PostgreSQL text cannot hold NUL.)
        folded = func.mapservice_fold(literal(text.replace("\x00", " "), String))
        lexemes = func.unnest(func.to_tsvector(literal("simple", REGCONFIG), folded)
                              ).table_valued("lexeme")
        quoted = func.replace(func.replace(lexemes.c.lexeme, "\\", "\\\\"), "'", "''")
        build = select(func.string_agg(literal("'") + quoted + literal("':*"), literal(" & ")))
        with self.engine.connect() as conn:
            tsquery = conn.execute(build.select_from(lexemes)).scalar()
        if tsquery is None:  # no word in the text (q="*"): nothing matches
            return false()
        return literal_column("resource.search_vector").op("@@")(
            cast(literal(tsquery, Text), TSQUERY))

    # ---- bulk path (Store.bulk_upsert) ---------------------------------------------------
    def _bulk_load(self, conn: Connection, table: str, columns: Sequence[str],
                   rows: Iterable[tuple[Any, ...]]) -> int:
        # COPY streams the rows while Python prepares the next ones: the server parses on the
        # second core. A temporary table is never WAL-logged.
        spec = ", ".join(f"{name} {_BULK_TYPES.get(name, 'text')}" for name in columns)
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
        if any('"' in v or "\\" in v for v in values):
            return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                  for v in values) + "}"
        return '{"' + '","'.join(values) + '"}'

    def _bulk_insert(self, conn: Connection, source: str, changed_by: str, now: dt.datetime,
                     empty: bool) -> tuple[int, Callable[[], None]]:
        # Into an empty table, indexes and constraints (but the primary keys) are built after
        # the load: one sort per index instead of a million index insertions, and one
        # anti-join per foreign key instead of a lookup per row.
        rebuild = self._drop_indexes(conn) if empty else []
        columns = ", ".join(PLAIN_FIELDS)
        values = ", ".join(f"s.{name}" for name in PLAIN_FIELDS)
        created = conn.execute(text(f"""
            WITH new AS (
                INSERT INTO resource (uid, source, source_id, {columns}, slug, organization_id,
                                      exact_lat, exact_lon, geom, locked_fields, version,
                                      created_at, updated_at)
                SELECT gen_random_uuid()::text, :source, s.source_id, {values}, s.slug, o.id,
                       CASE WHEN s.location_confidential THEN s.lat END,
                       CASE WHEN s.location_confidential THEN s.lon END,
                       {self._sql_point("coalesce(s.glon, s.lon)", "coalesce(s.glat, s.lat)")},
                       '[]', 1, :now, :now
                FROM bulk_staging AS s
                LEFT JOIN organization AS o ON o.source = :source AND o.source_id = s.org_key
                WHERE NOT EXISTS (SELECT FROM resource AS r
                                  WHERE r.source = :source AND r.source_id = s.source_id)
                RETURNING id, source_id)
            INSERT INTO resource_version (resource_id, version, changed_by, changed_at, data, diff)
            SELECT new.id, 1, :changed_by, :now, s.data::json, '{{}}'
            FROM new JOIN bulk_staging AS s ON s.source_id = new.source_id
            """).bindparams(_now_param(now)), {"source": source, "changed_by": changed_by}
        ).rowcount

        def finish() -> None:
            if not rebuild:
                return
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            for statement in rebuild:
                conn.exec_driver_sql(statement)
            # A table loaded in one go has no statistics yet: plan the next queries well.
            conn.exec_driver_sql("ANALYZE resource, resource_version (resource_id)")

        return created, finish

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


_CODE_LISTS = ("categories", "audiences", "languages")
# Column types of the bulk staging tables (text unless named here).
_BULK_TYPES = {"key": "bigint", "org_id": "integer", "translations": "jsonb",
               "categories": "text[]", "audiences": "text[]", "languages": "text[]",
               "lat": "float8", "lon": "float8", "glon": "float8", "glat": "float8",
               "location_confidential": "boolean", "last_verified": "date"}

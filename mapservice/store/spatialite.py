"""SpatiaLite specifics: R*Tree window queries (never the KNN virtual tables), JSON code lists,
ellipsoidal ``ST_Distance(a, b, 1)``, full text on the FTS5 table ``resource_fts``."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import (ColumnElement, String, and_, column, false, func, literal,
                        literal_column, select, table, text)
from sqlalchemy.engine import Connection

from ..models import Resource
from ..search import DIGRAPHS, fold, words
from .base import PLAIN_FIELDS, Store, _dumps, _now_param, _point, window

_RTREE = table("idx_resource_geom", column("pkid"), column("xmin"), column("xmax"),
               column("ymin"), column("ymax"))
_FTS = table("resource_fts", column("rowid"))
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FIRST_RADIUS_M = 250.0
_EARTH_M = 20_100_000.0  # beyond this a window covers every point


class SpatiaLiteStore(Store):
    backend = "spatialite"

    def _codes_overlap(self, column_: Any, codes: Sequence[str]) -> ColumnElement:
        each = func.json_each(column_).table_valued("value")
        return select(1).select_from(each).where(each.c.value.in_(list(codes))).exists()

    def _distance_m(self, lon: float, lat: float, geom: Any = None) -> ColumnElement:
        geom = Resource.geom if geom is None else geom
        return func.ST_Distance(geom, _point(lon, lat), 1)

    def _index_window(self, box: tuple[float, float, float, float]) -> ColumnElement:
        minlon, minlat, maxlon, maxlat = box
        return Resource.id.in_(select(_RTREE.c.pkid).where(
            _RTREE.c.xmin <= maxlon, _RTREE.c.xmax >= minlon,
            _RTREE.c.ymin <= maxlat, _RTREE.c.ymax >= minlat))

    def _knn_radius(self, conn: Any, lat: float, lon: float, k: int,
                    where: list[ColumnElement]) -> float | None:
        # Widen an R*Tree window until it holds k matches; every point of a window of half-side
        # r lies within r * sqrt(2) of the centre, so that radius holds the true k nearest.
        radius = _FIRST_RADIUS_M
        while True:
            box = window(lat, lon, radius)
            found = select(Resource.id).where(*where, *self._exact_box(box)).limit(k).subquery()
            count = conn.execute(select(func.count()).select_from(found)).scalar_one()
            if count >= k:
                return radius * 1.42
            if radius >= _EARTH_M:
                return radius if count else None
            radius = min(radius * 4, _EARTH_M)

    def _point_in(self, polygon: Any, x: Any, y: Any) -> ColumnElement:
        return func.ST_Intersects(polygon, func.MakePoint(x, y, 4326)) == 1

    def _resource_window(self, resource: Any, polygon: Any) -> ColumnElement:
        # SpatiaLite's ST_Intersects reads no index: the R*Tree finds the candidates.
        # correlate_except: the polygon belongs to the caller's query and must not be pulled
        # into this subquery's FROM.
        return resource.c.id.in_(select(_RTREE.c.pkid).where(
            _RTREE.c.xmin <= func.MbrMaxX(polygon), _RTREE.c.xmax >= func.MbrMinX(polygon),
            _RTREE.c.ymin <= func.MbrMaxY(polygon), _RTREE.c.ymax >= func.MbrMinY(polygon))
            .correlate_except(_RTREE))

    def _one_of(self, column_: Any, values: Sequence[str]) -> ColumnElement:
        each = func.json_each(literal(json.dumps(list(values)), String)).table_valued("value")
        return column_.in_(select(each.c.value))

    def _text_match(self, text: str) -> ColumnElement:
        expression = fts5_query(text)
        if expression is None:
            return false()
        return Resource.id.in_(select(_FTS.c.rowid).where(
            literal_column("resource_fts").op("MATCH")(expression)))

    # ---- bulk path (Store.bulk_upsert) ---------------------------------------------------
    def _bulk_load(self, conn: Connection, table_: str, columns: Sequence[str],
                   rows: Iterable[tuple[Any, ...]]) -> int:
        # SQLite keeps temporary tables past the transaction (finish() drops them).
        spec = ", ".join("key INTEGER PRIMARY KEY" if name == "key" else name
                         for name in columns)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table_}")
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {table_} ({spec})")
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.executemany(f"INSERT INTO temp.{table_} VALUES "
                           f"({', '.join('?' * len(columns))})", rows)
        return max(cursor.rowcount, 0)

    def _bulk_list(self, values: Sequence[str]) -> str:
        return _dumps(list(values))

    def _bulk_stored(self, name: str) -> ColumnElement:
        stored = super()._bulk_stored(name)
        # json() gives the compact form the staging rows have; the ORM writes '["a", "b"]'
        return func.json(stored) if name in _JSON_FIELDS else stored

    def _bulk_insert(self, conn: Connection, source: str, changed_by: str, now: dt.datetime,
                     empty: bool) -> tuple[int, Callable[[], None]]:
        # Explicit ids past the largest one (we hold SQLite's one write lock): the versions
        # and the index entries find the new rows by id, and rows go in in the B-tree's order.
        base = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM resource").scalar_one()
        cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        conn.exec_driver_sql(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
        replaced = _suspend_insert_triggers(conn)
        indexes = _drop_indexes(conn) if empty else []
        columns = ", ".join(PLAIN_FIELDS)
        values = ", ".join(f"s.{name}" for name in PLAIN_FIELDS)
        created = conn.execute(text(f"""
            INSERT INTO resource (id, uid, source, source_id, {columns}, slug, organization_id,
                                  exact_lat, exact_lon, geom, locked_fields, version,
                                  created_at, updated_at)
            SELECT :base + 1 + s.key, {_UUID.format(h="s.h")}, :source, s.source_id,
                   {values}, s.slug, o.id,
                   CASE WHEN s.location_confidential THEN s.lat END,
                   CASE WHEN s.location_confidential THEN s.lon END,
                   {self._sql_point("coalesce(s.glon, s.lon)", "coalesce(s.glat, s.lat)")},
                   '[]', 1, :now, :now
            FROM (SELECT *, lower(hex(randomblob(16))) AS h FROM temp.bulk_staging) AS s
            LEFT JOIN organization AS o ON o.source = :source AND o.source_id = s.org_key
            WHERE NOT EXISTS (SELECT 1 FROM resource AS r
                              WHERE r.source = :source AND r.source_id = s.source_id)
            ORDER BY s.key""").bindparams(_now_param(now)), {"base": base, "source": source}
        ).rowcount
        conn.execute(text("""
            INSERT INTO resource_version (resource_id, version, changed_by, changed_at, data, diff)
            SELECT r.id, 1, :changed_by, :now, s.data, '{}'
            FROM temp.bulk_staging AS s JOIN resource AS r ON r.id = :base + 1 + s.key
            ORDER BY s.key""").bindparams(_now_param(now)),
            {"base": base, "changed_by": changed_by})

        def finish() -> None:
            # What the suspended triggers would have done row by row, set-based: the R*Tree
            # filled in Z-order (about twice as fast as in input order), the full-text rows
            # in one statement, SpatiaLite's bookkeeping once.
            for create, replacement in replaced:
                if replacement is not None:
                    conn.exec_driver_sql(replacement, (base,) if "?" in replacement else ())
                conn.exec_driver_sql(create)
            for create in indexes:
                conn.exec_driver_sql(create)
            conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
            for table_ in ("bulk_staging", "bulk_orgs", "bulk_changes"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table_}")

        return created, finish

    def _sql_point(self, lon: str, lat: str) -> str:
        return f"MakePoint({lon}, {lat}, 4326)"

    def _sql_uuid(self) -> str:
        return _UUID.format(h="lower(hex(randomblob(16)))")

    def _sql_distinct(self, a: str, b: str) -> str:
        return f"{a} IS NOT {b}"

    def _sql_window(self, alias: str, x: str, y: str) -> str:
        dlon = f"(:dlat / max(cos(radians({y})), 0.01))"
        return (f"{alias}.id IN (SELECT pkid FROM idx_resource_geom WHERE xmin <= {x} + {dlon} "
                f"AND xmax >= {x} - {dlon} AND ymin <= {y} + :dlat AND ymax >= {y} - :dlat)")

    def _sql_distance(self, x1: str, y1: str, x2: str, y2: str) -> str:
        return f"ST_Distance(MakePoint({x1}, {y1}, 4326), MakePoint({x2}, {y2}, 4326), 1)"


_JSON_FIELDS = ("translations", "categories", "audiences", "languages")
_BULK_CACHE_KIB = -262_144  # 256 MiB of page cache while loading (negative: KiB)
# A random (version 4) UUID from 32 hex digits {h}, as the ORM's uuid4() would write it.
_UUID = ("substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-4' || substr({h}, 14, 3) || '-' "
         "|| substr('89ab', 1 + abs(random() % 4), 1) || substr({h}, 18, 3) || '-' "
         "|| substr({h}, 21, 12)")
_TRIGGER = re.compile(r"^CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+(?:BEFORE|AFTER)\s+"
                      r"INSERT\s+ON\s+\S+\s+(?:FOR\s+EACH\s+ROW\s+)?BEGIN\s+(.*?);?\s*END\s*$",
                      re.IGNORECASE | re.DOTALL)
_INSERT_VALUES = re.compile(r"^(INSERT\s+INTO\s+.+?)\s+VALUES\s*\((.*)\)$",
                            re.IGNORECASE | re.DOTALL)
_NEW = re.compile(r"\bnew\.", re.IGNORECASE)


def _spread16(v: str) -> str:
    """SQL: the 16 low bits of integer ``v`` spread to the even bits (a Morton code half)."""
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        v = f"(({v} | ({v} << {shift})) & {mask})"
    return v


# The R*Tree rows of the new resources (id > ?) in Z-order: coordinates scaled to 16 bits over
# their extent, bits interleaved.
_RTREE_FILL = f"""
    WITH p AS MATERIALIZED (SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y FROM resource
                            WHERE id > ?),
    box AS (SELECT min(x) AS x0, min(y) AS y0, 65535.0 / max(max(x) - min(x), 1e-9) AS sx,
                   65535.0 / max(max(y) - min(y), 1e-9) AS sy FROM p),
    q AS MATERIALIZED (SELECT id, x, y, CAST((x - x0) * sx AS INTEGER) AS qx,
                              CAST((y - y0) * sy AS INTEGER) AS qy FROM p, box)
    INSERT INTO idx_resource_geom (pkid, xmin, xmax, ymin, ymax)
    SELECT id, x, x, y, y FROM q ORDER BY {_spread16("qx")} | ({_spread16("qy")} << 1)"""


def _set_based(name: str, create: str) -> str | None | bool:
    """What replaces INSERT trigger ``name`` for the rows with ``id > ?``: an SQL statement,
    None (nothing to do), or False (unknown: keep the trigger)."""
    if name == "ggi_resource_geom":
        return None  # checks type and SRID: MakePoint(x, y, 4326) is a valid POINT
    if name == "gii_resource_geom":
        return _RTREE_FILL
    match = _TRIGGER.match(create.strip())
    if not match or ";" in match.group(1):
        return False
    body = match.group(1).strip()
    if not _NEW.search(body):
        return body  # bookkeeping that does not depend on the row (SpatiaLite's timestamps)
    insert = _INSERT_VALUES.match(body)
    if not insert:
        return False
    # The full-text trigger of migration 0002: its VALUES row for every new resource.
    return f"{insert.group(1)} SELECT {insert.group(2)} FROM resource AS new WHERE new.id > ?"


def _suspend_insert_triggers(conn: Connection) -> list[tuple[str, str | None]]:
    """Drop the INSERT triggers on ``resource`` that have a set-based replacement; returns
    (CREATE statement, replacement) for each, to run after the load."""
    replaced = []
    for name, create in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name = 'resource' ORDER BY name").all():
        replacement = _set_based(name, create)
        if replacement is False:
            continue
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        replaced.append((create, replacement))
    return replaced


def _drop_indexes(conn: Connection) -> list[str]:
    """Drop the secondary indexes of ``resource`` and ``resource_version`` (not those of
    constraints); the statements that recreate them."""
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('resource', 'resource_version')").all()
    for name, _create in rows:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [create for _name, create in rows]


def _mirror(word: str) -> str:
    # What the FTS triggers (migration 0002) do to the stored text before the tokenizer:
    # SQLite's lower() (ASCII only), ß -> ss, then the digraphs. The tokenizer
    # (unicode61 remove_diacritics 2) then folds case and accents on both sides.
    mirrored = word.translate(_ASCII_LOWER).replace("ẞ", "ss").replace("ß", "ss")
    for digraph, single in DIGRAPHS:
        mirrored = mirrored.replace(digraph, single)
    return mirrored


def fts5_query(text: str) -> str | None:
    """An FTS5 expression for ``text``: every word a quoted prefix phrase, words ANDed; None
    when ``text`` has no word. Quoting makes FTS5 syntax in ``text`` (``"``, ``NEAR``, ``*``,
    ``-``, ``:``, ``OR``) plain words.

    The triggers fold digraphs before the tokenizer strips accents, PostgreSQL after; where an
    accent sits inside a digraph ("Noël", "müessese") the two orders differ, so each word is
    also tried fully folded and without digraph folding (``OR``).
    """
    groups = []
    for word in words(text):
        plain = word.replace("ẞ", "ss").replace("ß", "ss").lower()
        variants = [v for v in dict.fromkeys((_mirror(word), fold(word), plain)) if v]
        if not variants:
            continue
        phrases = ['"' + v.replace('"', '""') + '"*' for v in variants]
        groups.append(phrases[0] if len(phrases) == 1 else "(" + " OR ".join(phrases) + ")")
    return " AND ".join(groups) if groups else None

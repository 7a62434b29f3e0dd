"""SpatiaLite specifics: R*Tree window queries (never the KNN virtual tables), JSON code lists,
ellipsoidal distances, full text on the FTS5 table ``resource_fts``.

Nearest-k reads R*Tree windows and measures the candidates in Python (pyproj's geodesic, the
algorithm of PROJ that SpatiaLite's ``ST_Distance(a, b, 1)`` uses too): SpatiaLite's function
costs 10-50 us a call, Python 1 us a point. The first window is sized from a map of the index's
local density (``density.DensityMap``, read from the R*Tree's leaf pages, rebuilt every few
minutes) to hold about the entries the search needs; a window that holds too many candidates is
shrunk to the k-th nearest of those it returned, one with too few is grown by the area the
missing ones need, so a search mostly reads one small window.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import orjson
from pyproj import Geod
from sqlalchemy import (JSON, Boolean, ColumnElement, Date, DateTime, Float, Integer, Select,
                        String, and_, bindparam, column, func, literal, literal_column, null,
                        or_, select, table, text, union_all)
from sqlalchemy.engine import Connection

from ..models import Resource
from ..search import DIGRAPHS, SearchQuery, fold, words
from .base import (_UNREAD, _WINDOW, METRES_PER_DEG_LAT, PLAIN_FIELDS, Hit, Store, _dumps,
                   _now_param, _point, window)
from .density import DensityMap

_RTREE = table("idx_resource_geom", column("pkid"), column("xmin"), column("xmax"),
               column("ymin"), column("ymax"))
_FTS = table("resource_fts", column("rowid"))
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FIRST_RADIUS_M = 250.0  # the first window's radius when the density is not known
_EARTH_M = 20_100_000.0  # beyond this a window covers every point
_GEOD = Geod(ellps="WGS84")
_A, _E2 = 6_378_137.0, 0.00669437999014  # WGS84 semi-major axis, first eccentricity²
_ORDERED_MAX_M = 200_000.0  # larger windows (and polar ones) are read whole
_ORDERED_MAX_LAT = 80.0
_MAX_READ = 20_000  # R*Tree entries read in one step of a nearest search
_MAX_HINTS = 512
_MAP_MAX_AGE_S = 300.0  # the density map (a hint) is rebuilt after this
_MAP_SLACK = 1.3  # the first window should hold this many times the entries to read
# A cell of an R*Tree node: id, then the box as big-endian float32 (SQLite's rtree format).
_RTREE_CELL = np.dtype([("id", ">i8"), ("minx", ">f4"), ("maxx", ">f4"), ("miny", ">f4"),
                        ("maxy", ">f4")])


class SpatiaLiteStore(Store):
    backend = "spatialite"

    def _after_erase(self, conn: Any) -> None:
        # merge the FTS5 segments, so that the index no longer holds the erased words
        conn.execute(text("INSERT INTO resource_fts(resource_fts) VALUES ('optimize')"))

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        # query shape -> [entries per m² near the searched points, share of entries matching]
        self._hints: dict[tuple[str, ...], list[float]] = {}
        self._map: tuple[float, DensityMap | None] | None = None  # (built at, map)
        self._map_lock = threading.Lock()  # one thread (re)builds the map at a time

    def _codes_overlap(self, column_: Any, codes: Any) -> ColumnElement:
        each = func.json_each(column_).table_valued("value")
        exact = select(1).select_from(each).where(self._in_list(each.c.value, codes)).exists()
        # First a test that costs a tenth of json_each per row: a single plain code is in
        # the list only if the list's JSON text holds it quoted. (SQLite evaluates the parts
        # that read only the parameter once per statement.)
        first = func.json_extract(codes, "$[0]")
        quoted = literal('"', String).concat(first).concat('"')
        quick = or_(func.json_array_length(codes) != 1, first.op("GLOB")("*[^a-z0-9_]*"),
                    func.instr(column_, quoted) > 0)
        return and_(quick, exact)

    def _list_value(self, values: Sequence[str]) -> Any:
        return orjson.dumps(list(values)).decode()

    def _list_param(self, name: str, value: Any) -> Any:
        return bindparam(name, value, type_=String)

    def _cell_index(self, value: ColumnElement) -> ColumnElement:
        # floor() is one of SQLite's optional math functions; the value is >= 0, where the
        # cast to an integer truncates to the same number
        return value.cast(Integer)

    def _in_list(self, column_: Any, values: Any) -> ColumnElement:
        each = func.json_each(values).table_valued("value")
        return column_.in_(select(each.c.value))

    def _reader(self, type_: Any) -> Callable[[Any], Any] | None:
        dialect = self.engine.dialect
        impl = type_.dialect_impl(dialect)
        if isinstance(impl, JSON):
            return orjson.loads
        if isinstance(impl, (Boolean, Date, DateTime)):
            return impl.result_processor(dialect, None)
        return None

    def _text_value(self, conn: Any, text: str) -> str | None:
        return fts5_query(text)

    # ---- nearest-k ---------------------------------------------------------------------------
    def _nearest(self, conn: Any, query: SearchQuery, params: dict[str, Any],
                 values: dict[str, Any]) -> tuple[list[Hit], Any]:
        lat, lon = query.near
        shape = tuple(sorted(params))
        plan = self._plan(("nearest", *shape), lambda: self._candidates_select(
            self._where(params), self._read_columns()))

        def candidates(box: tuple[float, float, float, float], m: int, kx: float,
                       ky: float) -> list[Any]:
            return plan.run(conn, {**params, **dict(zip(_WINDOW, box)), "lon": lon, "lat": lat,
                                   "kx": kx, "ky": ky, "m": m}, read=False)

        found = self._nearest_rows(conn, candidates, (2, 3, 1), lat, lon,
                                   query.offset + query.limit + 1, query.radius,
                                   shape)[query.offset:]
        # The newest change is read on its own: in-process, a statement costs no round trip.
        return self._hits(conn, plan.read([row for _d, _id, row in found]),
                          distances=[d for d, _id, _row in found]), _UNREAD

    def _candidates_select(self, where: list[ColumnElement], columns: list[Any]) -> Select:
        """``columns`` of the matches of ``where`` among the ``m`` (-1: all) entries nearest
        to (``lon``, ``lat``) by the planar metric (``kx``, ``ky`` metres per degree) of the
        first ``cap`` (-1: all) entries of the window of parameters ``_WINDOW``; then one row
        of NULLs but for the number of entries scanned and the largest planar distance² of
        those read (``_nearest_rows``).

        The R*Tree is scanned and ordered alone (its float32 box centres; no table row is
        read for that, about 0.2 us an entry); table rows are read for the ``m`` entries
        only. ``cap`` bounds the cost of a window that turns out far too crowded."""
        win = _RTREE  # unaliased: plans name the spatial index
        box = [bindparam(name, 0.0, type_=Float) for name in _WINDOW]
        scan = (select(win.c.pkid, win.c.xmin, win.c.xmax, win.c.ymin, win.c.ymax)
                .where(win.c.xmin <= box[2], win.c.xmax >= box[0], win.c.ymin <= box[3],
                       win.c.ymax >= box[1])
                .limit(bindparam("cap", -1, type_=Integer))
                .cte("scan").prefix_with("MATERIALIZED"))
        lon, lat = bindparam("lon", 0.0, type_=Float), bindparam("lat", 0.0, type_=Float)
        dx = ((scan.c.xmin + scan.c.xmax) * 0.5 - lon) * bindparam("kx", 1.0, type_=Float)
        dy = ((scan.c.ymin + scan.c.ymax) * 0.5 - lat) * bindparam("ky", 1.0, type_=Float)
        d2 = (dx * dx + dy * dy).label("d2")
        nearest = (select(scan.c.pkid, d2).order_by(d2)
                   .limit(bindparam("m", -1, type_=Integer))
                   .cte("nearest").prefix_with("MATERIALIZED"))
        rows = (select(*columns, null().label("scanned"), null().label("farthest"))
                .join_from(nearest, Resource, Resource.id == nearest.c.pkid))
        info = select(*(null() for _ in columns),
                      select(func.count()).select_from(scan).scalar_subquery(),
                      select(func.max(nearest.c.d2)).scalar_subquery())
        return union_all(rows.where(*where), info)

    def _nearest_rows(self, conn: Any, candidates: Callable[..., list[Any]],
                      at: tuple[int, int, int], lat: float, lon: float, k: int,
                      radius: float | None, shape: tuple[str, ...]
                      ) -> list[tuple[float, int, Any]]:
        """(metres, id, row) of the k nearest matches, by distance then id (with ``radius``:
        only those within it). ``candidates(box, m, kx, ky)`` runs a
        :meth:`_candidates_select`; ``at``: where lon, lat and id are in its rows.

        Exact. Every match within r metres lies in the window of radius r. When all of a
        window's entries were read, the matches among them within r come first. When only the
        ``m`` nearest by the planar metric were, an entry not read has a planar distance of at
        least the largest one read, so a true distance of at least that (less the float32
        rounding of the R*Tree, ``delta``) times (1 - ``eps``), the metric's largest relative
        error over the window; matches nearer than that come first. Beyond 200 km or 80°
        latitude windows are read whole."""
        reach = _EARTH_M if radius is None else radius
        x_at, y_at, id_at = at
        density, share = self._hint(conn, shape)
        kx, ky = _metres_per_degree(lat)
        m = min(max(math.ceil((k + 2) * 1.5 / share), k + 2), _MAX_READ)
        r = math.sqrt(2.5 * m / (math.pi * density)) if density > 0 else _FIRST_RADIUS_M
        density_map = self._density_map(conn)
        if density_map is not None:  # the local density, not the average
            r = density_map.radius(lon, lat, m * _MAP_SLACK, kx, ky, r) or r
        r = min(max(r, 1.0), reach)
        whole = abs(lat) > _ORDERED_MAX_LAT
        while True:
            box = window(lat, lon, r)
            limit = -1 if whole or r > _ORDERED_MAX_M else m
            rows = candidates(box, limit, kx, ky)
            info = next(row for row in rows if row[id_at] is None)
            entries, farthest = info[-2], info[-1]
            found = _measured([row for row in rows if row[id_at] is not None], lat, lon,
                              x_at, y_at, id_at)
            complete = limit < 0 or entries < limit
            if complete:
                bound = r
            else:
                eps, delta = _flat_error(lat, box)
                bound = min(r, (math.sqrt(farthest) - delta) * (1 - eps) - 1e-6)
            if len(found) >= k and found[k - 1][0] <= bound:
                found = found[:k]
                break
            if complete and r >= reach:
                break
            # Not yet. Every step scans its whole window in the R*Tree (a city-wide window
            # costs 100 ms and more at 1M rows), so windows grow by at most 4x in radius.
            if complete:  # too few matches in the window: widen it
                if len(found) >= k:
                    r = found[k - 1][0] + 0.01  # holds these k
                elif entries:  # towards 1.5 m entries, at the density seen
                    r *= min(max(math.sqrt(1.5 * m / entries), 1.5), 4.0)
                else:
                    r *= 2.0
                r = min(r, reach)
            else:  # the window holds more entries than were read: read more of them
                grow = max(2, math.ceil(1.5 * k / max(len(found), 0.5)))
                if len(found) >= k:
                    r = min(r, found[k - 1][0] + 0.01)  # holds these k
                else:  # a window that holds the entries to read next, at the density seen
                    r = min(r, (math.sqrt(farthest) / min(kx, ky) + 5.0) * math.sqrt(grow))
                m *= grow
                if m > _MAX_READ:  # a crowd: read the (smallest known) window whole
                    whole = True
        self._learn(shape, entries, farthest, complete, r, len(rows) - 1)
        return [item for item in found if item[0] <= reach][:k]

    def _hint(self, conn: Any, shape: tuple[str, ...]) -> tuple[float, float]:
        """(entries per m² around the points searched, share of entries matching) for a
        query shape: the first window's size and how many entries to read. Learned from the
        searches so far (a per-process hint, never a result), first from the data's average
        density (:meth:`_density`)."""
        hint = self._hints.get(shape)
        if hint is None:
            share = 1.0 if set(shape) <= {"statuses"} else 0.2
            hint = self._hints[shape] = [self._density(conn), share]
        return hint[0], hint[1]

    def _learn(self, shape: tuple[str, ...], entries: int, farthest: float | None,
               complete: bool, r: float, matches: int) -> None:
        hint = self._hints.get(shape)
        if hint is None or not entries:
            return
        if complete:
            density = entries / (4 * r * r)
        else:
            density = entries / (math.pi * max(farthest or 0.0, 1.0))
        if hint[0] > 0:
            hint[0] = math.exp(0.8 * math.log(hint[0]) + 0.2 * math.log(max(density, 1e-12)))
        else:
            hint[0] = density
        hint[1] = min(max(0.8 * hint[1] + 0.2 * matches / entries, 0.001), 1.0)
        if len(self._hints) > _MAX_HINTS:
            self._hints.clear()

    def _density_map(self, conn: Any) -> DensityMap | None:
        """The :class:`DensityMap` of the spatial index, at most ``_MAP_MAX_AGE_S`` old (a
        little older while another thread rebuilds it: it is only a hint).

        One thread of the process builds it; the others wait for the first map, and use the
        old one while it is rebuilt, instead of each reading the R*Tree again."""
        current = self._map
        if current is not None and time.monotonic() - current[0] <= _MAP_MAX_AGE_S:
            return current[1]
        if not self._map_lock.acquire(blocking=current is None):
            return current[1]  # type: ignore[index]  # being rebuilt: the old map meanwhile
        try:
            current = self._map
            if current is None or time.monotonic() - current[0] > _MAP_MAX_AGE_S:
                self._map = current = (time.monotonic(), self._read_density_map(conn))
            return current[1]
        finally:
            self._map_lock.release()

    def _read_density_map(self, conn: Any) -> DensityMap | None:
        """From the R*Tree's leaf pages (found by walking down from the root; each a 4-byte
        header and cells of id + box), parsed by numpy; no row of the table is read."""
        def nodes(ids: list[int]) -> list[bytes]:
            found: list[bytes] = []
            for at in range(0, len(ids), 500):
                chunk = ids[at:at + 500]
                found += [row[0] for row in conn.exec_driver_sql(
                    "SELECT data FROM idx_resource_geom_node WHERE nodeno IN "
                    f"({','.join('?' * len(chunk))})", tuple(chunk))]
            return found

        def cells(node: bytes) -> bytes:
            return node[4:4 + _RTREE_CELL.itemsize * struct.unpack_from(">H", node, 2)[0]]

        level = nodes([1])
        if not level or len(level[0]) < 4:
            return None
        for _ in range(struct.unpack_from(">H", level[0], 0)[0]):  # the root's depth
            ids = np.frombuffer(b"".join(cells(node) for node in level), dtype=_RTREE_CELL)["id"]
            level = nodes(ids.tolist())
        leaves = np.frombuffer(b"".join(cells(node) for node in level), dtype=_RTREE_CELL)
        if not len(leaves):
            return None
        return DensityMap((leaves["minx"] + leaves["maxx"]) / 2,
                          (leaves["miny"] + leaves["maxy"]) / 2)

    def _density(self, conn: Any) -> float:
        """Resources per square metre over the extent of the spatial index, roughly (the
        largest id counts the rows; the R*Tree's root node holds the extent)."""
        row = conn.exec_driver_sql("SELECT (SELECT max(id) FROM resource), data "
                                   "FROM idx_resource_geom_node WHERE nodeno = 1").first()
        count, node = row if row is not None else (0, None)
        if not count or not node or len(node) < 28:
            return 0.0
        # R*Tree node: depth, cell count (u16 each), cells of rowid (i64) + 4 x float32
        cells = struct.unpack_from(">H", node, 2)[0]
        boxes = [struct.unpack_from(">q4f", node, 4 + 24 * i)[1:] for i in range(cells)]
        if not boxes:
            return 0.0
        minx, maxx = min(b[0] for b in boxes), max(b[1] for b in boxes)
        miny, maxy = min(b[2] for b in boxes), max(b[3] for b in boxes)
        coslat = max(math.cos(math.radians((miny + maxy) / 2)), 0.01)
        area = (maxx - minx) * coslat * METRES_PER_DEG_LAT * (maxy - miny) * METRES_PER_DEG_LAT
        return count / max(area, 1e6)

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
        r = Resource
        stmt = self._candidates_select(where, [r.id, func.ST_X(r.geom), func.ST_Y(r.geom)])

        def candidates(box: tuple[float, float, float, float], m: int, kx: float,
                       ky: float) -> list[Any]:
            return conn.execute(stmt, {**dict(zip(_WINDOW, box)), "lon": lon, "lat": lat,
                                       "kx": kx, "ky": ky, "m": m}).all()

        found = self._nearest_rows(conn, candidates, (1, 2, 0), lat, lon, k, None, ("*",))
        return found[-1][0] + 0.01 if found else None

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

    def _list_select(self, query: SearchQuery, params: dict[str, Any]) -> Select:
        # A full-text page in the default order (by id) is read from the FTS5 table in its
        # rowid order, joined to the resources and stopped after the page: FTS5 streams its
        # matches by rowid, so "sprach*" over 1M resources costs the first few hundred matches
        # instead of all ~80,000 that the IN (subquery) form collects first (11 vs 55 ms). Only
        # an ORDER BY on the FTS5 rowid lets SQLite use that order; ordered by resource.id
        # (the same values) it sorts every match.
        if "text" not in params or query.effective_sort is not None:
            return super()._list_select(query, params)
        match = literal_column("resource_fts").op("MATCH")(
            bindparam("text", params["text"], type_=String))
        rest = {name: value for name, value in params.items() if name != "text"}
        return (select(*self._read_columns(), self._newest_column())
                .select_from(_FTS).join(Resource, Resource.id == _FTS.c.rowid)
                .where(match, *self._where(rest))
                .order_by(_FTS.c.rowid)
                .limit(bindparam("limit", 1, type_=Integer))
                .offset(bindparam("offset", 0, type_=Integer)))

    def _text_match(self, value: Any) -> ColumnElement:
        return Resource.id.in_(select(_FTS.c.rowid).where(
            literal_column("resource_fts").op("MATCH")(value)))

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
        # The new rows' ids follow a Z-order of their points: SQLite stores a table in id
        # order, so the rows of a map window or a nearest-k reach then share pages.
        conn.exec_driver_sql("DROP TABLE IF EXISTS temp.bulk_order")
        conn.exec_driver_sql(_BULK_ORDER)
        created = conn.execute(text(f"""
            INSERT INTO resource (id, uid, source, source_id, {columns}, slug, organization_id,
                                  exact_lat, exact_lon, geom, locked_fields, version,
                                  created_at, updated_at, feature)
            SELECT :base + z.pos, coalesce(s.uid, {self._sql_uuid()}), :source, s.source_id,
                   {values}, s.slug, o.id,
                   CASE WHEN s.location_confidential THEN s.lat END,
                   CASE WHEN s.location_confidential THEN s.lon END,
                   {self._sql_point("coalesce(s.glon, s.lon)", "coalesce(s.glat, s.lat)")},
                   '[]', 1, :now, :now, {self._sql_feature("s.feature", "o.name")}
            FROM temp.bulk_order AS z
            JOIN temp.bulk_staging AS s ON s.key = z.key
            LEFT JOIN organization AS o ON o.source = :source AND o.source_id = s.org_key
            WHERE NOT EXISTS (SELECT 1 FROM resource AS r
                              WHERE r.source = :source AND r.source_id = s.source_id)
            ORDER BY z.pos""").bindparams(_now_param(now)), {"base": base, "source": source}
        ).rowcount
        conn.execute(text("""
            INSERT INTO resource_version (resource_id, version, changed_by, changed_at, data, diff)
            SELECT r.id, 1, :changed_by, :now, s.data, '{}'
            FROM temp.bulk_order AS z JOIN temp.bulk_staging AS s ON s.key = z.key
            JOIN resource AS r ON r.id = :base + z.pos
            ORDER BY z.pos""").bindparams(_now_param(now)),
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
            for table_ in ("bulk_staging", "bulk_orgs", "bulk_changes", "bulk_order"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table_}")

        return created, finish

    def _sql_point(self, lon: str, lat: str) -> str:
        return f"MakePoint({lon}, {lat}, 4326)"

    def _sql_uuid(self) -> str:
        return _UUID.format(h="lower(hex(randomblob(16)))")

    def _sql_json_text(self, expr: str) -> str:
        return f"json_quote({expr})"

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


def _measured(rows: Sequence[Any], lat: float, lon: float, x_at: int, y_at: int,
              id_at: int) -> list[tuple[float, int, Any]]:
    """(metres from (lat, lon), id, row) of ``rows``, nearest first (then by id)."""
    if not rows:
        return []
    n = len(rows)
    _az, _back, metres = _GEOD.inv([lon] * n, [lat] * n, [row[x_at] for row in rows],
                                   [row[y_at] for row in rows])
    found = [(d, row[id_at], row) for d, row in zip(metres, rows)]
    found.sort(key=_by_distance_and_id)
    return found


def _by_distance_and_id(item: tuple[float, int, Any]) -> tuple[float, int]:
    return item[0], item[1]


def _metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat`` on the WGS84 ellipsoid."""
    phi = math.radians(lat)
    w = 1 - _E2 * math.sin(phi) ** 2
    return (math.radians(1) * _A * math.cos(phi) / math.sqrt(w),
            math.radians(1) * _A * (1 - _E2) / w ** 1.5)


def _flat_error(lat: float, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """(eps, delta): over ``box``, a true distance d and the planar metric p of an R*Tree
    entry's centre satisfy d >= (p - delta) * (1 - eps). The metric's scale is exact at
    ``lat``; a point dphi away sees the scale of longitude differ by up to tan(lat) dphi
    (twice that allowed), plus 0.2 % for the curvature terms (< 0.1 % within 200 km);
    delta covers the float32 rounding of the centres (< 1.7 m) twice."""
    dphi = math.radians(max(box[3] - lat, lat - box[1], 0.0))
    top = math.radians(min(abs(lat) + math.degrees(dphi), 89.0))
    return 2 * math.tan(top) * dphi + 0.002, 3.5


def _spread16(v: str) -> str:
    """SQL: the 16 low bits of integer ``v`` spread to the even bits (a Morton code half)."""
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        v = f"(({v} | ({v} << {shift})) & {mask})"
    return v


def _zordered(points: str) -> str:
    """SQL: a WITH clause whose ``q`` holds the rows of ``points`` (a SELECT with columns x
    and y, among others) with ``qx``, ``qy``: the coordinates scaled to 16 bits over the rows'
    extent. :data:`_MORTON` orders them along a Z-order curve."""
    return f"""
    WITH p AS MATERIALIZED ({points}),
    box AS (SELECT min(x) AS x0, min(y) AS y0, 65535.0 / max(max(x) - min(x), 1e-9) AS sx,
                   65535.0 / max(max(y) - min(y), 1e-9) AS sy FROM p),
    q AS MATERIALIZED (SELECT p.*, CAST((x - x0) * sx AS INTEGER) AS qx,
                              CAST((y - y0) * sy AS INTEGER) AS qy FROM p, box)"""


_MORTON = f"{_spread16('qx')} | ({_spread16('qy')} << 1)"
# The R*Tree rows of the new resources (id > ?) in Z-order.
_RTREE_FILL = _zordered("SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y FROM resource "
                        "WHERE id > ?") + f"""
    INSERT INTO idx_resource_geom (pkid, xmin, xmax, ymin, ymax)
    SELECT id, x, x, y, y FROM q ORDER BY {_MORTON}"""
# Position (1, 2, ...) of every staging row in the Z-order of its public point.
_BULK_ORDER = "CREATE TEMPORARY TABLE bulk_order AS" + _zordered(
    "SELECT key, coalesce(glon, lon) AS x, coalesce(glat, lat) AS y FROM temp.bulk_staging"
) + f"""
    SELECT key, row_number() OVER (ORDER BY {_MORTON}, key) AS pos FROM q"""


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

"""SpatiaLite specifics: R*Tree window queries (never the KNN virtual tables), JSON code lists,
ellipsoidal ``ST_Distance(a, b, 1)``."""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import ColumnElement, column, func, select, table

from ..models import Resource
from .base import Store, _point, window

_RTREE = table("idx_resource_geom", column("pkid"), column("xmin"), column("xmax"),
               column("ymin"), column("ymax"))
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

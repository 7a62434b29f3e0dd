"""PostGIS specifics: KNN ``<->`` on the GiST index, ``text[]`` overlap on GIN, geography metres."""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import ColumnElement, String, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY

from ..models import Resource
from .base import Store, _point


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

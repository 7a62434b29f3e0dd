"""Storage: one interface (:class:`Store`), one dialect module per backend."""
from __future__ import annotations

from sqlalchemy.engine import Engine

from .base import Hit, SearchResult, Store, UpsertReport


def make_store(engine: Engine) -> Store:
    """The store for ``engine``'s dialect."""
    if engine.dialect.name == "postgresql":
        from .postgis import PostGISStore

        return PostGISStore(engine)
    from .spatialite import SpatiaLiteStore

    return SpatiaLiteStore(engine)


__all__ = ["Store", "Hit", "SearchResult", "UpsertReport", "make_store"]

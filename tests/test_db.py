"""Pooled PostgreSQL connections: pinged only after sitting idle, and reads that meet a
connection the server closed run again on a fresh one (db._install_idle_ping,
store.base.retry_read). Against the real server: its backends are terminated for real."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mapservice import db
from mapservice.search import SearchQuery
from mapservice.store import make_store

from .conftest import _clean, osm_poi_records

APP_NAME = "mapservice-test-db"
IDLE_S = 1.0
QUERY = SearchQuery(near=(53.55, 10.0), limit=5)


@pytest.fixture
def pg(_postgis_engine, monkeypatch):
    """A store on an engine of its own, whose server connections the test closes (as a
    server restart would), and a ``kill()`` that does so; counts the engine's pings."""
    _clean(_postgis_engine)
    make_store(_postgis_engine).upsert(osm_poi_records(limit=50), source="osm", changed_by="t")
    monkeypatch.setattr(db, "IDLE_PING_S", IDLE_S)
    url = _postgis_engine.url.set(query={"application_name": APP_NAME})
    engine = db.make_engine(url.render_as_string(hide_password=False))
    pings: list[bool] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_conn):
        pings.append(True)
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)

    def kill() -> int:
        with _postgis_engine.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name"), {"name": APP_NAME}).all())

    yield make_store(engine), engine, kill, pings
    engine.dispose()


def test_a_connection_in_use_a_moment_ago_is_not_pinged(pg):
    store, engine, _kill, pings = pg
    store.search(QUERY)
    for _ in range(5):
        assert len(store.search(QUERY).hits) == 5
    assert pings == []
    assert engine.pool.checkedout() == 0


def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(pg):
    store, _engine, kill, pings = pg
    expected = [h.properties["uid"] for h in store.search(QUERY).hits]
    assert kill() == 1
    time.sleep(IDLE_S + 0.1)  # idle past the threshold: the checkout pings, the ping fails,
    assert [h.properties["uid"] for h in store.search(QUERY).hits] == expected  # replaced
    assert pings == [True]


def test_a_read_on_a_connection_closed_moments_ago_runs_again(pg):
    store, _engine, kill, pings = pg
    expected = [h.properties["uid"] for h in store.search(QUERY).hits]
    assert kill() == 1
    # Used a moment ago: no ping; the search's first statement fails, and the read runs
    # once more on a fresh connection.
    assert [h.properties["uid"] for h in store.search(QUERY).hits] == expected
    assert pings == []
    kill()
    assert store.get(expected[0]) is not None
    kill()
    assert store.newest_change() is not None


def test_a_write_on_a_closed_connection_is_not_repeated(pg):
    """Only reads run again; a write that failed is reported, not silently retried."""
    store, _engine, kill, _pings = pg
    store.search(QUERY)
    kill()
    with pytest.raises(DBAPIError) as info:
        store.upsert(osm_poi_records(limit=1), source="other", changed_by="t")
    assert info.value.connection_invalidated
    # The pool replaced its connections: the next write gets a fresh one.
    assert store.upsert(osm_poi_records(limit=1), source="other", changed_by="t").created == 1


@pytest.mark.parametrize("mmap_mb", [0, 64])
def test_sqlite_connections_read_through_a_memory_map_as_configured(tmp_path, mmap_mb):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}", sqlite_mmap_mb=mmap_mb)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == mmap_mb * 1024 * 1024
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()

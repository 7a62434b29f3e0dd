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


# ---- SQLite transactions: DDL included, writers take the lock up front ---------------------
def test_sqlite_ddl_is_rolled_back_with_its_transaction(tmp_path):
    """The sqlite3 module would run CREATE/DROP outside the transaction and commit them at
    once; mapservice.db begins every transaction itself, so they roll back with the rest."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 't.sqlite'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE kept (x INTEGER)")
            conn.exec_driver_sql("CREATE INDEX kept_x ON kept (x)")
        with pytest.raises(RuntimeError):
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP INDEX kept_x")  # DDL first, before any DML
                conn.exec_driver_sql("CREATE TABLE lost (x INTEGER)")
                conn.exec_driver_sql("INSERT INTO kept VALUES (1)")
                raise RuntimeError("interrupted")
        with engine.connect() as conn:
            names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
            assert {"kept", "kept_x"} <= names and "lost" not in names
            assert conn.exec_driver_sql("SELECT count(*) FROM kept").scalar() == 0
    finally:
        engine.dispose()


def test_a_failed_migration_run_on_sqlite_leaves_no_schema_behind(tmp_path, monkeypatch):
    from mapservice import migrate

    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    upgrade = migrate.command.upgrade

    def upgrade_then_fail(cfg, revision):
        upgrade(cfg, revision)  # every migration ran, spatial metadata included
        raise RuntimeError("power cut")

    try:
        monkeypatch.setattr(migrate.command, "upgrade", upgrade_then_fail)
        with pytest.raises(RuntimeError, match="power cut"):
            migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master "
                                        "WHERE type = 'table'").scalar() == 0
        assert migrate.current(engine) is None
        monkeypatch.setattr(migrate.command, "upgrade", upgrade)
        migrate.upgrade(engine)  # and the file is as good as new
        assert migrate.current(engine) == migrate.head()
        with engine.connect() as conn:  # InitSpatialMetadata ran inside the transaction
            assert conn.exec_driver_sql("SELECT count(*) FROM spatial_ref_sys WHERE "
                                        "srid IN (4326, 3857, 25832)").scalar() == 3
    finally:
        engine.dispose()


def test_a_sqlite_writer_that_reads_first_waits_for_another_writer(tmp_path):
    """Store.transaction begins IMMEDIATE: a writer that starts while another holds the write
    lock waits for it, and then reads what it committed. A DEFERRED transaction would read
    the older snapshot and fail with "database is locked" at its first write."""
    import threading

    engine = db.make_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    store = make_store(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
    holding, release = threading.Event(), threading.Event()

    def other_writer():
        with store.transaction() as conn:
            conn.exec_driver_sql("UPDATE counter SET n = n + 1")
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert holding.wait(10)
        threading.Timer(0.3, release.set).start()
        with store.transaction() as conn:  # waits here until the other one committed
            n = conn.exec_driver_sql("SELECT n FROM counter").scalar()
            conn.exec_driver_sql("UPDATE counter SET n = ?", (n + 1,))
        thread.join(10)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT n FROM counter").scalar() == 2  # no lost update
    finally:
        release.set()
        thread.join(10)
        engine.dispose()

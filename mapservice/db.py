"""Engines for the two backends: SQLite + SpatiaLite (embedded) and PostgreSQL + PostGIS."""
from __future__ import annotations

import math
import sqlite3
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

#: A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
IDLE_PING_S = 5.0
#: Execution option: how a SpatiaLite transaction begins, ``"DEFERRED"`` (default, readers) or
#: ``"IMMEDIATE"`` (writers: ``conn.execution_options(sqlite_begin="IMMEDIATE")`` before the
#: first statement). PostgreSQL ignores it.
SQLITE_BEGIN = "sqlite_begin"
_BEGIN_MODES = {"DEFERRED": "DEFERRED", "IMMEDIATE": "IMMEDIATE"}


def _sqlite_module() -> Any:
    # Python builds without loadable-extension support (e.g. pyenv's default) cannot load
    # mod_spatialite; the pysqlite3 wheel bundles an SQLite that can.
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    import pysqlite3.dbapi2 as pysqlite3  # type: ignore[import-not-found]

    return pysqlite3


def make_engine(url: str, *, spatialite_library: str = "mod_spatialite",
                statement_timeout_ms: int = 5000, sqlite_mmap_mb: int = 1024,
                **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the spatial extension ready on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", StaticPool)  # one shared in-memory database
        engine = create_engine(url, module=_sqlite_module(),
                               connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _install_sqlite_hooks(engine, spatialite_library, statement_timeout_ms, sqlite_mmap_mb)
        return engine
    if parsed.get_backend_name() == "postgresql":
        options = f"-c statement_timeout={int(statement_timeout_ms)}"
        engine = create_engine(url, connect_args={"options": options}, **kwargs)
        _install_idle_ping(engine, IDLE_PING_S)
        return engine
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// "
                     "(SpatiaLite) or postgresql+psycopg:// (PostGIS)")


def _install_sqlite_hooks(engine: Engine, library: str, timeout_ms: int, mmap_mb: int) -> None:
    # pyproj and pyogrio bundle their own PROJ/GDAL. Loaded after mod_spatialite has pulled in
    # the system PROJ, they clash and the process crashes at exit; loaded first, they do not.
    import pyogrio  # noqa: F401
    import pyproj  # noqa: F401
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        # SQLite has no statement_timeout: a progress handler interrupts a statement that runs
        # past its deadline (the error is sqlite3.OperationalError "interrupted").
        state = {"deadline": math.inf}
        record.info["deadline"] = state
        dbapi_conn.set_progress_handler(lambda: time.monotonic() > state["deadline"], 20_000)
        dbapi_conn.enable_load_extension(True)
        dbapi_conn.load_extension(library)
        dbapi_conn.enable_load_extension(False)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Pages read through a memory map cost no read() call and no copy into SQLite's own
        # cache (2 MB per connection): searches of a large file spend less time in the kernel.
        cur.execute(f"PRAGMA mmap_size={max(int(mmap_mb), 0) * 1024 * 1024}")
        cur.close()
        # The sqlite3 module opens a transaction only before INSERT/UPDATE/DELETE and runs
        # any other statement (CREATE, DROP, ALTER) outside one, committed at once: a
        # migration or a bulk load that fails after its first DDL would leave that DDL
        # behind. Off with that; SQLAlchemy's "begin" below starts every transaction
        # (SQLAlchemy's documented pysqlite recipe), so DDL is rolled back with the rest.
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A writer asks for IMMEDIATE (Store.transaction, migrations): it takes the write
        # lock up front, waiting for another writer within the busy timeout. A DEFERRED
        # transaction that reads first and writes later would instead fail at once with
        # "database is locked" when another connection wrote in between.
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {_BEGIN_MODES[mode]}")

    @event.listens_for(engine, "before_cursor_execute")
    def _deadline(conn: Any, _cursor: Any, _stmt: Any, _params: Any, context: Any,
                  _many: bool) -> None:
        limit = conn.get_execution_options().get("statement_timeout_ms", timeout_ms)
        state = conn.info.get("deadline")
        if state is not None:
            state["deadline"] = time.monotonic() + limit / 1000 if limit else math.inf


def _install_idle_ping(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection before use only when it has been idle for ``idle_s``.

    ``pool_pre_ping`` pings at every checkout: one more round trip per request (0.2-0.3 ms of
    a ~1 ms search). A connection that served a request a moment ago is alive; one that sat
    in the pool may have been closed by a server restart, an idle timeout or the network,
    and a failed ping makes the pool replace it (``DisconnectionError``, SQLAlchemy's
    documented custom pessimistic check). A connection that dies within ``idle_s`` of its
    last use fails its first statement instead: the pool is then invalidated, and the
    store's reads run once more on a fresh connection (``store.base.retry_read``)."""
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise
            alive = False
        if not alive:
            raise DisconnectionError("the pooled connection was closed; replacing it")


def backend_name(engine: Engine) -> str:
    """``"postgis"`` or ``"spatialite"``."""
    return "postgis" if engine.dialect.name == "postgresql" else "spatialite"

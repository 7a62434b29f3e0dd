"""Run the Alembic migrations in ``migrations/`` against an engine (``mapservice init-db``)."""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from .db import SQLITE_BEGIN
from .paths import MIGRATIONS_DIR


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _writer(engine: Engine) -> Engine:
    """A migration writes: on SQLite its transaction takes the write lock when it begins."""
    return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})


def _unbounded(connection: Connection) -> Connection:
    """No statement timeout for a migration: the app's (``STATEMENT_TIMEOUT_MS``, 5 s) bounds
    requests, but building an index over a million resources takes longer (migrations 0006
    and 0007: ~10 s each), and a migration stopped half-way is rolled back."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    return connection.execution_options(statement_timeout_ms=0)  # SQLite's deadline


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    cfg = _config()
    with _writer(engine).begin() as connection:
        cfg.attributes["connection"] = _unbounded(connection)
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = _config()
    with _writer(engine).begin() as connection:
        cfg.attributes["connection"] = _unbounded(connection)
        command.downgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()

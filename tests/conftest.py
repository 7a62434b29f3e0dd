"""Shared fixtures: real SpatiaLite and real PostGIS databases, the app, shared test data.

PostGIS: ``MAPSERVICE_TEST_POSTGIS_URL`` names a server (an admin database URL); the test
command (``make test``) sets it after finding or starting a server. Each test session creates
its own database there and drops it at the end. In CI (``CI=true``) any skipped test fails the
run: a skipped PostGIS or browser test must not pass as green.
"""
from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mapservice import migrate
from mapservice.db import make_engine
from mapservice.store import Store, make_store

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["spatialite", "postgis"]


def shared_data(*parts: str) -> Path:
    """A file in ``../shared/data``; skips (fails in CI) when the folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is not beside the project)")
    return path


# ---- PostGIS server ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgis_url() -> Iterator[str]:
    admin = os.environ.get("MAPSERVICE_TEST_POSTGIS_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    try:
        admin_engine = make_engine(admin, isolation_level="AUTOCOMMIT", statement_timeout_ms=0)
        with admin_engine.connect() as conn:
            conn.execute(text("select 1"))
            available = conn.execute(text(
                "select 1 from pg_available_extensions where name = 'postgis'")).first()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no server"
        pytest.skip(f"no PostgreSQL server at {admin}: {exc.__class__.__name__}: {exc}")
    if not available:
        pytest.skip(f"the server at {admin} has no PostGIS extension installed")
    name = f"mapservice_test_{uuid.uuid4().hex[:10]}"
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin_engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin_engine.dispose()


@pytest.fixture(scope="session")
def _postgis_engine(postgis_url):
    # Test set-up and clean-up may be slow on a loaded CI machine: no 5 s limit here (the
    # apps under test keep their own engine with the configured limit).
    engine = make_engine(postgis_url, statement_timeout_ms=0)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _spatialite_engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("spatialite") / "test.sqlite"
    engine = make_engine(f"sqlite:///{path}", statement_timeout_ms=0)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def database_url(request, backend: str) -> str:
    engine = request.getfixturevalue(f"_{backend}_engine")
    return engine.url.render_as_string(hide_password=False)


def _clean(engine) -> None:
    """Empty every table of the models (children first), keeping the schema."""
    from mapservice.models import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def engine(request, backend):
    engine = request.getfixturevalue(f"_{backend}_engine")
    _clean(engine)
    return engine


@pytest.fixture
def store(engine) -> Store:
    return make_store(engine)


@pytest.fixture
def app(request, engine, tmp_path):
    from mapservice import create_app

    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                      "INSTANCE_DIR": str(tmp_path / "instance"), "TESTING": True,
                      "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png",
                      # a loaded CI machine must not turn slow set-up into 503s
                      "STATEMENT_TIMEOUT_MS": 60_000})
    yield app
    app.extensions["mapservice"]["engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


# ---- data ----------------------------------------------------------------------------------
def osm_poi_records(name: str = "community-centers", limit: int | None = None) -> list[dict]:
    """Named rows of a real Hamburg OSM POI CSV as store records (a fixed mapping for tests)."""
    path = shared_data("hamburg_osm_pois_2026_02", f"hamburg-poi-{name}-2026-02.csv")
    records = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row["name"]:
                continue
            records.append({"source_id": f"node/{row['id']}", "name": row["name"],
                            "lat": float(row["lat"]), "lon": float(row["lon"]),
                            "address": row["street"] or None, "postcode": row["zip_code"] or None,
                            "categories": ["community_centre"]})
    return records[:limit] if limit else records


# ---- CI: a skip is a failure -----------------------------------------------------------------
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if IN_CI and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} skipped test(s) count as failures "
            "(PostGIS, browser and shared-data tests must run in CI):", red=True)
        for nodeid in _skipped[:20]:
            terminalreporter.write_line(f"  {nodeid}", red=True)

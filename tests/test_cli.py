"""The command line on both backends, and a non-editable install that carries its data."""
from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import inspect, text

from mapservice import migrate
from mapservice.db import make_engine

from .conftest import ROOT, database_url


def _run(args, env, cwd, pythonpath=None):
    env = {**os.environ, **env}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-m", "mapservice", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_init_db_and_import_demo_on_both_backends(request, backend, engine, tmp_path):
    env = {"MAPSERVICE_DATABASE_URL": database_url(request, backend),
           "MAPSERVICE_INSTANCE_DIR": str(tmp_path)}
    done = _run(["init-db"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"revision {migrate.head()}" in done.stdout
    first = _run(["import-demo"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created 194" in first.stdout or "created" in first.stdout
    second = _run(["import-demo"], env, tmp_path)
    assert "created 0, updated 0" in second.stdout, second.stdout
    # rows without their stored Feature (e.g. written before migration 0005): init-db builds
    # them
    with engine.begin() as conn:
        conn.execute(text("UPDATE resource SET feature = NULL WHERE id % 2 = 0"))
        reset = conn.execute(text("SELECT count(*) FROM resource WHERE feature IS NULL")).scalar()
    assert reset > 0
    again = _run(["init-db"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"built the stored features of {reset} resources" in again.stdout
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM resource WHERE feature IS NULL")).scalar()
    assert left == 0


def test_flask_cli_reaches_the_same_commands(tmp_path):
    env = {**os.environ, "MAPSERVICE_INSTANCE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "mapservice", "--help"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("init-db", "import-demo", "serve"):
        assert command in done.stdout


def test_help_and_commands_write_no_secret_key_where_they_run(tmp_path):
    """`mapservice --help` in any directory left instance/secret_key behind (the commands sign
    nothing; the served app creates the key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSERVICE_")}
    done = subprocess.run([sys.executable, "-m", "mapservice", "--help"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "erase" in done.stdout and "archive-source" in done.stdout
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_migrations_up_down_up(backend, engine):
    migrate.downgrade(engine, "base")
    assert migrate.current(engine) is None
    assert "resource" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    names = set(inspect(engine).get_table_names())
    assert {"resource", "organization", "resource_version", "user_account", "source"} <= names
    with engine.connect() as conn:
        if backend == "postgis":
            idx = conn.execute(text("select indexdef from pg_indexes where indexname = "
                                    "'idx_resource_geom'")).scalar()
            assert "gist" in idx
        else:
            assert conn.execute(text("select count(*) from geometry_columns where "
                                     "f_table_name = 'resource' and spatial_index_enabled = 1")
                                ).scalar() == 1


def test_migrations_are_not_bound_by_the_apps_statement_timeout(backend, engine):
    # the app's timeout (5 s by default) bounds requests; an index over a million rows
    # takes longer. With a 1 ms timeout every migration step would be stopped otherwise.
    from sqlalchemy import event

    from mapservice.db import make_engine

    url = engine.url.render_as_string(hide_password=False)
    if backend == "postgis":
        # after the dialect's own start-up queries, which a 1 ms timeout would stop
        short = make_engine(url)

        @event.listens_for(short, "connect")
        def _short(dbapi_conn, _record):
            with dbapi_conn.cursor() as cur:
                cur.execute("SET statement_timeout = 1")
            dbapi_conn.commit()
    else:
        short = make_engine(url, statement_timeout_ms=1)
    try:
        migrate.downgrade(short, "0005")
        migrate.upgrade(short)
        assert migrate.current(short) == migrate.head()
        with short.connect() as conn:  # the timeout still applies outside migrations
            if backend == "postgis":
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1ms"
    finally:
        short.dispose()
        migrate.upgrade(engine)


def test_plain_pip_install_ships_templates_data_static_and_migrations(tmp_path):
    target = tmp_path / "site"
    # A real (non-editable) build of the package from a copy of the tree, as `pip install .`
    # does it; only the dependencies come from the test venv.
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--target", str(target), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pkg = target / "mapservice"
    for path in ("templates/map.html", "data/taxonomy.yaml", "data/demo/resources.json",
                 "data/gazetteer/postcodes.csv", "migrations/env.py",
                 "migrations/versions/0001_initial.py", "static/js/map.js",
                 "static/vendor/leaflet/leaflet.js", "static/vendor/leaflet/images/layers.png"):
        assert (pkg / path).is_file(), path
    work = tmp_path / "work"
    work.mkdir()
    env = {"MAPSERVICE_INSTANCE_DIR": str(work / "instance")}
    help_ = _run(["--help"], env, work, pythonpath=str(target))
    assert help_.returncode == 0 and "init-db" in help_.stdout
    init = _run(["init-db"], env, work, pythonpath=str(target))
    assert init.returncode == 0, init.stderr
    assert (work / "instance" / "mapservice.sqlite").is_file()
    check = subprocess.run(
        [sys.executable, "-c", "import mapservice.paths as p; print(p.TEMPLATES_DIR)"],
        env={**os.environ, "PYTHONPATH": str(target)}, cwd=work, capture_output=True, text=True)
    assert check.stdout.strip() == str(pkg / "templates")
    demo = _run(["import-demo"], env, work, pythonpath=str(target))
    assert demo.returncode == 0, demo.stderr
    engine = make_engine(f"sqlite:///{work / 'instance' / 'mapservice.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from resource")).scalar() >= 150


def test_commands_on_a_database_without_the_schema_say_to_run_init_db(tmp_path):
    # e.g. run from another directory: a new, empty SpatiaLite file (was: a traceback "no such
    # table", and export left an empty file behind)
    env = {"MAPSERVICE_INSTANCE_DIR": str(tmp_path / "instance")}
    for args in (["import-demo"], ["export", "--format", "csv", "out.csv"], ["duplicates"],
                 ["archive-source", "demo"], ["serve", "--port", "1"]):
        done = _run(args, env, tmp_path)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "has no tables yet: run 'mapservice init-db'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.csv").exists()
    assert _run(["init-db"], env, tmp_path).returncode == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'instance' / 'mapservice.sqlite'}")
    try:
        history = migrate.head()
        migrate.downgrade(engine, "-1")
        older = migrate.current(engine)
    finally:
        engine.dispose()
    done = _run(["duplicates"], env, tmp_path)
    assert done.returncode == 1
    assert f"has the schema revision {older}, this version needs {history}" in done.stderr
    assert _run(["init-db"], env, tmp_path).returncode == 0
    assert _run(["duplicates"], env, tmp_path).returncode == 0

"""`mapservice import` through the command line, on both backends: the flags do what their help
says (--dry-run, --json, --archive-missing, --crs, --format), exit codes and messages."""
from __future__ import annotations

import json

import pytest

from .test_import_csv import db_state, stored, write
from .test_import_vector import _kita_lonlat, zipped_shapefile

HEADER = "id;name;lat;lon;categories\n"
ROWS = ["a1;Jugendtreff Nord;53,6;10,0;youth_centre\n",
        "a2;Sprachcafé Süd;53,5;10,0;language_cafe\n",
        "a3;Elternschule Ost;53,55;10,1;family_centre\n"]


def _csv(tmp_path, name: str, rows: list[str]):
    return write(tmp_path, name, HEADER + "".join(rows))


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=["import", *map(str, args)])
    return invoke


@pytest.fixture
def app_store(app):
    return app.extensions["mapservice"]["store"]


def test_dry_run_reports_and_writes_nothing(cli, app_store, tmp_path):
    path = _csv(tmp_path, "treffs.csv", ROWS)
    before = db_state(app_store)
    done = cli(path, "--dry-run")
    assert done.exit_code == 0, done.output
    assert "created 3" in done.output
    assert db_state(app_store) == before
    done = cli(path, "--dry-run", "--json")
    report = json.loads(done.output)
    assert report["created"] == 3 and report["updated"] == 0
    assert db_state(app_store) == before


def test_json_report_and_a_second_run_changes_nothing(cli, app_store, tmp_path):
    path = _csv(tmp_path, "treffs.csv", ROWS)
    first = json.loads(cli(path, "--json").output)
    assert (first["created"], first["updated"], first["unchanged"]) == (3, 0, 0)
    state = db_state(app_store)
    again = json.loads(cli(path, "--json").output)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert db_state(app_store) == state


def test_archive_missing_only_when_asked(cli, app_store, tmp_path):
    cli(_csv(tmp_path, "treffs.csv", ROWS))
    (tmp_path / "today").mkdir()
    smaller = _csv(tmp_path / "today", "treffs.csv", ROWS[:2])  # the same source name
    done = json.loads(cli(smaller, "--json").output)
    assert done["archived"] == 0
    assert all(r.status == "published" for r in stored(app_store, "treffs").values())
    done = json.loads(cli(smaller, "--json", "--archive-missing").output)
    assert done["archived"] == 1
    statuses = {r.source_id: r.status for r in stored(app_store, "treffs").values()}
    assert statuses == {"a1": "published", "a2": "published", "a3": "archived"}


def test_a_large_file_is_read_in_a_second_process_with_the_same_outcome(cli, app_store,
                                                                         tmp_path, monkeypatch):
    from importers import pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)  # (normally from 16 MB on)
    done = cli(_csv(tmp_path, "treffs.csv", ROWS), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["created"] == 3
    (tmp_path / "today").mkdir()
    smaller = _csv(tmp_path / "today", "treffs.csv", [ROWS[0], ROWS[1].replace("53,5", "53,51")])
    done = json.loads(cli(smaller, "--json", "--archive-missing").output)
    assert (done["updated"], done["unchanged"], done["archived"]) == (1, 1, 1)
    statuses = {r.source_id: r.status for r in stored(app_store, "treffs").values()}
    assert statuses == {"a1": "published", "a2": "published", "a3": "archived"}
    broken = _csv(tmp_path, "broken.csv", [*ROWS, "a4;;53,5;10,0;youth_centre\n"])
    before = db_state(app_store)
    done = cli(broken)
    assert done.exit_code == 2 and "row 4, field 'name': missing name" in done.output
    assert db_state(app_store) == before


def test_crs_flag_places_a_file_without_crs(cli, app_store, tmp_path):
    path = zipped_shapefile(tmp_path, None)
    before = db_state(app_store)
    refused = cli(path, "--source", "kitas")
    assert refused.exit_code == 2 and "--crs EPSG:25832" in refused.output
    assert db_state(app_store) == before
    done = cli(path, "--source", "kitas", "--crs", "EPSG:25832")
    assert done.exit_code == 0 and "created 1" in done.output, done.output
    (res,) = stored(app_store, "kitas").values()
    lon, lat = _kita_lonlat()
    hit = app_store.get(res.uid)
    assert (hit.lon, hit.lat) == (pytest.approx(lon, abs=1e-6), pytest.approx(lat, abs=1e-6))
    bad = cli(path, "--source", "kitas", "--crs", "EPSG:nonsense")
    assert bad.exit_code == 2 and "EPSG:nonsense" in bad.output


def test_format_flag_and_an_unreadable_file(cli, app_store, tmp_path):
    path = write(tmp_path, "treffs.txt", HEADER + ROWS[0])  # no suffix to detect
    done = cli(path, "--format", "csv", "--json")
    assert done.exit_code == 0 and json.loads(done.output)["created"] == 1
    before = db_state(app_store)
    broken = write(tmp_path, "broken.geojson", '{"type": "FeatureCollection", "features": [')
    done = cli(broken)
    assert done.exit_code == 2 and "broken.geojson" in done.output
    assert db_state(app_store) == before


def test_archive_missing_refuses_a_file_without_a_valid_record(cli, app_store, tmp_path):
    # --skip-invalid with only invalid rows would have archived the whole source
    cli(_csv(tmp_path, "treffs.csv", ROWS))
    (tmp_path / "today").mkdir()
    broken = _csv(tmp_path / "today", "treffs.csv", ["a9;;53,5;10,0;youth_centre\n"])
    before = db_state(app_store)
    for flags in (("--skip-invalid", "--archive-missing"),
                  ("--skip-invalid", "--archive-missing", "--dry-run")):
        done = cli(broken, *flags)
        assert done.exit_code == 2, done.output
        assert "the file has no valid record: every resource of the source 'treffs' would be " \
               "archived" in done.output
        assert "row 1, field 'name': missing name" in done.output
        assert db_state(app_store) == before
    # without --archive-missing the run reports the invalid row and changes nothing
    done = cli(broken, "--skip-invalid")
    assert done.exit_code == 0 and "invalid 1" in done.output, done.output
    assert all(r.status == "published" for r in stored(app_store, "treffs").values())


def test_archive_source_retires_a_whole_source_and_an_import_brings_it_back(app, app_store,
                                                                             cli, tmp_path):
    runner = app.test_cli_runner()
    path = _csv(tmp_path, "treffs.csv", ROWS)
    cli(path)
    unknown = runner.invoke(args=["archive-source", "nope"])
    assert unknown.exit_code != 0 and "no source 'nope'; the database has treffs" in \
        unknown.output
    before = db_state(app_store)
    dry = runner.invoke(args=["archive-source", "treffs", "--dry-run"])
    assert dry.exit_code == 0 and "treffs: would archive 3 resource(s)" in dry.output
    assert db_state(app_store) == before
    done = runner.invoke(args=["archive-source", "treffs"])
    assert done.exit_code == 0 and "treffs: archived 3 resource(s)" in done.output
    assert {r.status for r in stored(app_store, "treffs").values()} == {"archived"}
    assert app_store.count() == 0
    again = runner.invoke(args=["archive-source", "treffs"])
    assert "treffs: archived 0 resource(s)" in again.output
    report = json.loads(cli(path, "--json").output)
    assert (report["created"], report["updated"]) == (0, 3)
    assert {r.status for r in stored(app_store, "treffs").values()} == {"published"}

"""Pipeline rules that cut across formats (both backends)."""
from __future__ import annotations

import pytest

from importers import ImportFailed, ImportOptions, run_import
from mapservice.search import SearchQuery


def _csv(path, rows):
    path.write_text("id,name,lat,lon,categories\n" + "".join(
        f"{i},{name},{lat},{lon},library\n" for i, name, lat, lon in rows), encoding="utf-8")
    return path


def test_invalid_rows_are_not_archived_as_missing(store, tmp_path):
    first = _csv(tmp_path / "a.csv", [(1, "Bücherhalle Eins", 53.55, 10.0),
                                      (2, "Bücherhalle Zwei", 53.56, 10.0),
                                      (3, "Bücherhalle Drei", 53.57, 10.0)])
    run_import(store, first, ImportOptions(source="lib"))
    # row 2 is now broken (latitude 100), row 3 is gone from the file
    second = _csv(tmp_path / "b.csv", [(1, "Bücherhalle Eins", 53.55, 10.0),
                                       (2, "Bücherhalle Zwei", 100, 10.0)])
    report = run_import(store, second, ImportOptions(source="lib", skip_invalid=True,
                                                     archive_missing=True))
    assert report.archived == 1 and len(report.invalid) == 1
    assert "row 2" in str(report.invalid[0]) and "lat" in str(report.invalid[0])
    assert store.count() == 2 and store.count(statuses=("archived",)) == 1


def test_default_run_aborts_and_writes_nothing(store, tmp_path):
    run_import(store, _csv(tmp_path / "a.csv", [(1, "Eins", 53.55, 10.0)]),
               ImportOptions(source="lib"))
    uid = store.search(SearchQuery()).hits[0].properties["uid"]
    before = store.history(uid)
    bad = _csv(tmp_path / "b.csv", [(1, "Eins (neu)", 53.55, 10.0), (2, "", 53.56, 10.0)])
    with pytest.raises(ImportFailed) as failed:
        run_import(store, bad, ImportOptions(source="lib"))
    assert "row 2" in failed.value.detail and "name" in failed.value.detail
    hits = store.search(SearchQuery()).hits
    assert [h.properties["name"] for h in hits] == ["Eins"]
    assert store.history(hits[0].properties["uid"]) == before


def test_dry_run_reports_but_writes_nothing(store, tmp_path):
    path = _csv(tmp_path / "a.csv", [(1, "Eins", 53.55, 10.0), (2, "Zwei", 53.56, 10.0)])
    report = run_import(store, path, ImportOptions(source="lib", dry_run=True))
    assert report.created == 2 and report.dry_run
    assert store.count() == 0


class Interrupted(Exception):
    """What Ctrl-C (or a lost connection) would do at that moment of a run."""


@pytest.mark.parametrize("rows", [3, 5_200], ids=["orm", "bulk"])
@pytest.mark.parametrize("at", ["writing", "archiving", "looking for possible duplicates",
                                "committing"])
def test_a_run_interrupted_at_any_step_leaves_everything_as_it_was(store, tmp_path, rows, at):
    """Source, records, archived records and possible duplicates are one transaction: a run
    stopped after its records were written, while archiving or while looking for duplicates
    writes nothing at all, on the small (ORM) path as on the bulk path."""
    first = _csv(tmp_path / "a.csv", [(i, f"Bücherhalle {i}", 53.5 + i * 1e-5, 10.0)
                                      for i in range(rows)])
    run_import(store, first, ImportOptions(source="lib", licence="CC0-1.0"))
    before = store.count(), store.count(statuses=("archived",)), store.sources_in_use()
    # changed names, one row gone (archived with --archive-missing), a new source licence
    second = _csv(tmp_path / "b.csv", [(i, f"Bücherhalle Nr. {i}", 53.5 + i * 1e-5, 10.0)
                                       for i in range(1, rows)])

    def progress(items, total, label):
        for n, item in enumerate(items):
            if label == at == "writing" and n == total - 1:
                raise Interrupted(label)
            yield item

    def status(message):
        if message.startswith(at):
            raise Interrupted(message)

    with pytest.raises(Interrupted):
        run_import(store, second, ImportOptions(source="lib", licence="ODbL-1.0",
                                                archive_missing=True, progress=progress,
                                                status=status))
    assert (store.count(), store.count(statuses=("archived",)), store.sources_in_use()) == before
    names = {h.properties["name"] for h in store.search(SearchQuery(limit=5)).hits}
    assert all("Nr." not in name for name in names)
    # and the same run, not interrupted, writes it all
    report = run_import(store, second, ImportOptions(source="lib", licence="ODbL-1.0",
                                                     archive_missing=True))
    assert (report.updated, report.archived) == (rows - 1, 1)
    assert store.count(statuses=("archived",)) == 1


def test_an_interrupted_first_bulk_import_leaves_an_empty_working_database(store, tmp_path):
    """The first bulk load into an empty table rebuilds its indexes inside the run's one
    transaction; stopped after that (while looking for duplicates), nothing is left: no
    resource, no source, and the indexes and search work for the next run."""
    path = _csv(tmp_path / "a.csv", [(i, f"Jugendtreff {i}", 53.5 + i * 1e-5, 10.0)
                                     for i in range(5_200)])

    def status(message):
        if message.startswith("looking for possible duplicates"):
            raise Interrupted(message)

    with pytest.raises(Interrupted):
        run_import(store, path, ImportOptions(source="youth", status=status))
    assert store.count() == 0 and store.sources_in_use() == []
    report = run_import(store, path, ImportOptions(source="youth"))
    assert report.created == 5_200
    near = store.search(SearchQuery(near=(53.5, 10.0), limit=3)).hits
    assert [h.properties["name"] for h in near] == ["Jugendtreff 0", "Jugendtreff 1",
                                                    "Jugendtreff 2"]
    assert store.search(SearchQuery(text="jugendtreff", limit=1)).hits


def test_dry_run_is_the_callers_transaction_when_conn_is_given(store):
    with store.transaction(dry_run=True) as conn, pytest.raises(ValueError, match="dry_run"):
        store.upsert([], source="x", changed_by="t", dry_run=True, conn=conn)


# ---- a large file: read in a second process while this one writes ---------------------------
def _parallel(monkeypatch):
    """Every file takes the streamed path (normally from 16 MB on)."""
    from importers import pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)


def _report(report):
    data = report.as_dict()
    data.pop("duplicates")  # pairs carry the ids of the rows each run wrote
    return data, len(report.duplicates)


@pytest.mark.parametrize("parts, kw", [
    (("hamburg_osm_pois_2026_02", "hamburg-poi-community-centers-2026-02.csv"),
     {"skip_invalid": True}),
    (("osm_xml_pbf_north_bayreuth", "north-bayreuth.osm.pbf"), {"skip_invalid": True}),
    (("hamburg_kita_wfs_schema_sample", "kita.gml"), {"skip_invalid": True}),
    (("hsds1_sample_datapackage_openreferral", "all_resources", "datapackage.json"),
     {"skip_invalid": True}),
])
def test_the_streamed_path_imports_what_the_serial_path_does(store, monkeypatch, tmp_path,
                                                            parts, kw):
    from importers.boundaries import load_boundaries

    from .conftest import shared_data
    from .test_boundaries import stadtteile
    from .test_import_csv import HAMBURG
    from .test_import_osm import EXTRA_RULES, _mapping

    load_boundaries(store, stadtteile())  # the districts are derived batch by batch
    path = shared_data(*parts)
    if path.suffix == ".pbf":  # (the shipped table maps none of this extract's places)
        kw = {**kw, "mapping": _mapping(tmp_path, EXTRA_RULES, exclude=[])}
    options = ImportOptions(source="s", region_bbox=HAMBURG, **kw)
    serial = run_import(store, path, ImportOptions(**{**options.__dict__, "dry_run": True}))
    _parallel(monkeypatch)
    streamed = run_import(store, path, options)
    assert streamed.created == serial.created > 0
    expected, duplicates = _report(serial)
    assert _report(streamed) == ({**expected, "dry_run": False}, duplicates)
    # what the streamed run stored is exactly what the serial path reads from the file
    monkeypatch.undo()
    again = run_import(store, path, options)
    assert (again.created, again.updated, again.unchanged) == (0, 0, streamed.created)


def test_the_streamed_path_aborts_on_an_invalid_record_and_writes_nothing(store, tmp_path,
                                                                          monkeypatch):
    from .test_import_csv import db_state

    rows = [(i, f"Bücherhalle {i}", 53.5 + i / 1000, 10.0) for i in range(1, 3001)]
    rows[1500] = (1501, "Bücherhalle kaputt", 100, 10.0)
    path = _csv(tmp_path / "big.csv", rows)
    before = db_state(store)
    _parallel(monkeypatch)
    with pytest.raises(ImportFailed) as err:
        run_import(store, path, ImportOptions(source="lib"))
    (problem,) = err.value.problems
    assert (problem.where.item, problem.where.field) == (1501, "lat")
    assert db_state(store) == before
    report = run_import(store, path, ImportOptions(source="lib", skip_invalid=True))
    assert (report.read, report.created, len(report.invalid)) == (3000, 2999, 1)


@pytest.mark.parametrize("content, message", [
    ("id,name,lat,lon\n", "the file has a header but no data rows"),
    (b"id,name,lat,lon\n1,\x81\x8d,53.5,10.0\n", "cannot decode the file"),
])
def test_the_streamed_path_reports_a_broken_file_as_the_serial_path(store, tmp_path,
                                                                    monkeypatch, content,
                                                                    message):
    from .test_import_csv import db_state, write

    path = write(tmp_path, "broken.csv", content)
    before = db_state(store)
    _parallel(monkeypatch)
    with pytest.raises(ImportFailed, match=message):
        run_import(store, path, ImportOptions(source="x"))
    assert db_state(store) == before


def test_a_reading_process_that_dies_fails_the_run_and_writes_nothing(store, tmp_path,
                                                                       monkeypatch):
    import sys

    from mapservice.errors import MapserviceError

    from .test_import_csv import db_state

    path = _csv(tmp_path / "a.csv", [(1, "Bücherhalle", 53.55, 10.0)])
    before = db_state(store)
    _parallel(monkeypatch)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(MapserviceError, match="the reading process ended unexpectedly "
                                              r"\(exit code 1\)"):
        run_import(store, path, ImportOptions(source="lib"))
    assert db_state(store) == before


def _readers_left() -> list[int]:
    """Reading processes (importers.worker) this test process started and did not reap."""
    import os
    from pathlib import Path

    left = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"importers.worker" in cmdline:
            left.append(int(proc.name))
    return left


@pytest.mark.parametrize("at", ["reading and writing", "looking for possible duplicates"])
def test_an_interrupted_streamed_run_writes_nothing_and_leaves_no_process(store, tmp_path,
                                                                          monkeypatch, at):
    path = _csv(tmp_path / "a.csv", [(i, f"Bücherhalle {i}", 53.5 + i * 1e-5, 10.0)
                                     for i in range(6_000)])

    def progress(items, total, label):
        for n, item in enumerate(items):
            if label.startswith(at) and n == 2_500:  # mid-stream: the reader is still busy
                raise Interrupted(label)
            yield item

    def status(message):
        if message.startswith(at):
            raise Interrupted(message)

    _parallel(monkeypatch)
    with pytest.raises(Interrupted):
        run_import(store, path, ImportOptions(source="lib", progress=progress, status=status))
    assert store.count() == 0 and store.sources_in_use() == []
    assert _readers_left() == []
    assert run_import(store, path, ImportOptions(source="lib")).created == 6_000


def test_a_message_cut_off_by_a_killed_reader_fails_the_run_cleanly(store, tmp_path,
                                                                   monkeypatch):
    import sys

    from mapservice.errors import MapserviceError

    from .test_import_csv import db_state

    # a "reading process" that writes the start of a pickle and dies, as under kill -9
    fake = tmp_path / "reader.sh"
    fake.write_text("#!/bin/sh\ncat > /dev/null\nprintf '\\200\\005\\225\\377'\nexit 3\n")
    fake.chmod(0o755)
    path = _csv(tmp_path / "a.csv", [(1, "Bücherhalle", 53.55, 10.0)])
    before = db_state(store)
    _parallel(monkeypatch)
    monkeypatch.setattr(sys, "executable", str(fake))
    with pytest.raises(MapserviceError, match=r"ended unexpectedly \(exit code 3\)"):
        run_import(store, path, ImportOptions(source="lib"))
    assert db_state(store) == before


def test_the_reading_process_ends_with_a_killed_import(tmp_path):
    """kill -9 of the importing process: its reader does not go on on its own. (Here the
    reader has found an invalid first row, so it sends nothing more and would otherwise
    validate the rest of the file before noticing that nobody listens.)"""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    rows = [(i, f"Bücherhalle {i}", 53.5 + (i % 1000) * 1e-4, 10.0) for i in range(300_000)]
    rows[0] = (0, "Bücherhalle kaputt", 100, 10.0)
    path = _csv(tmp_path / "a.csv", rows)
    script = f"""
from importers import ImportOptions, pipeline, run_import
from mapservice import migrate
from mapservice.db import make_engine
from mapservice.store import make_store
pipeline.PARALLEL_MIN_BYTES = 0
engine = make_engine("sqlite:///{tmp_path}/k.db")
migrate.upgrade(engine)
run_import(make_store(engine), {str(path)!r}, ImportOptions(source="k"))
"""
    importer = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        readers: list[int] = []
        while not readers and time.monotonic() < deadline:
            readers = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                       and _parent_of(p) == importer.pid and b"importers.worker" in _cmdline(p)]
            time.sleep(0.05)
        assert readers, "no reading process started"
        time.sleep(1.0)  # it is reading now
        assert _state(readers[0]) not in (None, "Z")
        os.kill(importer.pid, signal.SIGKILL)
        importer.wait()
        deadline = time.monotonic() + 2
        while _state(readers[0]) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(readers[0]) in (None, "Z")  # gone (or a zombie until init reaps it)
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()


def _parent_of(proc) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(proc) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str | None:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_a_broken_overpass_file_is_reported_alike_when_streamed(store, tmp_path, monkeypatch):
    import json

    from .test_import_csv import write

    path = write(tmp_path, "broken.json", json.dumps({"version": 0.6, "elements": [
        {"type": "node", "id": 1, "lat": 53.5, "lon": 10.0, "tags": {"amenity": "library"}},
        5, "x"]}))
    with pytest.raises(ImportFailed) as serial:
        run_import(store, path, ImportOptions(source="o", format="overpass"))
    _parallel(monkeypatch)
    with pytest.raises(ImportFailed) as streamed:
        run_import(store, path, ImportOptions(source="o", format="overpass"))
    assert str(streamed.value) == str(serial.value)
    assert "2 problem(s) in 3 record(s)" in str(streamed.value)


def test_a_reader_registered_at_run_time_stays_in_this_process(store, tmp_path, monkeypatch):
    from importers import pipeline
    from importers.pipeline import Candidate, Where

    class Lines:
        name, suffixes = "lines-test", (".lines",)

        def sniff(self, path):
            return path.suffix == ".lines"

        def read(self, path, options):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                name, lat, lon = line.split("|")
                yield Candidate(Where(str(path), n), {"source_id": str(n), "name": name,
                                                      "lat": float(lat), "lon": float(lon)})

    monkeypatch.setitem(pipeline.READERS, "lines-test", Lines())
    _parallel(monkeypatch)
    path = tmp_path / "a.lines"
    path.write_text("Treff|53.55|10.0\nCafé|53.56|10.0\n")
    report = run_import(store, path, ImportOptions(source="lines", format="lines-test"))
    assert report.created == 2

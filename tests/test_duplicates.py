"""Possible duplicates on both backends: real Hamburg community centres imported twice, under
different sources, with slightly altered names and coordinates."""
from __future__ import annotations

import csv
import math

import pytest
from pyproj import Geod
from sqlalchemy import select, update

from mapservice.models import PossibleDuplicate, Resource
from mapservice.store.base import DUPLICATE_MIN_SCORE, name_score

from .conftest import osm_poi_records

GEOD = Geod(ellps="WGS84")


def _moved(rec: dict, north_m: float, east_m: float = 0.0, **changes) -> dict:
    """``rec`` moved by the given metres (on the ellipsoid), with ``changes``."""
    lon, lat, _ = GEOD.fwd(rec["lon"], rec["lat"], math.degrees(math.atan2(east_m, north_m)),
                           math.hypot(north_m, east_m))
    return {**rec, "lat": round(lat, 7), "lon": round(lon, 7), **changes}


def _altered(name: str) -> str:
    """The same name as another source might spell it."""
    return (name.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae").replace("ß", "ss")
            .replace(" ", "-", 1) + " e.V.")


def _near_copies(tmp_path, recs: list[dict], north_m: float):
    """A CSV of another source ("bezirk") with ``recs`` moved and spelled differently."""
    path = tmp_path / "bezirk.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "name", "lat", "lon", "categories"])
        for i, rec in enumerate(recs):
            moved = _moved(rec, north_m)
            writer.writerow([f"b-{i}", _altered(rec["name"]), moved["lat"], moved["lon"],
                             "community_centre"])
    return path


@pytest.fixture
def centres() -> list[dict]:
    recs = osm_poi_records("community-centers")
    # well-separated ones, so that each test controls who is near whom
    chosen: list[dict] = []
    for rec in recs:
        if all(GEOD.inv(rec["lon"], rec["lat"], c["lon"], c["lat"])[2] > 1000 for c in chosen):
            chosen.append(rec)
    assert len(chosen) >= 30
    return chosen[:30]


def test_near_identical_names_of_other_sources_are_flagged(store, centres, app):
    store.upsert(centres, source="osm", changed_by="t")
    twins = [_moved(r, 20, 15, source_id=f"b-{i}", name=_altered(r["name"]))
             for i, r in enumerate(centres[:8])]
    store.upsert(twins, source="bezirk", changed_by="t")
    found = store.flag_duplicates("bezirk")
    assert len(found) == 8
    by_name = {f["name"]: f for f in found}
    for rec, twin in zip(centres, twins):
        pair = by_name[twin["name"]]
        assert pair["other_name"] == rec["name"] and pair["other_source"] == "osm"
        assert pair["distance_m"] == pytest.approx(25.0, abs=0.5)
        assert pair["score"] >= DUPLICATE_MIN_SCORE
    stored = store.possible_duplicates()
    assert len(stored) == 8 and {p["status"] for p in stored} == {"open"}
    assert all(p["source"] == "osm" for p in stored)  # resource_a: the lower id, stored first
    assert store.count() == 38  # flagged, never merged

    result = app.test_cli_runner().invoke(args=["duplicates"])
    assert result.exit_code == 0, result.output
    assert "8 pair(s)" in result.output and _altered(centres[0]["name"]) in result.output


def test_flagging_is_idempotent_and_respects_dismissals(store, centres):
    store.upsert(centres, source="osm", changed_by="t")
    store.upsert([_moved(r, 10, source_id=f"b-{i}") for i, r in enumerate(centres[:5])],
                 source="bezirk", changed_by="t")
    assert len(store.flag_duplicates("bezirk")) == 5
    assert store.flag_duplicates("bezirk") == []
    assert store.flag_duplicates("osm") == []  # the same pairs seen from the other side
    with store.session() as s, s.begin():
        s.execute(update(PossibleDuplicate).values(status="dismissed"))
    assert store.flag_duplicates("bezirk") == []
    assert store.possible_duplicates() == []
    assert len(store.possible_duplicates("dismissed")) == 5
    with store.engine.connect() as conn:
        assert conn.execute(select(PossibleDuplicate.id)).all().__len__() == 5


def test_same_name_200_m_apart_is_not_flagged(store, centres):
    store.upsert(centres, source="osm", changed_by="t")
    store.upsert([_moved(r, 200, source_id=f"b-{i}") for i, r in enumerate(centres[:5])]
                 + [_moved(r, 0, 49, source_id=f"c-{i}") for i, r in enumerate(centres[5:8])],
                 source="bezirk", changed_by="t")
    found = store.flag_duplicates("bezirk")
    assert sorted(f["name"] for f in found) == sorted(r["name"] for r in centres[5:8])
    assert all(f["distance_m"] <= 50 for f in found)


def test_different_names_10_m_apart_are_not_flagged(store, centres):
    store.upsert(centres, source="osm", changed_by="t")
    # each place gets the name of another community centre
    strangers = [_moved(r, 10, source_id=f"b-{i}", name=centres[-1 - i]["name"])
                 for i, r in enumerate(centres[:10])]
    assert all(name_score(s["name"], r["name"]) < DUPLICATE_MIN_SCORE
               for s, r in zip(strangers, centres))
    store.upsert(strangers, source="bezirk", changed_by="t")
    assert store.flag_duplicates("bezirk") == []


def test_same_source_is_not_flagged(store, centres):
    store.upsert([*centres, *[_moved(r, 5, source_id=f"again-{i}")
                              for i, r in enumerate(centres[:5])]],
                 source="osm", changed_by="t")
    store.upsert([_moved(centres[20], 5000, source_id="far")], source="bezirk", changed_by="t")
    assert store.flag_duplicates("osm") == []
    assert store.flag_duplicates("bezirk") == []


def test_large_source_next_to_a_small_one(store, centres):
    # flag_duplicates drives the index probes from the smaller side: both ways agree
    store.upsert(osm_poi_records("community-centers"), source="osm", changed_by="t")
    store.upsert([_moved(r, -30, source_id=f"b-{i}", name=r["name"].upper())
                  for i, r in enumerate(centres[:4])], source="bezirk", changed_by="t")
    found = store.flag_duplicates("osm")
    assert sorted(f["other_name"] for f in found) == sorted(r["name"].upper()
                                                            for r in centres[:4])
    assert all(f["other_source"] == "bezirk" for f in found)


def test_confidential_and_archived_resources(store, centres):
    store.upsert(centres, source="osm", changed_by="t")
    # its public point is a grid cell centre up to ~600 m away: compared by its true point
    shelter = _moved(centres[0], 20, source_id="s1", location_confidential=True)
    gone = _moved(centres[1], 20, source_id="s2", status="archived")
    store.upsert([shelter, gone], source="bezirk", changed_by="t")
    found = store.flag_duplicates("bezirk")
    assert [(f["name"], f["distance_m"]) for f in found] == [(centres[0]["name"],
                                                              pytest.approx(20, abs=0.5))]
    with store.engine.connect() as conn:
        archived = conn.execute(select(Resource.id).where(Resource.status == "archived")).all()
    assert len(archived) == 1


def test_an_import_reports_possible_duplicates(store, centres, tmp_path):
    from importers import ImportOptions, run_import

    store.upsert(centres, source="osm", changed_by="t")
    path = _near_copies(tmp_path, centres[:3], 15)
    report = run_import(store, path, ImportOptions(source="bezirk"))
    assert report.created == 3 and len(report.duplicates) == 3
    assert "possible duplicates 3" in report.summary()
    assert run_import(store, path, ImportOptions(source="bezirk")).duplicates == []


def test_a_dry_run_reports_the_duplicates_it_would_flag_and_stores_none(store, centres,
                                                                        tmp_path):
    from importers import ImportOptions, run_import

    store.upsert(centres, source="osm", changed_by="t")
    path = _near_copies(tmp_path, centres[:2], 20)
    report = run_import(store, path, ImportOptions(source="bezirk", dry_run=True))
    assert report.created == 2 and len(report.duplicates) == 2
    assert {d["other_source"] for d in report.duplicates} == {"osm"}
    assert "DRY RUN" in report.summary() and "possible duplicates 2" in report.summary()
    with store.session() as session:
        assert session.scalars(select(PossibleDuplicate)).all() == []
    assert store.count() == len(centres)
    # the real run then flags the same pairs
    assert len(run_import(store, path, ImportOptions(source="bezirk")).duplicates) == 2


def test_a_moderator_dismisses_or_merges_a_pair(store, centres, app):
    """`mapservice resolve-duplicate`: dismissed pairs stay closed; a merge archives the other
    listing with its history, and a re-import of its source does not publish it again."""
    store.upsert(centres[:2], source="osm", changed_by="t")
    twins = [_moved(r, 10, source_id=f"b-{i}") for i, r in enumerate(centres[:2])]
    store.upsert(twins, source="bezirk", changed_by="t")
    store.flag_duplicates("bezirk")
    first, second = sorted(store.possible_duplicates(), key=lambda p: p["id"])
    runner = app.test_cli_runner()
    assert runner.invoke(args=["resolve-duplicate", str(first["id"])]).exit_code != 0
    done = runner.invoke(args=["resolve-duplicate", str(first["id"]), "--dismiss"])
    assert done.exit_code == 0 and f"#{first['id']}: dismissed" in done.output
    again = runner.invoke(args=["resolve-duplicate", str(first["id"]), "--dismiss"])
    assert again.exit_code != 0 and "dismissed already" in again.output
    stranger = runner.invoke(args=["resolve-duplicate", str(second["id"]), "--keep",
                                   first["uid"]])
    assert stranger.exit_code != 0 and "is not one of the pair" in stranger.output
    merged = runner.invoke(args=["resolve-duplicate", str(second["id"]), "--keep",
                                 second["uid"]])
    assert merged.exit_code == 0, merged.output
    assert f"archived {second['other_uid']}" in merged.output
    assert store.count() == 3 and store.get(second["other_uid"]) is None
    assert store.history(second["other_uid"])[-1]["diff"] == {"status": ["published",
                                                                       "archived"]}
    assert sorted(p["status"] for p in store.possible_duplicates(None)) == ["dismissed",
                                                                          "merged"]
    # the other source again, unchanged: the archived twin stays archived (a conflict)
    report = store.upsert(twins, source="bezirk", changed_by="t")
    assert [c["field"] for c in report.conflicts] == ["status"]
    assert store.count() == 3
    assert "no possible duplicate" in runner.invoke(
        args=["resolve-duplicate", "999999", "--dismiss"]).output


def test_a_merge_never_keeps_an_archived_listing(store, centres, app):
    """Keeping a listing that is archived (gone from its source) archived the other too: the
    place vanished. `duplicates` names an archived side."""
    store.upsert(centres[:1], source="osm", changed_by="t")
    store.upsert([_moved(centres[0], 10, source_id="b-0")], source="bezirk", changed_by="t")
    store.flag_duplicates("bezirk")
    (pair,) = store.possible_duplicates()
    store.archive_missing("osm", [], changed_by="t")  # the osm listing left its source
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["duplicates"])
    assert f"(osm:{centres[0]['source_id']}, archived)" in listed.output, listed.output
    refused = runner.invoke(args=["resolve-duplicate", str(pair["id"]), "--keep", pair["uid"]])
    assert refused.exit_code != 0 and "is archived: keep the published one" in refused.output
    assert store.count() == 1
    kept = runner.invoke(args=["resolve-duplicate", str(pair["id"]), "--keep",
                               pair["other_uid"]])
    assert kept.exit_code == 0 and store.count() == 1

"""The search filters q, open_now/open_at, district and updated_since on both backends, checked
against independent computations: names folded here in Python, opening hours evaluated here with
the opening_hours package, distances with pyproj, districts and dates from the records."""
from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
import uuid
from zoneinfo import ZoneInfo

import pytest
from opening_hours import OpeningHours
from pyproj import Geod
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from mapservice import hours, migrate
from mapservice.db import make_engine
from mapservice.demo import load_demo
from mapservice.errors import InvalidParameter
from mapservice.models import Resource
from mapservice.search import SearchQuery, fold, parse_datetime, parse_search, words
from mapservice.store import make_store
from mapservice.store.base import approximate
from mapservice.store.spatialite import fts5_query
from mapservice.taxonomy import default as default_taxonomy

from .conftest import BACKENDS, _clean, osm_poi_records

GEOD = Geod(ellps="WGS84")
BERLIN = ZoneInfo("Europe/Berlin")
HOURS = ["Mo-Fr 09:00-17:00", "Mo-Fr 10:00-16:00; PH off", "Tu,Th 18:00-20:00", "24/7",
         "Sa,Su 10:00-14:00", "Fr,Sa 22:00-02:00", "sunrise-sunset", None,
         "this is not opening hours", "Mo-Su 08:00-20:00; PH off", "Mo-Th 09:00-12:00,13:00-16:00",
         "We 15:00-19:00; Sa 10:00-13:00"]
EXTRA = [
    {"source_id": "x-mueller", "name": "Bücherhalle Müller-Straße", "lat": 53.5702, "lon": 9.9611,
     "description": "Bücher, Zeitschriften und ein Sprachcafé für alle.",
     "organization": {"name": "Stiftung Öffentliche Bücherhallen", "source_id": "hoeb"},
     "categories": ["library", "language_cafe"], "languages": ["de", "en"],
     "opening_hours": "Mo-Sa 10:00-19:00", "stadtteil": "Eimsbüttel", "bezirk": "Eimsbüttel"},
    {"source_id": "x-noel", "name": "Café Noël", "lat": 53.5601, "lon": 9.9402,
     "description": "Treff für Familien", "categories": ["family_centre"], "languages": ["fr"],
     "opening_hours": "Su 14:00-18:00"},
    {"source_id": "x-strasse", "name": "Nachbarschaftstreff Grosse Strasse", "lat": 53.54,
     "lon": 10.02, "categories": ["community_centre"], "languages": ["de", "tr"]},
]


# ---- independent reference computations --------------------------------------------------
def _ref_words(text_: str) -> list[str]:
    """Folded words, written here without mapservice: lower, ß -> ss, accents off, then
    ae/oe/ue -> a/o/u; words are runs of letters and digits."""
    lowered = text_.lower().replace("ß", "ss")
    bare = "".join(c for c in unicodedata.normalize("NFKD", lowered)
                   if unicodedata.category(c) != "Mn")
    bare = bare.replace("ae", "a").replace("oe", "o").replace("ue", "u")
    return re.findall(r"[^\W_]+", bare)


def _ref_text_match(rec: dict, query: str) -> bool:
    org = (rec.get("organization") or {}).get("name", "")
    doc = _ref_words(" ".join(filter(None, [rec["name"], rec.get("description"), org])))
    terms = _ref_words(query)
    return bool(terms) and all(any(w.startswith(t) for w in doc) for t in terms)


def _ref_open(rec: dict, when: dt.datetime) -> bool:
    value = rec.get("opening_hours")
    if not value:
        return False
    try:
        oh = OpeningHours(value, timezone=BERLIN, country="DE", coords=(53.5511, 9.9937),
                          auto_country=False)
    except Exception:  # noqa: BLE001 - the package's parse error: not open
        return False
    return bool(oh.is_open(when.astimezone(BERLIN)))


def _public_point(rec: dict) -> tuple[float, float]:
    if rec.get("location_confidential"):
        return approximate(rec["lon"], rec["lat"])
    return rec["lon"], rec["lat"]


# ---- data: demo listings + real OSM names, loaded once per backend --------------------------
def _records() -> list[dict]:
    import json

    from mapservice.demo import DEMO_FILE

    rng = random.Random(20260302)
    osm = osm_poi_records("libraries") + osm_poi_records("community-centers")
    seen = set()
    for rec in osm:
        # the same OSM node can be in both files
        rec["source_id"] = f"{rec['source_id']}-{len(seen)}"
        seen.add(rec["source_id"])
        rec["opening_hours"] = rng.choice(HOURS)
        rec["languages"] = rng.sample(["de", "en", "ar", "fa", "tr", "uk"], 2)
        rec["categories"] = [rng.choice(["library", "community_centre", "language_cafe"])]
    demo = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    orgs = {o["key"]: o for o in demo["organizations"]}
    demo_records = []
    for item in demo["resources"]:
        rec = dict(item, source="demo")
        if rec.get("organization"):
            rec["organization"] = orgs[rec["organization"]]
        demo_records.append(rec)
    return [*demo_records, *osm, *EXTRA]


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory):
    """(store, client, records by uid) with the demo, the OSM names and EXTRA, for the module."""
    from mapservice import create_app

    engine = request.getfixturevalue(f"_{request.param}_engine")
    _clean(engine)
    store = make_store(engine)
    load_demo(store)
    records = _records()
    store.upsert([r for r in records if r.get("source") != "demo"], source="osm",
                 changed_by="test")
    by_key = {(r.get("source", "osm"), r["source_id"]): r for r in records}
    with engine.connect() as conn:
        uids = conn.execute(select(Resource.uid, Resource.source, Resource.source_id)).all()
    by_uid = {uid: by_key[(source, sid)] for uid, source, sid in uids}
    assert len(by_uid) == len(records)
    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")), "TESTING": True,
                      "TILE_URL": "http://tiles.invalid/{z}/{x}/{y}.png"})
    yield store, app.test_client(), by_uid
    app.extensions["mapservice"]["engine"].dispose()
    _clean(engine)


def _uids(store, **kwargs) -> set[str]:
    result = store.search(SearchQuery(limit=1000, **kwargs))
    assert result.next_offset is None
    return {h.properties["uid"] for h in result.hits}


def _get(client, url: str, status: int = 200) -> dict:
    r = client.get(url)
    assert r.status_code == status, (url, r.get_json())
    return r.get_json()


# ---- q ------------------------------------------------------------------------------------
def test_fold_and_words():
    assert fold("Müller") == fold("Mueller") == fold("MUELLER") == fold("muller") == "muller"
    assert fold("Straße") == fold("STRASSE") == "strasse"
    assert fold("Sprachcafé") == "sprachcafe" and fold("Noël") == "nol"
    assert words('a"b NEAR(c* -d:e') == ["a", "b", "NEAR", "c", "d", "e"]
    assert words("'; drop table") == ["drop", "table"] and words('*"-:') == []
    assert fts5_query('NEAR("x" *') == '"near"* AND "x"*'
    assert fts5_query('"*-:') is None


@pytest.mark.parametrize("query, expected", [
    ("mueller", True), ("MULLER", True), ("Müller", True), ("müll", True),
    ("bucherhalle", True), ("Bücher", True), ("buecherhalle mueller", True),
    ("strasse", True), ("Straße", True), ("müller-straße", True), ("MÜLLER STR", True),
    ("sprach", True), ("Sprachcafe", True), ("SPRACHCAFÉ", True), ("zeitschr", True),
    ("oeffentliche", True), ("Öffentl", True), ("stiftung", True),
    ("muellerin", False), ("bücherhallen müller xyz", False), ("ller", False),
    ("café", False),  # words match by their beginning: "café" is no word start in "Sprachcafé"
])
def test_umlauts_case_and_prefixes(loaded, query, expected):
    store, _client, by_uid = loaded
    uid = next(u for u, r in by_uid.items() if r["source_id"] == "x-mueller")
    assert (uid in _uids(store, text=query)) is expected


def test_transliteration_both_ways_and_accents_inside_digraphs(loaded):
    store, _client, by_uid = loaded
    noel = next(u for u, r in by_uid.items() if r["source_id"] == "x-noel")
    strasse = next(u for u, r in by_uid.items() if r["source_id"] == "x-strasse")
    for query in ("Noël", "noel", "NOEL", "cafe noel"):
        assert noel in _uids(store, text=query), query
    for query in ("große straße", "GROSSE", "grosse strasse"):
        assert strasse in _uids(store, text=query), query


def test_q_matches_independent_folding_on_real_names(loaded):
    store, _client, by_uid = loaded
    rng = random.Random(11)
    names = [r["name"] for r in by_uid.values()]
    queries = ["sprach", "bucherhalle", "Bücherhalle Barmbek", "haus der jugend", "beratung",
               "Demo: Elterntreff", "ST. GEORG", "geflüchtete", "gefluechtete", "familie",
               "kinder jugend", "treff", "zentrum", "Zentralbibliothek für"]
    for name in rng.sample(names, 40):
        word = rng.choice([w for w in name.split() if len(w) >= 3] or [name])
        cut = word[:rng.randint(3, max(3, len(word)))]
        variant = rng.choice([str.upper, str.lower, lambda s: s,
                              lambda s: s.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae"),
                              lambda s: unicodedata.normalize("NFKD", s).encode(
                                  "ascii", "ignore").decode()])
        queries.append(variant(cut))
    checked = 0
    for query in queries:
        expected = {u for u, r in by_uid.items() if _ref_text_match(r, query)}
        assert _uids(store, text=query) == expected, query
        checked += bool(expected)
    assert checked >= 40  # the queries do find things


def test_q_pages_in_the_default_order_and_with_filters(loaded):
    """Paged text search (the default order, by id; SpatiaLite reads it from the FTS5 table in
    rowid order and stops after the page): the pages together are every match, in id order,
    and a filter still applies."""
    store, _client, by_uid = loaded
    for query in ("bucherhalle", "haus", "zentrum", "demo", "nothing-like-this"):
        whole = store.search(SearchQuery(text=query, limit=1000)).hits
        assert {h.properties["uid"] for h in whole} == {
            u for u, r in by_uid.items() if _ref_text_match(r, query)}
        paged, offset = [], 0
        while True:
            result = store.search(SearchQuery(text=query, limit=7, offset=offset))
            paged += result.hits
            if result.next_offset is None:
                break
            offset = result.next_offset
        assert [h.properties["uid"] for h in paged] == [h.properties["uid"] for h in whole]
        for category in ("library", "youth_centre"):
            hits = store.search(SearchQuery(text=query, categories=(category,), limit=5)).hits
            expected = [h.properties["uid"] for h in whole
                        if category in by_uid[h.properties["uid"]].get("categories", [])][:5]
            assert [h.properties["uid"] for h in hits] == expected, (query, category)


def test_spatialite_text_pages_stream_from_the_fts_index(_spatialite_engine):
    """SpatiaLite only (PostgreSQL has its own GIN plan): the page of a text search in the
    default order is read from FTS5 in rowid order, without sorting all matches."""
    from sqlalchemy import event

    _clean(_spatialite_engine)
    store = make_store(_spatialite_engine)
    store.upsert(osm_poi_records(), source="osm", changed_by="test")
    statements = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    event.listen(_spatialite_engine, "before_cursor_execute", capture)
    try:
        hits = store.search(SearchQuery(text="haus", limit=5)).hits
    finally:
        event.remove(_spatialite_engine, "before_cursor_execute", capture)
    assert len(hits) == 5
    page = [s for s in statements if "MATCH" in s[0]]
    assert len(page) == 1
    with _spatialite_engine.connect() as conn:
        plan = [row[-1] for row in conn.connection.dbapi_connection.execute(
            "EXPLAIN QUERY PLAN " + page[0][0], page[0][1]).fetchall()]
    assert plan[0].startswith("SCAN resource_fts"), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


@pytest.mark.parametrize("query", ['"', "NEAR(", "*", "a OR", "'; drop table resource; --", "-",
                                   ":", "a:b & c | !d <-> e", "\\", "'", "()", "AND", "NOT x",
                                   "name:x", '"unterminated', "^x", "x*y", "%", "_", "ä*",
                                   "\u0301", "😀", "\u202e"])
def test_hostile_q_is_never_an_error(loaded, query):
    store, client, _by_uid = loaded
    from urllib.parse import quote

    doc = _get(client, f"/api/v1/resources?q={quote(query)}&limit=5")
    assert doc["type"] == "FeatureCollection"
    # the store itself takes any text (the HTTP layer already refuses NUL bytes with a 400)
    store.search(SearchQuery(text=query + "\x00" + query))


def test_q_parameter_errors(loaded):
    _store, client, _by_uid = loaded
    assert _get(client, "/api/v1/resources?q=" + "x" * 201, 400)["parameter"] == "q"
    assert _get(client, "/api/v1/resources?q=a&q=b", 400)["parameter"] == "q"
    # a blank q is no filter
    assert (len(_get(client, "/api/v1/resources?q=%20&limit=20")["features"])
            == len(_get(client, "/api/v1/resources?limit=20")["features"]))


# ---- open_now / open_at ---------------------------------------------------------------------
OPEN_TIMES = [
    "2026-03-02T10:00",  # Monday morning (CET)
    "2026-03-02T17:00",  # the end of 09:00-17:00 is closed
    "2026-03-02T09:00",  # the start is open
    "2026-03-07T01:30",  # Saturday night: Fr 22:00-02:00 still open
    "2026-03-08T12:00",  # Sunday noon
    "2026-12-25T11:00",  # Christmas Day (a Friday): PH off
    "2026-07-06T07:30:00+00:00",  # 09:30 in Berlin summer time
    "2026-01-05T08:00:00+01:00",  # before sunrise in Hamburg
    "2026-03-29T02:30",  # does not exist in Berlin (clocks jump to 03:00)
    "2026-10-25T02:30+02:00",  # the first of the two 02:30s
]


@pytest.mark.parametrize("raw", OPEN_TIMES)
def test_open_at_matches_opening_hours_package(loaded, raw):
    store, _client, by_uid = loaded
    when = parse_datetime(raw, "open_at")
    expected = {u for u, r in by_uid.items() if _ref_open(r, when)}
    assert _uids(store, open_at=when) == expected


def test_open_at_pages_keep_the_order_and_lose_nothing(loaded):
    store, client, _by_uid = loaded
    full = store.search(SearchQuery(open_at=parse_datetime("2026-03-02T10:00", "open_at"),
                                    limit=1000)).hits
    paged, url = [], "/api/v1/resources?open_at=2026-03-02T10:00&limit=7&f=json"
    while url:
        doc = _get(client, url)
        paged += [item["id"] for item in doc["items"]]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        url = nxt[0].replace("http://localhost", "") if nxt else None
    assert paged == [h.properties["uid"] for h in full] and len(paged) > 50


def test_rare_open_time_pages_exactly(loaded):
    """At 03:00 on a Sunday few places are open: deeper pages cannot be filled from the first
    batch of candidates, so the store switches to filtering by the open hours strings in SQL.
    Both ways must give the same order and lose nothing."""
    store, client, by_uid = loaded
    when = parse_datetime("2026-03-08T03:00", "open_at")
    with store.engine.connect() as conn:
        id_of = dict(conn.execute(select(Resource.uid, Resource.id)).all())
    in_order = sorted(by_uid, key=id_of.__getitem__)
    expected = [u for u in in_order if _ref_open(by_uid[u], when)]
    with_hours = [u for u in in_order if by_uid[u].get("opening_hours")]
    first_batch_open = sum(_ref_open(by_uid[u], when) for u in with_hours[:200])
    assert len(with_hours) > 200 and first_batch_open < 26 <= len(expected)

    hits = store.search(SearchQuery(open_at=when, offset=20, limit=5)).hits
    assert [h.properties["uid"] for h in hits] == expected[20:25]
    paged, url = [], "/api/v1/resources?open_at=2026-03-08T03:00&limit=4&f=json"
    while url:
        doc = _get(client, url)
        paged += [item["id"] for item in doc["items"]]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        url = nxt[0].replace("http://localhost", "") if nxt else None
    assert paged == expected

    lat, lon = 53.5511, 9.9937
    nearest = _expected_nearest(by_uid, lat, lon, 1000, lambda r: _ref_open(r, when))
    for offset in (0, 20):
        hits = store.search(SearchQuery(near=(lat, lon), open_at=when, offset=offset,
                                        limit=5)).hits
        assert [h.distance_m for h in hits] == pytest.approx(
            [d for d, _ in nearest[offset:offset + 5]], abs=0.5)
    radius = nearest[24][0] + 1
    hits = store.search(SearchQuery(near=(lat, lon), radius=radius, open_at=when, offset=20,
                                    limit=10)).hits
    assert [h.distance_m for h in hits] == pytest.approx([d for d, _ in nearest[20:25]],
                                                         abs=0.5)


def test_open_at_offsets_and_naive_times_agree(loaded):
    _store, client, _by_uid = loaded
    same = ["2026-03-02T09:30", "2026-03-02T08:30:00Z", "2026-03-02T09:30:00%2B01:00",
            "2026-03-02T09:30:00+01:00",  # the "+" arrives as a space: still understood
            "2026-03-02T10:30:00%2B02:00"]
    results = [[f["id"] for f in _get(client, f"/api/v1/resources?open_at={raw}&limit=500")
                ["features"]] for raw in same]
    assert all(r == results[0] for r in results) and results[0]
    early = _get(client, "/api/v1/resources?open_at=2026-03-02T07:30Z&limit=500")["features"]
    assert [f["id"] for f in early] != results[0]


def test_open_now_true_false_and_errors(loaded):
    _store, client, by_uid = loaded
    before = dt.datetime.now(BERLIN)
    got = {f["id"] for f in _get(client, "/api/v1/resources?open_now=true&limit=1000")
           ["features"]}
    after = dt.datetime.now(BERLIN)
    assert got in ({u for u, r in by_uid.items() if _ref_open(r, before)},
                   {u for u, r in by_uid.items() if _ref_open(r, after)})
    everything = _get(client, "/api/v1/resources?limit=1000")["features"]
    assert _get(client, "/api/v1/resources?open_now=false&limit=1000")["features"] == everything
    for query, parameter in [("open_now=maybe", "open_now"),
                             ("open_now=true&open_at=2026-03-02T10:00", "open_at"),
                             ("open_at=2026-03-02", "open_at"), ("open_at=tomorrow", "open_at"),
                             ("open_at=2026-02-30T10:00", "open_at"),
                             ("open_at=0001-01-01T00:00%2B05:00", "open_at"),
                             # 1899 in Hamburg: the opening hours would say even 24/7 is closed
                             ("open_at=1900-01-01T00:00%2B01:01", "open_at"),
                             ("open_at=9998-12-31T23:59-05:00", "open_at"),
                             ("open_at=2026-03-02T25:00", "open_at"), ("open_at=", "open_at")]:
        assert _get(client, f"/api/v1/resources?{query}", 400)["parameter"] == parameter, query


def test_hours_module():
    monday = dt.datetime(2026, 3, 2, 10, 0)
    assert hours.resource_is_open("Mo-Fr 09:00-17:00", monday)
    assert hours.resource_is_open("Mo-Fr 09:00-17:00", monday.replace(tzinfo=BERLIN))
    before_nine = dt.datetime(2026, 3, 2, 7, 30, tzinfo=dt.timezone.utc)  # 08:30 in Berlin
    assert not hours.resource_is_open("Mo-Fr 09:00-17:00", before_nine)
    assert not hours.resource_is_open(None, monday)
    assert not hours.resource_is_open("no such hours", monday)
    assert hours.resource_is_open("24/7", monday)
    assert hours.is_valid("Mo-Fr 09:00-17:00; PH off") and not hours.is_valid("24/24")
    with pytest.raises(hours.InvalidOpeningHours):
        hours.parse("Mo-Fr 25:00-26:00 nonsense")


@pytest.mark.parametrize(("value", "when", "is_open"), [
    # Reformation Day, a public holiday in Hamburg since 2018 (not in Germany's calendar)
    ("Mo-Su 08:00-20:00; PH off", "2026-10-31T12:00", False),
    ("Mo-Su 08:00-20:00; PH off", "2026-10-30T12:00", True),  # the day before
    ("Mo-Su 08:00-20:00; PH off", "2026-11-01T12:00", True),  # All Saints': not in Hamburg
    ("Mo-Su 08:00-20:00; PH off", "2016-10-31T12:00", True),  # before 2018: an ordinary Monday
    ("Mo-Su 08:00-20:00; PH off", "2017-10-31T12:00", False),  # 2017: in all of Germany
    ("Mo-Sa 09:00-18:00; PH 10:00-12:00", "2026-10-31T09:30", False),  # the PH hours apply
    ("Mo-Sa 09:00-18:00; PH 10:00-12:00", "2026-10-31T11:00", True),
    ("Mo-Sa 09:00-18:00; PH 10:00-12:00", "2026-10-31T19:00", False),
    ("Mo-Sa 09:00-18:00", "2026-10-31T09:30", True),  # no PH rule: an ordinary Saturday
    ("Mo-Su 08:00-20:00; PH off", "2026-10-31T08:30:00+00:00", False),  # 09:30 in Berlin
    ("24/7; PH off", "2026-10-30T23:30:00+00:00", False),  # 31 October 00:30 in Berlin
    ("24/7; PH off", "2026-10-31T23:30:00+00:00", True),  # 1 November 00:30 in Berlin
    ("Mo-Su 08:00-20:00; PH off", "2026-12-25T12:00", False),  # nationwide holidays still
])
def test_hamburg_public_holidays(value, when, is_open):
    assert hours.resource_is_open(value, dt.datetime.fromisoformat(when)) is is_open


def test_open_at_on_reformation_day_through_the_store(store):
    """The store's open filter asks hours.resource_is_open: Hamburg's holiday applies."""
    place = {"categories": ["community_centre"], "lat": 53.55, "lon": 10.0}
    store.upsert([{"source_id": "daily", "name": "Täglich", "opening_hours":
                   "Mo-Su 08:00-20:00", **place},
                  {"source_id": "holiday-off", "name": "Feiertags zu",
                   "opening_hours": "Mo-Su 08:00-20:00; PH off", **place},
                  {"source_id": "holiday-short", "name": "Feiertags kurz",
                   "opening_hours": "Mo-Sa 09:00-18:00; PH 10:00-12:00", **place}],
                 source="test", changed_by="test")

    def open_at(raw):
        hits = store.search(SearchQuery(open_at=parse_datetime(raw, "open_at"))).hits
        return sorted(h.properties["name"] for h in hits)

    assert open_at("2026-10-31T09:30") == ["Täglich"]
    assert open_at("2026-10-31T11:00") == ["Feiertags kurz", "Täglich"]
    assert open_at("2026-10-30T09:30") == ["Feiertags kurz", "Feiertags zu", "Täglich"]


# ---- the map's combination: near + category + language + open ------------------------------
def _expected_nearest(by_uid, lat, lon, k, pred):
    dists = []
    for uid, rec in by_uid.items():
        if pred(rec):
            plon, plat = _public_point(rec)
            dists.append((GEOD.inv(lon, lat, plon, plat)[2], uid))
    return sorted(dists)[:k]


def test_near_category_language_open_at_matches_independent_computation(loaded):
    store, _client, by_uid = loaded
    rng = random.Random(5)
    for _ in range(12):
        lat, lon = rng.uniform(53.45, 53.68), rng.uniform(9.8, 10.2)
        when = dt.datetime(2026, 3, rng.randint(2, 8), rng.randint(7, 21), 15, tzinfo=BERLIN)
        cats = tuple(rng.sample(["library", "community_centre", "language_cafe", "counselling",
                                 "youth_centre"], 2))
        lang = (rng.choice(["de", "en", "ar", "tr"]),)
        k = rng.choice([3, 10])

        def pred(r, cats=cats, lang=lang, when=when):
            return (bool(set(cats) & set(r.get("categories") or []))
                    and bool(set(lang) & set(r.get("languages") or [])) and _ref_open(r, when))

        expected = _expected_nearest(by_uid, lat, lon, 1000, pred)
        for offset in (0, k):
            hits = store.search(SearchQuery(near=(lat, lon), categories=cats, languages=lang,
                                            open_at=when, limit=k, offset=offset)).hits
            want = expected[offset:offset + k]
            assert len(hits) == len(want)
            for hit, (dist, _uid) in zip(hits, want):
                assert hit.distance_m == pytest.approx(dist, abs=0.5)
                assert pred(by_uid[hit.properties["uid"]])


@pytest.mark.parametrize("filters", [
    {"cost": ("free",)}, {"cost": ("free", "reduced")}, {"wheelchair": ("yes",)},
    {"wheelchair": ("yes", "limited")}, {"audiences": ("youth",)},
    {"audiences": ("newcomers", "women")},
    {"cost": ("free",), "wheelchair": ("yes", "limited"), "audiences": ("families",)},
    {"cost": ("free",), "categories": ("library", "community_centre"), "languages": ("de",)},
])
def test_cost_wheelchair_audience_match_the_records(loaded, filters):
    # every listing's own values, read here from the records as loaded (a missing value is
    # "unknown" / no audience), against the search's answer, alone and near a point
    store, _client, by_uid = loaded
    field = {"cost": "cost", "wheelchair": "wheelchair", "audiences": "audiences",
             "categories": "categories", "languages": "languages"}

    def pred(r):
        for name, wanted in filters.items():
            value = r.get(field[name])
            values = set(value or []) if isinstance(value, list) else {value or "unknown"}
            if not values & set(wanted):
                return False
        return True

    expected = {uid for uid, r in by_uid.items() if pred(r)}
    assert expected, f"the test data should hold matches for {filters}"
    assert _uids(store, **filters) == expected
    lat, lon = 53.5511, 9.9937
    nearest = _expected_nearest(by_uid, lat, lon, 5, lambda r: pred(r))
    hits = store.search(SearchQuery(near=(lat, lon), limit=5, **filters)).hits
    # (places of one confidential grid cell are equally far: compare distances, then sets)
    assert [h.distance_m for h in hits] == pytest.approx([d for d, _uid in nearest], abs=0.5)
    assert all(pred(by_uid[h.properties["uid"]]) for h in hits)


def test_map_request_with_open_now(loaded):
    _store, client, by_uid = loaded
    lat, lon = 53.5511, 9.9937
    url = (f"/api/v1/resources?near={lat},{lon}&category=library,community_centre"
           "&language=de&open_now=true&limit=10")
    before = dt.datetime.now(BERLIN)
    doc = _get(client, url)
    after = dt.datetime.now(BERLIN)
    got = [f["properties"]["distance_m"] for f in doc["features"]]

    def expected(when):
        return [round(d, 1) for d, _ in _expected_nearest(
            by_uid, lat, lon, 10, lambda r: bool({"library", "community_centre"}
                                                 & set(r.get("categories") or []))
            and "de" in (r.get("languages") or []) and _ref_open(r, when))]

    assert any(len(got) == len(want) and all(abs(a - b) <= 0.5 for a, b in zip(got, want))
               for want in (expected(before), expected(after)))
    assert got == sorted(got)


# ---- district ------------------------------------------------------------------------------
def _in_district(rec: dict, *names: str) -> bool:
    return rec.get("stadtteil") in names or rec.get("bezirk") in names


@pytest.mark.parametrize("spelling", ["Eimsbüttel", "eimsbüttel", "EIMSBUETTEL", "eimsbuettel",
                                      " Eimsbuttel "])
def test_district_is_case_and_umlaut_insensitive(loaded, spelling):
    _store, client, by_uid = loaded
    from urllib.parse import quote

    expected = {u for u, r in by_uid.items() if _in_district(r, "Eimsbüttel")}
    got = {f["id"] for f in _get(client, f"/api/v1/resources?district={quote(spelling)}"
                                          "&limit=1000")["features"]}
    assert got == expected and len(expected) > 25


def test_district_lists_and_shared_names(loaded):
    store, client, by_uid = loaded
    expected = {u for u, r in by_uid.items() if _in_district(r, "Horn", "Altona-Nord",
                                                               "St. Pauli")}
    for query in ("district=Horn,altona-nord,sankt%20pauli",
                  "district=horn&district=ALTONA-NORD&district=St.%20Pauli"):
        got = {f["id"] for f in _get(client, f"/api/v1/resources?{query}&limit=1000")
               ["features"]}
        assert got == expected and expected, query
    # Wandsbek is a Bezirk and a Stadtteil: the Bezirk holds the Stadtteil, so all of it
    wandsbek = {u for u, r in by_uid.items() if r.get("bezirk") == "Wandsbek"}
    assert _uids(store, districts=("Wandsbek",)) == wandsbek
    assert len({by_uid[u].get("stadtteil") for u in wandsbek}) > 1


def test_unknown_district_is_a_400_with_suggestions(loaded):
    _store, client, _by_uid = loaded
    body = _get(client, "/api/v1/resources?district=Eimsbütel", 400)
    assert body["parameter"] == "district" and "Eimsbüttel" in body["detail"]
    body = _get(client, "/api/v1/resources?district=Atlantis" + "x" * 500, 400)
    assert body["parameter"] == "district" and len(body["detail"]) < 200
    assert _get(client, "/api/v1/resources?district=Horn,", 400)["parameter"] == "district"


# ---- updated_since ---------------------------------------------------------------------------
def test_updated_since(loaded):
    store, client, by_uid = loaded
    base = dt.datetime(2026, 5, 1, 0, 0, tzinfo=dt.timezone.utc)
    stamps = {}
    with store.engine.begin() as conn:
        for i, uid in enumerate(sorted(by_uid)):
            stamps[uid] = base + dt.timedelta(hours=i)
            conn.execute(update(Resource).where(Resource.uid == uid)
                         .values(updated_at=stamps[uid]))

    def expected(since):
        return {u for u, t in stamps.items() if t >= since}

    cases = {
        "2026-05-03": dt.datetime(2026, 5, 3, tzinfo=BERLIN),  # a date: its Berlin midnight
        "2026-05-04T10:00": dt.datetime(2026, 5, 4, 10, tzinfo=BERLIN),
        "2026-05-04T10:00:00Z": dt.datetime(2026, 5, 4, 10, tzinfo=dt.timezone.utc),
        "2026-05-05T12:00:00%2B05:00": dt.datetime(2026, 5, 5, 7, tzinfo=dt.timezone.utc),
        "2026-05-02T05:00:00.000001Z": dt.datetime(2026, 5, 2, 5, 0, 0, 1,
                                                   tzinfo=dt.timezone.utc),
    }
    for raw, since in cases.items():
        got = {f["id"] for f in _get(client, f"/api/v1/resources?updated_since={raw}"
                                              "&limit=1000")["features"]}
        assert got == expected(since) and 0 < len(got) < len(stamps), raw
    for raw in ("yesterday", "2026-02-30", "2026-05-04T10:00:00+25:00", "1.5.2026", ""):
        assert _get(client, f"/api/v1/resources?updated_since={raw}", 400)["parameter"] \
            == "updated_since", raw


def test_unknown_parameters_stay_400(loaded):
    _store, client, _by_uid = loaded
    body = _get(client, "/api/v1/resources?query=x", 400)
    assert body["parameter"] == "query" and "q" in body["detail"]


def test_parse_search_builds_every_new_filter():
    from werkzeug.datastructures import MultiDict

    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
    query = parse_search(MultiDict([("q", "  Sprach\tcafé "), ("open_now", "true"),
                                    ("district", "eimsbuettel,HORN"),
                                    ("updated_since", "2026-01-01")]),
                         taxonomy=default_taxonomy(), now=lambda: now)
    assert query.text == "Sprach café"
    assert query.open_at == now and query.open_at.tzinfo is not None
    assert query.districts == ("Eimsbüttel", "Horn")
    assert query.updated_since == dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(InvalidParameter):
        parse_search(MultiDict([("open_at", "2026-03-02T10:00"), ("open_now", "false")]),
                     taxonomy=default_taxonomy())


# ---- migration 0002: up, down, backfill ------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def fresh_engine(request, tmp_path):
    if request.param == "spatialite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
        yield engine
        engine.dispose()
        return
    admin_url = request.getfixturevalue("postgis_url")
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT", statement_timeout_ms=0)
    name = f"mapservice_mig_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(admin_url).set(database=name)
                         .render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _write_at_0001(engine, records) -> None:
    """Rows as an old version of the app wrote them: SQLAlchemy Core with the columns that
    migration 0001 has (the store writes columns of later migrations)."""
    from sqlalchemy import insert
    from mapservice.models import Organization, Resource
    from mapservice.store.base import slugify

    with engine.begin() as conn:
        for rec in records:
            org_id = None
            if rec.get("organization"):
                org_id = conn.execute(insert(Organization.__table__).values(
                    name=rec["organization"]["name"], source="osm",
                    source_id=rec["organization"]["source_id"])).inserted_primary_key[0]
            conn.execute(insert(Resource.__table__).values(
                source="osm", source_id=rec["source_id"], name=rec["name"],
                slug=slugify(rec["name"]), description=rec.get("description"),
                categories=rec.get("categories", []), languages=rec.get("languages", []),
                opening_hours=rec.get("opening_hours"), organization_id=org_id,
                geom=f"SRID=4326;POINT({rec['lon']} {rec['lat']})", locked_fields=[]))


def test_migration_0002_up_down_and_backfill(fresh_engine):
    migrate.upgrade(fresh_engine, "0001")
    store = make_store(fresh_engine)
    _write_at_0001(fresh_engine, EXTRA[:2])  # rows that exist before 0002
    migrate.upgrade(fresh_engine)
    assert len(_uids(store, text="mueller")) == 1  # backfilled
    assert len(_uids(store, text="oeffentliche")) == 1  # with the organisation's name
    # the triggers follow every write: a rename of the resource and of its organisation
    renamed = dict(EXTRA[0], name="Stadtteilbibliothek Lindenallee",
                   organization={"name": "Verein Lesezeichen", "source_id": "hoeb"})
    store.upsert([renamed], source="osm", changed_by="test")
    assert _uids(store, text="mueller") == set()
    assert len(_uids(store, text="lindenallee lesezeichen")) == 1
    assert _uids(store, text="oeffentliche") == set()
    migrate.downgrade(fresh_engine, "0001")
    with fresh_engine.connect() as conn:
        if fresh_engine.dialect.name == "postgresql":
            leftovers = conn.execute(text(
                "SELECT count(*) FROM pg_proc WHERE proname LIKE 'mapservice%' UNION ALL "
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'resource' "
                "AND column_name IN ('search_vector', 'feature')")).scalars().all()
        else:
            leftovers = conn.execute(text(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE '%fts%' "
                "OR name LIKE '%feature%'")).scalars().all()
    assert not any(leftovers)
    with fresh_engine.begin() as conn:
        conn.execute(text("UPDATE resource SET name = 'Café Noël II' "
                          "WHERE source_id = 'x-noel'"))
    migrate.upgrade(fresh_engine)
    assert len(_uids(store, text="noel ii")) == 1
    assert len(_uids(store, text="lindenallee")) == 1


@pytest.mark.parametrize("raw, expected", [
    ("2026-03-02T14:30", "2026-03-02T14:30:00+01:00"),
    ("2026-03-02 14:30:15", "2026-03-02T14:30:15+01:00"),
    ("2026-03-02T13:30Z", "2026-03-02T14:30:00+01:00"),
    ("2026-03-02T14:30:00.5+01:00", "2026-03-02T14:30:00.500000+01:00"),
    ("2026-07-02T14:30+0200", "2026-07-02T14:30:00+02:00"),
    ("2026-03-02t13:30:00z", "2026-03-02T14:30:00+01:00"),  # RFC 3339 allows lower case
])
def test_open_at_takes_the_documented_iso_forms(raw, expected):
    assert parse_datetime(raw, "open_at").isoformat() == expected


@pytest.mark.parametrize("raw", ["2026-W10-1T14:30", "20260302T1430", "2026-03-02T14",
                                 "2026-3-2T14:30", "2026-03-02T14:30:00+1", "tomorrow 14:30",
                                 "2026-03-02T14:30 Europe/Berlin"])
def test_open_at_refuses_other_forms_naming_the_parameter(raw):
    """Python's fromisoformat took week dates, basic forms and an hour alone: a typing
    mistake became another moment, silently."""
    with pytest.raises(InvalidParameter, match=r"open_at: .* is not an ISO 8601 date-time"):
        parse_datetime(raw, "open_at")

"""Erasing personal data (``mapservice erase TEXT``, ``Store.erase_text``) on both backends: a
contact person's name, phone number or e-mail address leaves the listings, the organisations
and every earlier version; what changed is locked against re-imports and visible as a version
that does not hold the old value; the map and the API no longer find it; nothing else
changes."""
from __future__ import annotations

import json

from mapservice.search import SearchQuery
from mapservice.store.base import ERASED

PERSON = "Maria Musterfrau"


def _records() -> list[dict]:
    return [
        {"source_id": "1", "name": "Elterncafé Ottensen", "lat": 53.5527, "lon": 9.9262,
         "categories": ["family_centre"], "phone": "+49 40 1234567",
         "email": "maria.musterfrau@example.net",
         "description": f"Ansprechpartnerin: {PERSON}, dienstags",
         "translations": {"en": {"description": f"Contact: {PERSON.upper()}, Tuesdays"}},
         "organization": {"name": "Elternverein Ottensen", "phone": "+49 40 1234567"}},
        {"source_id": "2", "name": "Sprachcafé Altona", "lat": 53.5503, "lon": 9.9347,
         "categories": ["language_cafe"], "phone": "+49 40 7654321",
         "description": "Offener Treff zum Deutschlernen"},
    ]


def _published(store, name_part: str = "") -> list[dict]:
    hits = store.search(SearchQuery(limit=100)).hits
    return [h.properties for h in hits if name_part in h.properties["name"]]


def test_a_phone_number_and_a_name_leave_listings_organisations_and_versions(app, store):
    store.upsert(_records(), source="treffs", changed_by="import:treffs")
    # a second version, so that the text is in an earlier state and in a diff too
    changed = _records()
    changed[0]["opening_hours"] = "Tu 09:00-12:00"
    changed[0]["description"] = f"Ansprechpartnerin: {PERSON}, dienstags vormittags"
    store.upsert(changed, source="treffs", changed_by="import:treffs")
    runner = app.test_cli_runner()

    # a phone number as people write it; the stored form is +49 40 1234567
    dry = runner.invoke(args=["erase", "040 / 123 45 67", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would erase the text in 1 listing(s), 1 organisation(s), 0 source(s)" in dry.output
    assert _published(store, "Elterncafé")[0]["phone"] == "+49 40 1234567"  # nothing changed

    done = runner.invoke(args=["erase", "040 / 123 45 67"])
    assert done.exit_code == 0, done.output
    assert "erased the text in 1 listing(s), 1 organisation(s), 0 source(s) and 2 stored " \
        "version(s)" in done.output
    done = runner.invoke(args=["erase", PERSON.lower(), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert [r["fields"] for r in report["resources"]] == [["description", "translations"]]
    assert report["versions"] == 3  # the two import versions and the phone's erasure
    done = runner.invoke(args=["erase", "Maria.Musterfrau@example.net"])
    assert done.exit_code == 0, done.output

    cafe = _published(store, "Elterncafé")[0]
    assert cafe["phone"] is None and cafe["email"] is None
    assert cafe["description"] == f"Ansprechpartnerin: {ERASED}, dienstags vormittags"
    history = store.history(cafe["uid"])
    assert [v["changed_by"] for v in history] == ["import:treffs", "import:treffs", "erase",
                                                  "erase", "erase"]
    stored = json.dumps(history, ensure_ascii=False, default=str).casefold()
    for gone in ("1234567", "musterfrau"):
        assert gone not in stored, gone
    assert history[-1]["diff"]["email"] == [ERASED, None]
    # the other listing is untouched
    other = _published(store, "Sprachcafé")[0]
    assert other["phone"] == "+49 40 7654321" and len(store.history(other["uid"])) == 1
    # the API and the full-text search no longer find it
    client = app.test_client()
    found = client.get("/api/v1/resources", query_string={"q": "Musterfrau"}).get_json()
    assert found["features"] == []
    page = client.get(f"/api/v1/resources/{cafe['uid']}").get_data(as_text=True)
    assert "1234567" not in page and "musterfrau" not in page.casefold()
    orgs, _ = store.organizations(limit=10)
    assert orgs and "1234567" not in json.dumps(orgs, default=str)

    # a re-import of the uncorrected source does not bring it back: conflicts
    again = store.upsert(changed, source="treffs", changed_by="import:treffs")
    assert {c["field"] for c in again.conflicts} == {"phone", "email", "description",
                                                     "translations"}
    assert _published(store, "Elterncafé")[0]["phone"] is None


def test_an_archived_listing_is_included_and_too_short_a_text_is_refused(app, store):
    store.upsert(_records(), source="treffs", changed_by="import:treffs")
    store.archive_missing("treffs", ["2"], changed_by="import:treffs")
    runner = app.test_cli_runner()
    short = runner.invoke(args=["erase", " M "])
    assert short.exit_code != 0 and "at least 3 characters" in short.output
    done = runner.invoke(args=["erase", "maria.musterfrau@example.net"])
    assert done.exit_code == 0, done.output
    assert "(archived): email" in done.output
    nothing = runner.invoke(args=["erase", "Nobody Here"])
    assert nothing.exit_code == 0
    assert "erased the text in 0 listing(s), 0 organisation(s), 0 source(s) and 0 stored " \
        "version(s)" in nothing.output


def test_only_whole_words_are_erased_and_a_common_word_is_refused(app, store):
    """"Eva" is not in "Evangelische", a number not in a longer one, an address not in a
    longer one; a word in many listings needs --max-listings."""
    records = [
        {"source_id": "1", "name": "Evangelische Familienbildung", "lat": 53.55, "lon": 9.93,
         "description": "Kontakt: Eva Berg", "phone": "+49 40 12345678",
         "email": "joanna@example.org", "opening_hours": 'Mo 10:00-12:00 "Termin bei Eva"'},
        {"source_id": "2", "name": "Treff Eva", "lat": 53.56, "lon": 9.94,
         "email": "anna@example.org", "phone": "+49 40 1234567",
         "website": "https://example.org/~eva"},
        *({"source_id": f"x{i}", "name": f"Treff und Café {i}", "lat": 53.5, "lon": 9.9}
          for i in range(25)),
    ]
    store.upsert(records, source="treffs", changed_by="import:treffs")
    runner = app.test_cli_runner()
    for text in ("Eva", "040 1234567", "anna@example.org"):
        done = runner.invoke(args=["erase", text])
        assert done.exit_code == 0, done.output
    by_id = {h.properties["name"]: h.properties
             for h in store.search(SearchQuery(limit=100)).hits}
    first = by_id["Evangelische Familienbildung"]
    assert first["description"] == f"Kontakt: {ERASED} Berg"
    assert first["phone"] == "+49 40 12345678" and first["email"] == "joanna@example.org"
    assert first["opening_hours"] == f'Mo 10:00-12:00 "Termin bei {ERASED}"'
    second = by_id[f"Treff {ERASED}"]
    assert second["phone"] is None and second["email"] is None and second["website"] is None
    common = runner.invoke(args=["erase", "und"])
    assert common.exit_code != 0 and "in 25 listings, more than --max-listings 20" \
        in common.output
    assert len(store.search(SearchQuery(text="und", limit=100)).hits) == 25  # untouched
    forced = runner.invoke(args=["erase", "und", "--max-listings", "30", "--dry-run"])
    assert forced.exit_code == 0 and "would erase the text in 25 listing(s)" in forced.output


def test_a_renamed_organisation_versions_its_listings_and_unlock_releases(app, store):
    record = {"source_id": "1", "name": "Beratung", "lat": 53.55, "lon": 9.93,
              "organization": {"name": "Praxis Eva Berg"}}
    store.upsert([record], source="praxen", changed_by="import:praxen")
    store.register_source("praxen", attribution="Daten: Eva Berg")
    runner = app.test_cli_runner()
    done = runner.invoke(args=["erase", "-"], input="Eva Berg\n")
    assert done.exit_code == 0, done.output
    assert "1 listing(s), 1 organisation(s), 1 source(s)" in done.output
    uid = _published(store)[0]["uid"]
    history = store.history(uid)
    assert history[-1]["changed_by"] == "erase"
    assert history[-1]["diff"]["organization"] == [ERASED, f"Praxis {ERASED}"]
    assert "Eva Berg" not in json.dumps(history, ensure_ascii=False, default=str)
    assert store.sources_in_use()[0]["attribution"] == f"Daten: {ERASED}"
    # the uncorrected source: the listing keeps its organisation (a conflict)
    again = store.upsert([record], source="praxen", changed_by="import:praxen")
    assert [c["field"] for c in again.conflicts] == ["organization"]
    assert _published(store)[0]["organization"] == f"Praxis {ERASED}"
    # corrected and unlocked: the next import writes it
    unlocked = runner.invoke(args=["unlock", uid, "organization"])
    assert unlocked.exit_code == 0 and "still locked: nothing" in unlocked.output
    corrected = {**record, "organization": {"name": "Beratungspraxis"}}
    assert store.upsert([corrected], source="praxen", changed_by="import:praxen").updated == 1
    assert _published(store)[0]["organization"] == "Beratungspraxis"
    assert runner.invoke(args=["unlock", uid, "colour"]).exit_code != 0
    assert "no resource" in runner.invoke(args=["unlock", "nope", "phone"]).output


def test_a_number_and_a_name_are_found_however_they_are_written(app, store):
    """Spellings the first version missed: the number with other separators, with the country
    code, with "(0)"; "ß" as "ss"; a name whose umlaut is a combining mark."""
    record = {"source_id": "1", "name": "Treff am Park", "lat": 53.55, "lon": 9.93,
              "phone": "+49 40 1234567",
              "description": "Tel. 040/123 45 67 oder (040) 123-4567, +49 (0)40 1234567, "
                             "0049 40 1234567; Frau Stra\u00dfberger, Herr Mu\u0308ller; "
                             "nicht: 040 12345678"}
    store.upsert([record], source="treffs", changed_by="import:treffs")
    runner = app.test_cli_runner()
    for text in ("040 1234567", "Strassberger", "Müller"):
        done = runner.invoke(args=["erase", text])
        assert done.exit_code == 0, done.output
    listing = _published(store)[0]
    assert listing["phone"] is None
    assert listing["description"] == (f"Tel. {ERASED} oder {ERASED}, {ERASED}, {ERASED}; "
                                       f"Frau {ERASED}, Herr {ERASED}; nicht: 040 12345678")

"""Erasing personal data (``mapservice erase TEXT``, ``Store.erase_text``) on both backends: a
contact person's name, phone number or e-mail address leaves the listings, the organisations
and every earlier version; what changed is locked against re-imports and visible as a version
that does not hold the old value; the map and the API no longer find it; nothing else
changes."""
from __future__ import annotations

import json

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
    from mapservice.search import SearchQuery

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
    assert "would erase the text in 1 listing(s), 1 organisation(s)" in dry.output
    assert _published(store, "Elterncafé")[0]["phone"] == "+49 40 1234567"  # nothing changed

    done = runner.invoke(args=["erase", "040 / 123 45 67"])
    assert done.exit_code == 0, done.output
    assert "erased the text in 1 listing(s), 1 organisation(s) and 2 stored version(s)" \
        in done.output
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
    assert "erased the text in 0 listing(s), 0 organisation(s) and 0 stored version(s)" \
        in nothing.output

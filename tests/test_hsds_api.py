"""The HSDS 3.0 read API (``/hsds``) and the store methods behind it, on both backends, with
every returned object validated against the HSDS 3.0 schema."""
from __future__ import annotations

import math
from typing import Any, Iterator

import pytest

from mapservice import hsds
from mapservice.demo import load_demo
from mapservice.search import SearchQuery
from mapservice.store import make_store

from .conftest import BACKENDS, _clean
from .test_import_hsds import hsds_errors

DEMO_TOTAL = 194
KINDS = {"services": "service", "service_at_locations": "service_at_location",
         "organizations": "organization", "taxonomies": "taxonomy",
         "taxonomy_terms": "taxonomy_term"}


@pytest.fixture(scope="module", params=BACKENDS)
def demo_app(request, tmp_path_factory) -> Iterator[Any]:
    """An app over the demo data, shared by the read-only tests of this module (loading the
    demo is the slow part); tests that write use the per-test ``app``/``store`` fixtures."""
    from mapservice import create_app

    engine = request.getfixturevalue(f"_{request.param}_engine")
    _clean(engine)
    load_demo(make_store(engine))
    app = create_app({"DATABASE_URL": engine.url.render_as_string(hide_password=False),
                      "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")),
                      "TESTING": True})
    yield app
    app.extensions["mapservice"]["engine"].dispose()
    _clean(engine)


@pytest.fixture
def demo(demo_app) -> Any:
    return demo_app.extensions["mapservice"]["store"]


@pytest.fixture
def demo_client(demo_app) -> Any:
    return demo_app.test_client()


def get_ok(client, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.get_json())
    assert response.mimetype == "application/json"
    return response.get_json()


def assert_valid(kind: str, obj: dict[str, Any]) -> None:
    assert hsds_errors(kind, obj) == [], obj.get("id")
    if kind == "service_at_location":  # with its service nested, as HSDS's examples do
        assert hsds_errors("service", obj["service"]) == []
        assert_valid("location", obj["location"])
    if kind == "organization":
        for service in obj.get("services", []):
            assert hsds_errors("service", service) == []


def all_pages(client, path: str, per_page: int, **params: str) -> list[dict[str, Any]]:
    """Every item of a list endpoint, checking each page's header on the way."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        query = "&".join(f"{k}={v}" for k, v in {**params, "page": page,
                                                   "per_page": per_page}.items())
        doc = get_ok(client, f"{path}?{query}")
        total = doc["total_items"]
        assert doc["page_number"] == page and doc["size"] == len(doc["contents"])
        assert doc["total_pages"] == math.ceil(total / per_page)
        assert doc["first_page"] is (page == 1)
        assert doc["last_page"] is (page >= doc["total_pages"])
        assert doc["empty"] is (not doc["contents"])
        items += doc["contents"]
        if doc["last_page"]:
            assert len(items) == total
            return items
        assert doc["size"] == per_page
        page += 1


def test_root(demo_client):
    doc = get_ok(demo_client, "/hsds/")
    assert doc["version"] == "3.0" and doc["openapi_url"] == "http://localhost/api/v1/openapi.json"
    assert "/hsds/services" in demo_client.get(doc["openapi_url"]).get_json()["paths"]
    assert doc["publisher"]["website"] == "http://localhost/"


@pytest.mark.parametrize("path, per_page", [("/hsds/services", 70),
                                            ("/hsds/service_at_locations", 100),
                                            ("/hsds/organizations", 15),
                                            ("/hsds/taxonomies", 2),
                                            ("/hsds/taxonomy_terms", 10)])
def test_lists_page_through_everything_and_validate(demo, demo_client, path, per_page):
    kind = KINDS[path.rsplit("/", 1)[1]]
    items = all_pages(demo_client, path, per_page)
    assert len({item["id"] for item in items}) == len(items)
    for item in items:
        assert_valid(kind, item)
    for item in items[::20]:  # ... and is served on its own (an organisation with services)
        detail = get_ok(demo_client, f"{path}/{item['id']}")
        assert_valid(kind, detail)
        assert {k: detail[k] for k in item} == item
    tax = demo_client.application.extensions["mapservice"]["taxonomy"]
    expected = {"service": DEMO_TOTAL, "service_at_location": DEMO_TOTAL,
                "organization": demo.organizations(limit=1)[1],
                "taxonomy": len(hsds.TAXONOMIES),
                "taxonomy_term": len(tax.categories) + len(tax.audiences) + 1}[kind]
    assert len(items) == expected


def test_organization_lists_its_services(demo, demo_client):
    orgs = get_ok(demo_client, "/hsds/organizations?per_page=100")["contents"]
    assert sum(len(get_ok(demo_client, f"/hsds/organizations/{o['id']}")["services"])
               for o in orgs) == DEMO_TOTAL
    service = get_ok(demo_client, "/hsds/services?per_page=1")["contents"][0]
    org = get_ok(demo_client, f"/hsds/organizations/{service['organization_id']}")
    assert_valid("organization", org)
    assert service["id"] in {s["id"] for s in org["services"]}
    assert service["organization"]["name"] == org["name"]
    # organization_id filters the services and their service_at_locations (HSDS 3.0 API;
    # it was a 400)
    ids = {s["id"] for s in org["services"]}
    for path in ("/hsds/services", "/hsds/service_at_locations"):
        page = get_ok(demo_client, f"{path}?organization_id={org['id']}&per_page=100")
        assert page["total_items"] == len(ids)
        assert {item.get("service_id", item["id"]) for item in page["contents"]} == ids
    assert get_ok(demo_client, "/hsds/services?organization_id=nobody")["contents"] == []


def test_service_and_service_at_location_share_the_resource_id(demo, demo_client):
    hit = demo.search(SearchQuery(limit=1)).hits[0]
    uid = hit.properties["uid"]
    service = get_ok(demo_client, f"/hsds/services/{uid}")
    sal = get_ok(demo_client, f"/hsds/service_at_locations/{uid}")
    assert service["name"] == hit.properties["name"] == sal["service"]["name"]
    assert sal["location"] == service["service_at_locations"][0]["location"]
    assert (sal["location"]["latitude"], sal["location"]["longitude"]) == (hit.lat, hit.lon)


def test_confidential_resources_have_no_address_and_no_exact_point(demo, demo_client):
    items = all_pages(demo_client, "/hsds/service_at_locations", 200)
    hidden = [s for s in items if s["location"].get("attributes")]
    assert len(hidden) == 4
    for sal in hidden:
        loc = sal["location"]
        assert "addresses" not in loc and "confidential" in loc["description"]
        hit = demo.get(sal["id"])
        assert hit.properties["location_confidential"] is True
        assert (loc["latitude"], loc["longitude"]) == (hit.lat, hit.lon)  # the store's cell


def test_filters(demo, demo_client):
    tax = demo_client.application.extensions["mapservice"]["taxonomy"]
    library = next(t for t in hsds.taxonomy_terms(tax)
                   if t["taxonomy"] == "mapservice" and t["code"] == "library")
    found = all_pages(demo_client, "/hsds/services", 50, taxonomy_term_id=library["id"])
    assert found and len(found) == demo.count_matches(SearchQuery(categories=("library",)))
    assert all(library["id"] in {a["taxonomy_term_id"] for a in s["attributes"]}
               for s in found)
    audiences = hsds.taxonomy_id("mapservice_audiences")
    with_audience = all_pages(demo_client, "/hsds/services", 100, taxonomy_id=audiences)
    assert len(with_audience) == demo.count_matches(
        SearchQuery(audiences=tuple(tax.audiences)))
    terms = all_pages(demo_client, "/hsds/taxonomy_terms", 50, taxonomy_id=audiences)
    assert {t["code"] for t in terms} == set(tax.audiences)
    # an id with spaces around it reads the same on both (services read it so already)
    assert all_pages(demo_client, "/hsds/taxonomy_terms", 50,
                     taxonomy_id=f" {audiences} ") == terms
    future = get_ok(demo_client, "/hsds/services?modified_after=2999-01-01")
    assert future["empty"] is True and future["total_items"] == 0
    beyond = get_ok(demo_client, "/hsds/services?page=99&per_page=10")
    assert (beyond["contents"], beyond["empty"], beyond["last_page"]) == ([], True, True)


def test_drafts_and_their_organisations_stay_hidden(demo, demo_client):
    """(Writes a draft into the shared demo database: drafts count nowhere.)"""
    demo.upsert([{"source_id": "d1", "name": "Entwurf", "lat": 53.5, "lon": 10.0,
                  "status": "draft", "organization": {"name": "Nur Entwürfe e.V."}}],
                source="test", changed_by="test")
    uid = demo.search(SearchQuery(statuses=("draft",))).hits[0].properties["uid"]
    assert demo_client.get(f"/hsds/services/{uid}").status_code == 404
    orgs = all_pages(demo_client, "/hsds/organizations", 100)
    assert "Nur Entwürfe e.V." not in {o["name"] for o in orgs}
    assert get_ok(demo_client, "/hsds/services")["total_items"] == DEMO_TOTAL


BAD_PARAMETERS = [
    ("/hsds/services?page=0", "page"),
    ("/hsds/services?page=1_0", "page"), ("/hsds/services?per_page=%D9%A5", "per_page"),
    ("/hsds/services?page=-1", "page"),
    ("/hsds/services?page=abc", "page"),
    ("/hsds/services?page=1&page=2", "page"),
    ("/hsds/services?per_page=0", "per_page"),
    ("/hsds/services?per_page=1.5", "per_page"),
    ("/hsds/services?per_page=100000", "per_page"),
    ("/hsds/services?page=999999999", "page"),
    ("/hsds/organizations?page=x", "page"),
    ("/hsds/taxonomies?per_page=", "per_page"),
    ("/hsds/taxonomy_terms?taxonomy_id=nope", "taxonomy_id"),
    ("/hsds/services?taxonomy_term_id=nope", "taxonomy_term_id"),
    ("/hsds/services?taxonomy_id=nope", "taxonomy_id"),
    ("/hsds/services?modified_after=yesterday", "modified_after"),
    ("/hsds/services?organization_id=x&organization_id=y", "organization_id"),
    ("/hsds/services?proximity=1", "proximity"),
    ("/hsds/service_at_locations?postcode=20095", "postcode"),
    ("/hsds/services/abc?full=true", "full"),
]


def test_bad_parameters_are_400_problems(demo_client):
    for url, parameter in BAD_PARAMETERS:
        response = demo_client.get(url)
        assert (response.status_code, response.mimetype) == (400, "application/problem+json"), url
        assert response.get_json()["parameter"] == parameter, url


def test_unknown_ids_are_404_problems(demo, demo_client):
    for path in KINDS:
        for item_id in ("00000000-0000-0000-0000-000000000000", "nope", "%C3%A4%20x"):
            response = demo_client.get(f"/hsds/{path}/{item_id}")
            assert (response.status_code, response.mimetype) == (
                404, "application/problem+json"), (path, item_id)


# ---- the store methods behind /hsds (both backends) -------------------------------------------
def test_store_organizations(demo):
    store = demo
    page, total = store.organizations(limit=5, offset=0)
    rest, total_again = store.organizations(limit=100, offset=5)
    assert total == total_again == len(page) + len(rest)
    names = [o["name"] for o in page + rest]
    assert names == sorted(names) and len({o["uid"] for o in page + rest}) == total
    (one,), count = store.organizations(uid=page[0]["uid"], with_resources=True)
    assert count == 1 and one["name"] == page[0]["name"] and one["resources"]
    hits = {h.properties["uid"]: h for h in store.search(SearchQuery(limit=1000)).hits}
    for res in one["resources"]:
        assert hits[res["uid"]].properties["organization"] == one["name"]
    assert store.organizations(uid="nope") == ([], 0)


def test_store_organizations_of_and_count_matches(demo):
    store = demo
    hits = store.search(SearchQuery(limit=20)).hits
    orgs = store.organizations_of([h.properties["uid"] for h in hits] + ["nope"])
    assert "nope" not in orgs and len(orgs) == 20
    for hit in hits:
        assert orgs[hit.properties["uid"]]["name"] == hit.properties["organization"]
    assert store.organizations_of([]) == {}
    query = SearchQuery(categories=("counselling",), limit=1000)
    assert store.count_matches(query) == len(store.search(query).hits) > 0
    assert store.count_matches(SearchQuery()) == store.count() == DEMO_TOTAL
    with pytest.raises(ValueError):
        store.count_matches(SearchQuery(near=(53.55, 10.0)))


def test_address_region_comes_from_the_settings(demo_app, demo):
    """REGION_CITY/STATE/COUNTRY fill the HSDS address fields (default: Hamburg, DE) and
    decide which imported city "goes without saying"."""
    hit = next(h for h in demo.search(SearchQuery(limit=50)).hits if h.properties["address"])
    uid = hit.properties["uid"]
    (address,) = get_ok(demo_app.test_client(),
                        f"/hsds/services/{uid}")["service_at_locations"][0]["location"]["addresses"]
    assert (address["city"], address["state_province"], address["country"]) == \
        ("Hamburg", "Hamburg", "DE")
    assert hsds.region() == hsds.REGION  # outside an app: the defaults
    demo_app.config.update(REGION_CITY="Bremen", REGION_STATE="Bremen", REGION_COUNTRY="de")
    try:
        (address,) = get_ok(demo_app.test_client(), f"/hsds/services/{uid}")[
            "service_at_locations"][0]["location"]["addresses"]
        assert (address["city"], address["state_province"], address["country"]) == \
            ("Bremen", "Bremen", "DE")
        assert_valid("service", get_ok(demo_app.test_client(), f"/hsds/services/{uid}"))
    finally:
        demo_app.config.update(REGION_CITY="Hamburg", REGION_STATE="Hamburg",
                               REGION_COUNTRY="DE")

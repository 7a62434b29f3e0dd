"""``/hsds``: the Open Referral HSDS 3.0 read API.

The read endpoints of HSDS 3.0's ``openapi.json``: ``/`` (API info), ``/services``,
``/service_at_locations``, ``/organizations``, ``/taxonomies`` and ``/taxonomy_terms``, each
list paginated (``page``, ``per_page``) with HSDS's page header, each ``/{id}`` a single object.
Thin: parse the parameters, ask the store through the one search path (``SearchQuery`` +
``store.search``/``get``), serialise with :mod:`mapservice.hsds`.

A parameter HSDS defines but we do not implement (``organization_id``, ``postcode``,
``proximity``, ``full``, ``minimal``, ``format`` ...) is a 400 naming it - a filter is never
silently ignored.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from flask import Blueprint, Response, current_app, request, url_for

from .. import hsds
from ..errors import InvalidParameter, NotFound
from ..http import json_response, use_last_modified
from ..search import SearchQuery, integer, parse_datetime, parse_text
from ..store import Hit

bp = Blueprint("hsds", __name__, url_prefix="/hsds")

PAGING = ("page", "per_page")
RESOURCE_FILTERS = ("search", "taxonomy_term_id", "taxonomy_id", "modified_after",
                    "organization_id")
MAX_OFFSET = 1_000_000


def _ctx() -> dict[str, Any]:
    return current_app.extensions["mapservice"]


def _check_args(allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for name in request.args:
        if name not in allowed:
            raise InvalidParameter(name, "unknown or unsupported parameter; supported here: "
                                         + (", ".join(allowed) or "none"))
        if len(request.args.getlist(name)) > 1:
            raise InvalidParameter(name, "given more than once")


def _int_arg(name: str, default: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = integer(raw)
    if value is None:
        raise InvalidParameter(name, f"{raw!r} is not an integer")
    if not 1 <= value <= high:
        raise InvalidParameter(name, f"must be between 1 and {high}, got {value}")
    return value


def _paging(*filters: str) -> tuple[int, int]:
    """(page, per_page) of a list request whose other parameters may only be ``filters``."""
    _check_args((*PAGING, *filters))
    per_page = _int_arg("per_page", current_app.config["PAGE_SIZE"],
                        current_app.config["MAX_PAGE_SIZE"])
    page = _int_arg("page", 1, MAX_OFFSET // per_page + 1)
    return page, per_page


def _term(term_id: str, parameter: str) -> dict[str, Any]:
    for term in hsds.taxonomy_terms(_ctx()["taxonomy"]):
        if term["id"] == term_id:
            return term
    raise InvalidParameter(parameter, f"no taxonomy term with id {term_id!r}")


def _resource_query() -> tuple[SearchQuery, int, int]:
    """The SearchQuery of a services / service_at_locations list request."""
    page, per_page = _paging(*RESOURCE_FILTERS)
    args, tax = request.args, _ctx()["taxonomy"]
    filters: dict[str, Any] = {"text": parse_text(args.get("search"), "search")}
    if args.get("modified_after") is not None:
        filters["updated_since"] = parse_datetime(args["modified_after"], "modified_after",
                                                  date_only_ok=True).astimezone(dt.timezone.utc)
    if args.get("organization_id") is not None:
        filters["organization"] = args["organization_id"].strip()
    if args.get("taxonomy_term_id") is not None:
        term = _term(args["taxonomy_term_id"].strip(), "taxonomy_term_id")
        kind = hsds.TAXONOMIES[term["taxonomy"]][0]
        if kind == "location":
            raise InvalidParameter("taxonomy_term_id", "location terms cannot filter services")
        filters[kind] = (term["code"],)
    if args.get("taxonomy_id") is not None:
        kinds = {hsds.taxonomy_id(name): kind for name, (kind, _) in hsds.TAXONOMIES.items()
                 if kind != "location"}
        kind = kinds.get(args["taxonomy_id"].strip())
        if kind is None:
            raise InvalidParameter("taxonomy_id", f"no taxonomy of services with id "
                                                  f"{args['taxonomy_id']!r}")
        if kind not in filters:  # "has any term of it" = overlaps all of its codes
            filters[kind] = tuple(getattr(tax, kind))
    return SearchQuery(limit=per_page, offset=(page - 1) * per_page, **filters), page, per_page


def _resources(serialise: Any) -> Response:
    query, page, per_page = _resource_query()
    store = _ctx()["store"]
    result = store.search(query)
    use_last_modified(result.last_modified)
    hits = result.hits
    orgs = store.organizations_of([hit.properties["uid"] for hit in hits])
    contents = [serialise(hit, orgs.get(hit.properties["uid"]), _ctx()["taxonomy"])
                for hit in hits]
    return json_response(hsds.page(contents, total_items=store.count_matches(query),
                                   page_number=page, per_page=per_page))


def _resource(uid: str, serialise: Any) -> Response:
    _check_args(())
    store = _ctx()["store"]
    hit: Hit | None = store.get(uid)
    if hit is None:
        raise NotFound(f"no published service with id {uid!r}")
    return json_response(serialise(hit, store.organizations_of([uid]).get(uid),
                                   _ctx()["taxonomy"]))


def _listed(items: list[dict[str, Any]], page: int, per_page: int) -> Response:
    start = (page - 1) * per_page
    return json_response(hsds.page(items[start:start + per_page], total_items=len(items),
                                   page_number=page, per_page=per_page))


def _one(items: Iterable[dict[str, Any]], item_id: str, what: str) -> Response:
    _check_args(())
    for item in items:
        if item["id"] == item_id:
            return json_response(item)
    raise NotFound(f"no {what} with id {item_id!r}")


@bp.get("/")
def root() -> Response:
    _check_args(())
    return json_response(hsds.api_info(
        description="Community resilience resources (support groups, youth centres, "
                    "counselling, language cafés ...) as Open Referral HSDS 3.0.",
        publisher={"name": "mapservice", "website": request.url_root},
        # this API's own document (its paths and parameters), not Open Referral's generic
        # one, which declares parameters this API does not take
        openapi_url=url_for("api.openapi_json", _external=True)))


@bp.get("/services")
def services() -> Response:
    return _resources(hsds.service)


@bp.get("/services/<uid>")
def service(uid: str) -> Response:
    return _resource(uid, hsds.service)


@bp.get("/service_at_locations")
def service_at_locations() -> Response:
    return _resources(hsds.service_at_location)


@bp.get("/service_at_locations/<uid>")
def service_at_location(uid: str) -> Response:
    return _resource(uid, hsds.service_at_location)


@bp.get("/organizations")
def organizations() -> Response:
    page, per_page = _paging()
    orgs, total = _ctx()["store"].organizations(limit=per_page, offset=(page - 1) * per_page)
    return json_response(hsds.page([hsds.organization(org) for org in orgs],
                                   total_items=total, page_number=page, per_page=per_page))


@bp.get("/organizations/<uid>")
def organization(uid: str) -> Response:
    _check_args(())
    orgs, _ = _ctx()["store"].organizations(uid=uid, limit=1, with_resources=True)
    if not orgs:
        raise NotFound(f"no organization with id {uid!r}")
    return json_response(hsds.organization(orgs[0], services=orgs[0]["resources"]))


@bp.get("/taxonomies")
def taxonomies() -> Response:
    return _listed(hsds.taxonomies(), *_paging())


@bp.get("/taxonomies/<item_id>")
def taxonomy(item_id: str) -> Response:
    return _one(hsds.taxonomies(), item_id, "taxonomy")


@bp.get("/taxonomy_terms")
def taxonomy_terms() -> Response:
    page, per_page = _paging("taxonomy_id")
    terms = hsds.taxonomy_terms(_ctx()["taxonomy"])
    wanted = request.args.get("taxonomy_id")
    if wanted is not None:
        wanted = wanted.strip()  # as /services reads it
        if wanted not in {t["id"] for t in hsds.taxonomies()}:
            raise InvalidParameter("taxonomy_id", f"no taxonomy with id {wanted!r}")
        terms = [t for t in terms if t["taxonomy_id"] == wanted]
    return _listed(terms, page, per_page)


@bp.get("/taxonomy_terms/<item_id>")
def taxonomy_term(item_id: str) -> Response:
    return _one(hsds.taxonomy_terms(_ctx()["taxonomy"]), item_id, "taxonomy term")

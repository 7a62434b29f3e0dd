"""The pages: the map (a small Folium shell whose markers come from the API)."""
from __future__ import annotations

import secrets

from flask import Blueprint, current_app, g, make_response, render_template, request
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from .. import i18n
from ..http import check_query_text
from ..search import parse_search
from .map import build_map

bp = Blueprint("web", __name__)

#: The page's parameters that filter the places; static/js/map.js hands them on to the API with
#: the visible area. The others are the view (``lat``, ``lon``, ``z``), ``lang``, and whatever a
#: messenger appends to a shared link: not filters, and no reason to refuse the page.
MAP_FILTERS = ("category", "language", "audience", "cost", "wheelchair", "q", "district",
               "open_now")
#: What a link to the page in another language keeps: the filters and the view.
PAGE_PARAMETERS = frozenset((*MAP_FILTERS, "lat", "lon", "z"))


@bp.get("/")
def index():
    ctx = current_app.extensions["mapservice"]
    lang = i18n.current_language()
    sources = ctx["store"].sources_in_use()
    taxonomy = ctx["taxonomy"]
    # The API's own checks: a value it would refuse is a 400 page naming the parameter, not a
    # map that stays empty with "could not be loaded".
    check_query_text(MAP_FILTERS)
    parse_search(MultiDict([(name, value) for name in MAP_FILTERS
                            for value in request.args.getlist(name)]), taxonomy=taxonomy)
    categories = {c["code"]: {"label": c["label"], "icon": c["icon"], "color": c["color"]}
                  for c in taxonomy.localized("categories", lang)}
    client = {
        "lang": lang,
        "categories": categories,
        "filters": list(MAP_FILTERS),
        "texts": {"website": _("Website"), "approximate": _("Approximate area only: the exact "
                                                             "address is protected."),
                  "count": _("%(n)s places in this map area.", n="%(n)s"),
                  "more": _("Zoom in to see all."),
                  "error": _("The places could not be loaded. Please try again."),
                  # opening hours: "PH off" -> "public holidays closed", "24/7"
                  "holidays": _("public holidays"), "closed": _("closed"),
                  "always": _("open around the clock")},
    }
    # The page's own inline scripts (Folium's set-up) run by this nonce; the CSP allows no
    # other inline script (http.init_app), so injected markup could not run any.
    g.csp_nonce = secrets.token_urlsafe(18)
    response = make_response(render_template(
        "map.html", map=build_map(current_app.config, client, nonce=g.csp_nonce),
        csp_nonce=g.csp_nonce, demo=any(s["name"] == "demo" for s in sources), sources=sources))
    # Each answer has its own nonce: no shared cache may hand it to another visitor, and the
    # browser asks again (its back/forward cache still works, which no-store would prevent).
    response.headers["Cache-Control"] = "private, no-cache"
    return response

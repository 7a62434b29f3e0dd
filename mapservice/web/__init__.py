"""The pages: the map (a small Folium shell whose markers come from the API)."""
from __future__ import annotations

import secrets
from urllib.parse import urlencode
from typing import Any

from flask import (Blueprint, current_app, g, make_response, redirect, render_template,
                   request, url_for)
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from .. import geocode, i18n
from ..http import check_query_text
from ..errors import GeocoderUnavailable, InvalidParameter, RateLimited
from ..ratelimit import admit_online_lookup
from ..search import MAX_TEXT_LENGTH, parse_bool, parse_search
from .map import build_map

bp = Blueprint("web", __name__)

#: The page's parameters that filter the places; static/js/map.js hands them on to the API with
#: the visible area. The others are the view (``lat``, ``lon``, ``z``), ``lang``, and whatever a
#: messenger appends to a shared link: not filters, and no reason to refuse the page.
MAP_FILTERS = ("category", "language", "audience", "cost", "wheelchair", "q", "district",
               "open_now")
#: What a link to the page in another language keeps: the filters and the view.
PAGE_PARAMETERS = frozenset((*MAP_FILTERS, "lat", "lon", "z"))


#: The filters the panel beside the map sets (one value each); the page's other filters
#: (``audience``, ``district``, further values from a shared link) are kept as they are.
PANEL_FILTERS = ("q", "category", "language", "cost", "wheelchair", "open_now")


#: The one value each checkbox of the panel sets.
_CHECKBOX_VALUE = {"cost": {"free"}, "wheelchair": {"yes"}, "open_now": {"true"}}


#: How a filter the panel keeps from the page's address reads, by parameter (the values of
#: coded filters through the taxonomy, the others as written).
_TAXONOMY_OF = {"category": "categories", "language": "languages", "audience": "audiences"}


def _value_labels() -> dict[str, dict[str, str]]:
    """The words for the values of the filters that are not in the taxonomy."""
    # TRANSLATORS: a value of the cost or wheelchair filter that the data does not know
    unknown = _("Not known")
    return {"cost": {"free": _("Free of charge"), "reduced": _("Reduced price"),
                     "paid": _("With a fee"), "unknown": unknown},
            # TRANSLATORS: wheelchair access: yes, partly, no
            "wheelchair": {"yes": _("Yes"), "limited": _("Partly"), "no": _("No"),
                           "unknown": unknown}}


def _kept_label(taxonomy: Any, lang: str, name: str, value: str) -> str:
    """"Kind of help: Counselling" for ``category=counselling`` in the page's language."""
    titles = {"category": _("Kind of help"), "language": _("Language spoken"),
              "audience": _("For whom"), "district": _("District"), "q": _("Search"),
              "cost": _("Cost"), "wheelchair": _("Wheelchair access"),
              "open_now": _("Open now")}
    kind, words = _TAXONOMY_OF.get(name), _value_labels().get(name)
    if kind is None and words is None:  # free text (q, district): as written
        return f"{titles.get(name, name)}: {value}"

    def word(code: str) -> str:
        return taxonomy.label(kind, code, lang) if kind else words.get(code.lower(), code)

    # TRANSLATORS: between the values of one kept filter ("Cost: Free of charge, Reduced price")
    shown = _(", ").join(word(code.strip()) for code in value.split(","))
    return f"{titles.get(name, name)}: {shown}"


def _filter_panel(taxonomy: Any, lang: str) -> dict[str, Any]:
    """What the filter form shows: the current values, the choices in the page's language
    (sorted as the language sorts them, roughly), and the filters it keeps hidden."""
    args = request.args
    # The panel shows a filter's first value where one of its controls can: a checkbox only
    # its one value, a choice one code; any other value is kept and named below the controls
    # (``wheelchair=limited`` filtered the map while the panel showed no filter at all).
    choices = {name: sorted(((c["code"], c["label"]) for c in taxonomy.localized(name, lang)),
                            key=lambda item: i18n.sort_key(item[1]))
               for name in ("categories", "languages")}
    codes = {"category": {code for code, label in choices["categories"]},
             "language": {code for code, label in choices["languages"]}, **_CHECKBOX_VALUE}
    first = {name: (args.getlist(name) or [""])[0] for name in PANEL_FILTERS}
    # open_now is one true/false (checked by parse_search): true ticks the box, false filters
    # nothing and is neither kept nor named
    first["open_now"] = "true" if first["open_now"] and parse_bool(first["open_now"],
                                                                   "open_now") else ""
    first = {name: value if name == "q" or value in codes[name] else ""
             for name, value in first.items()}
    kept = [(name, value, _kept_label(taxonomy, lang, name, value)) for name in MAP_FILTERS
            for i, value in enumerate(args.getlist(name)) if name != "open_now"
            and (name not in PANEL_FILTERS or i > 0 or first[name] != value)]
    return {
        "current": first,
        "categories": choices["categories"],
        "languages": choices["languages"],
        "kept": kept,
        "active": any(args.getlist(name) for name in MAP_FILTERS),
        "lang": args.get("lang"),
    }


#: The map's zoom for a place found by the panel's "where" field, by the kind of place.
PLACE_ZOOM = {"postcode": 14, "stadtteil": 14, "bezirk": 12}


def _moved(args: list[tuple[str, str]]) -> Any:
    """303 to the page with ``args``: the address a shared link should hold."""
    return redirect(url_for("web.index") + ("?" + urlencode(args) if args else ""), 303)


def _go_to_place(values: list[str]) -> Any:
    """The panel's "where" (a postcode, Stadtteil or Bezirk, read by the offline gazetteer
    first, as /api/v1/geocode reads it): a 303 to the page centred there, with the other
    filters; an empty one is left out. A place it does not know: what the page says at the
    field (the typed text, the closest names with their links)."""
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "where"
            and (v != "" or k not in MAP_FILTERS)]
    if len(values) > 1:
        raise InvalidParameter("where", "given more than once")
    text = " ".join(values[0].split())
    if not text:
        return _moved(rest)
    try:
        found = geocode.find_place(text[:MAX_TEXT_LENGTH], current_app.config,
                                   before_online=admit_online_lookup)
    except (GeocoderUnavailable, RateLimited) as exc:
        # the online geocoder cannot answer now: said at the field, with what works instead
        return {"text": text[:MAX_TEXT_LENGTH], "suggestions": [], "status": exc.status,
                "retry_after": exc.retry_after,
                "message": _("Addresses cannot be looked up right now. Please type a "
                             "postcode or district, or try again later.")}
    if not found:
        # the page again, the form as it was, the problem at the field and the closest names
        # as links (each with the other filters and the view)
        base = url_for("web.index") + "?"
        return {"text": text[:MAX_TEXT_LENGTH], "status": 400,
                "message": _("“%(place)s” is not a postcode or district we know.",
                             place=text[:MAX_TEXT_LENGTH]),
                "suggestions": [(name, base + urlencode([*rest, ("where", name)]))
                                for name in geocode.default().suggest(text)]}
    place = found[0]
    view = [(k, v) for k, v in rest if k not in ("lat", "lon", "z")]
    return _moved([*view, ("lat", f"{place['lat']:.5f}"), ("lon", f"{place['lon']:.5f}"),
                   ("z", str(PLACE_ZOOM.get(place.get("type"), 15)))])


@bp.get("/")
def index():
    ctx = current_app.extensions["mapservice"]
    lang = i18n.current_language()
    sources = ctx["store"].sources_in_use()
    taxonomy = ctx["taxonomy"]
    # The API's own checks: a value it would refuse is a 400 page naming the parameter, not a
    # map that stays empty with "could not be loaded".
    check_query_text((*MAP_FILTERS, "where"))
    where_error = None
    if "where" in request.args:
        where_error = _go_to_place(request.args.getlist("where"))
        if not isinstance(where_error, dict):
            return where_error
    if any(value == "" for name in MAP_FILTERS for value in request.args.getlist(name)):
        # An empty field of the filter form (sent without JavaScript): no filter. The page's
        # address is the one without it (map.js hands the filters on to the API, which
        # refuses empty values).
        return _moved([(k, v) for k, v in request.args.items(multi=True)
                       if v != "" or k not in MAP_FILTERS])
    parse_search(MultiDict([(name, value) for name in MAP_FILTERS
                            for value in request.args.getlist(name)]), taxonomy=taxonomy)
    categories = {c["code"]: {"label": c["label"], "icon": c["icon"], "color": c["color"]}
                  for c in taxonomy.localized("categories", lang)}
    client = {
        "lang": lang,
        # the language the listings are written in: names and addresses are marked with it
        "dataLang": current_app.config["DATA_LANGUAGE"] or None,
        "categories": categories,
        "filters": list(MAP_FILTERS),
        "texts": {"website": _("Website"), "approximate": _("Approximate area only: the exact "
                                                             "address is protected."),
                  # TRANSLATORS: the list's status line; %(n)s is a number
                  "count": _("Places in this map area: %(n)s.", n="%(n)s"),
                  # more places in the area than one answer carries: counts per cell
                  "many": _("Places in this map area: %(n)s. Zoom in or filter to list them.",
                            n="%(n)s"),
                  # TRANSLATORS: after "Places in this map area: 0."
                  "none": _("Zoom out, move the map or use fewer filters to find more."),
                  "error": _("The places could not be loaded. Please try again."),
                  "nearme": _("The map shows the area around you."),
                  # Leaflet's buttons and markercluster's groups, named in the page's language
                  # TRANSLATORS: button names (a verb): zoom the map in, out; close the popup
                  "zoomin": _("Zoom in"), "zoomout": _("Zoom out"), "close": _("Close"),
                  # TRANSLATORS: a screen reader's name of a button for a group of %(n)s places
                  "cluster": _("Places here: %(n)s. Zoom in", n="%(n)s"),
                  "nolocation": _("Your location could not be determined. Type a postcode "
                                  "or district instead."),
                  # opening hours: "PH off" -> "public holidays closed", "24/7"
                  # TRANSLATORS: replaces "PH" in an opening-hours line, before what applies
                  # then: "Mo-Fr 10:00-16:00; on public holidays closed" (or a time)
                  "holidays": _("public holidays"),
                  # TRANSLATORS: replaces "off" in an opening-hours line (see "public holidays")
                  "closed": _("closed"),
                  # TRANSLATORS: the whole opening-hours line of a place open 24/7
                  "always": _("open around the clock"),
                  # the hours line's separators ("Mo, We; PH off"): the language's own
                  "semicolon": _("; "), "comma": _(", ").rstrip() or ","},
    }
    # The page's own inline scripts (Folium's set-up) run by this nonce; the CSP allows no
    # other inline script (http.init_app), so injected markup could not run any.
    g.csp_nonce = secrets.token_urlsafe(18)
    response = make_response(render_template(
        "map.html", map=build_map(current_app.config, client, nonce=g.csp_nonce),
        csp_nonce=g.csp_nonce, demo=any(s["name"] == "demo" for s in sources), sources=sources,
        panel={**_filter_panel(taxonomy, lang), "where_error": where_error}),
        where_error["status"] if where_error else 200)
    if where_error and where_error.get("retry_after"):
        response.headers["Retry-After"] = str(where_error["retry_after"])
    # Each answer has its own nonce: no shared cache may hand it to another visitor, and the
    # browser asks again (its back/forward cache still works, which no-store would prevent).
    response.headers["Cache-Control"] = "private, no-cache"
    return response

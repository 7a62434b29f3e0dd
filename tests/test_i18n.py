"""UI translations: complete catalogs, compiled .mo files that match them, no string left out of
the catalogs, and the page in each language (direction, title, language choice and its cookie)."""
from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from babel.messages import frontend
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "mapservice" / "translations"
POT = TRANSLATIONS / "messages.pot"
LANGUAGES = ("de", "en", "ar", "fa", "uk", "tr")
HOW_TO_FIX = ("run `make translations`, translate the new (empty or fuzzy) entries in "
              "mapservice/translations/<lang>/LC_MESSAGES/messages.po, then run "
              "`make translations` again to compile them")
# %(name)s, %s, %d ... (python-format); %% is a literal percent sign, not a placeholder
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa]")


def _po(lang: str) -> Catalog:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def _pot() -> Catalog:
    with POT.open("rb") as fh:
        return read_po(fh)


def _placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text.replace("%%", "")))


def _forms(value: str | tuple | list) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _key(message) -> tuple[str, str | None]:
    return (message.id if isinstance(message.id, str) else message.id[0], message.context)


def _translations(catalog: Catalog, *, po: bool) -> dict:
    """What a compiled catalog holds: the translated, non-fuzzy messages (``pybabel compile``
    leaves out fuzzy and untranslated ones)."""
    return {_key(m): tuple(_forms(m.string)) for m in catalog
            if m.id and (not po or (any(_forms(m.string)) and not m.fuzzy))}


# ---- (a) every catalog is complete ---------------------------------------------------------
@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_translates_every_message(lang):
    pot, po = _pot(), _po(lang)
    problems = []
    for template in pot:
        if not template.id:
            continue
        message = po.get(template.id, template.context)
        label = repr(_key(template)[0])
        if message is None:
            problems.append(f"{label}: missing from the catalog")
            continue
        forms = _forms(message.string)
        if message.fuzzy:
            problems.append(f"{label}: marked fuzzy (check the translation, remove the flag)")
        if not all(forms):
            problems.append(f"{label}: not translated")
            continue
        expected = _placeholders(_forms(template.id)[-1])
        for form in forms:
            if _placeholders(form) != expected:
                problems.append(f"{label}: placeholders {expected} expected, "
                                f"{_placeholders(form)} in {form!r}")
    for message, errors in po.check():  # babel's own checks (python-format types, plurals)
        problems.extend(f"{message.id!r}: {error}" for error in errors)
    assert not problems, f"{lang} catalog is incomplete; {HOW_TO_FIX}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_header_names_its_language(lang):
    po = _po(lang)
    assert str(po.locale) == lang
    assert po.num_plurals >= 1 and po.plural_expr


# ---- (b) the shipped .mo files are compiled from the current .po files ----------------------
@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_catalog_is_up_to_date(lang):
    mo_path = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo"
    assert mo_path.is_file(), f"{mo_path} is missing; run `make translations`"
    with mo_path.open("rb") as fh:
        compiled = _translations(read_mo(fh), po=False)
    source = _translations(_po(lang), po=True)
    stale = sorted({k[0] for k in source.keys() ^ compiled.keys()}
                   | {k[0] for k in source.keys() & compiled.keys() if source[k] != compiled[k]})
    assert not stale, (f"{mo_path.relative_to(ROOT)} does not match its .po file "
                       f"(run `make translations` to recompile); differing: {stale}")


# ---- (c) no UI string is missing from the catalogs ------------------------------------------
def _extract_source_messages() -> dict[tuple[str, str | None], str]:
    """Extract like ``make translations`` does: babel.cfg's mapping over mapservice/ and
    templates/, gettext's keywords plus ``_l``."""
    parse = getattr(frontend, "parse_mapping_cfg", None) or frontend.parse_mapping
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse(fh)
    scanned = (ROOT / "mapservice", ROOT / "templates")

    def _wanted(path: str) -> bool:
        p = Path(path)
        return (not p.name.startswith((".", "_"))
                and any(p == top or top in p.parents for top in scanned))

    found: dict[tuple[str, str | None], str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            ROOT, method_map, options_map, keywords={**DEFAULT_KEYWORDS, "_l": None},
            directory_filter=_wanted):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.setdefault((msgid, context), f"{filename}:{lineno}")
    return found


def test_every_source_string_is_in_the_catalog_template():
    found = _extract_source_messages()
    assert any(where.startswith("templates/") for where in found.values()), \
        "nothing extracted from templates/ (is babel.cfg's jinja2 mapping intact?)"
    assert any(where.startswith("mapservice/") for where in found.values()), \
        "nothing extracted from mapservice/ (is babel.cfg's python mapping intact?)"
    pot = _pot()
    missing = sorted(f"{where}: {key[0]!r}" for key, where in found.items()
                     if pot.get(key[0], key[1]) is None)
    assert not missing, ("UI strings missing from mapservice/translations/messages.pot; "
                         f"{HOW_TO_FIX}:\n  " + "\n  ".join(missing))


# ---- (d) the page in each language ------------------------------------------------------------
def _translated(lang: str, msgid: str) -> str:
    message = _po(lang).get(msgid)
    assert message is not None and message.string, f"{msgid!r} is not translated into {lang}"
    return message.string


def _language_links(page: str) -> dict[str, str]:
    """hreflang -> href of the language switcher's links."""
    nav = re.search(r'<nav class="ms-lang".*?</nav>', page, re.S)
    assert nav, "no language switcher on the page"
    return {code: html.unescape(href)
            for href, code in re.findall(r'<a href="([^"]*)" hreflang="([^"]+)"', nav.group(0))}


spatialite_only = pytest.mark.parametrize("backend", ["spatialite"], indirect=True)


@spatialite_only
@pytest.mark.parametrize("lang", ["ar", "fa"])
def test_right_to_left_languages(client, lang):
    page = client.get(f"/?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}" dir="rtl">' in page
    assert f"<title>{_translated(lang, 'Help nearby – Hamburg')}</title>" in page


@spatialite_only
@pytest.mark.parametrize("lang", ["de", "en", "uk", "tr"])
def test_left_to_right_languages(client, lang):
    page = client.get(f"/?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}" dir="ltr">' in page


@spatialite_only
def test_ukrainian_page_shows_the_ukrainian_title(client):
    title = _translated("uk", "Help nearby – Hamburg")
    assert title != "Help nearby – Hamburg" and re.search("[А-Яа-яІіЇїЄєҐґ]", title)
    page = client.get("/?lang=uk").get_data(as_text=True)
    assert f"<title>{title}</title>" in page
    assert f"<h1>{title}</h1>" in page


@spatialite_only
def test_accept_language_selects_turkish(client):
    page = client.get("/", headers={"Accept-Language": "tr-TR,tr;q=0.9,en;q=0.5"}
                      ).get_data(as_text=True)
    assert '<html lang="tr" dir="ltr">' in page
    assert f"<title>{_translated('tr', 'Help nearby – Hamburg')}</title>" in page


@spatialite_only
def test_lang_parameter_is_remembered_in_a_cookie(client):
    response = client.get("/?lang=fa", headers={"Accept-Language": "de"})
    cookie = client.get_cookie("lang")
    assert cookie is not None and cookie.value == "fa"
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("lang="))
    assert "Max-Age=31536000" in header and "SameSite=Lax" in header
    # the next page, without ?lang=, stays in Farsi although the browser asks for German
    page = client.get("/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="fa" dir="rtl">' in page


@spatialite_only
def test_unknown_lang_parameter_sets_no_cookie(client):
    response = client.get("/?lang=xx", headers={"Accept-Language": "en"})
    assert not any(h.startswith("lang=") for h in response.headers.getlist("Set-Cookie"))
    assert '<html lang="en" dir="ltr">' in response.get_data(as_text=True)


@spatialite_only
def test_language_links_keep_the_other_query_parameters(client):
    query = ("category=youth_centre&utm_source=chat&category=library&lat=53.55&lon=9.99&z=14"
             "&lang=de&fbclid=" + "x" * 2000)  # tracking tags are not repeated six times
    links = _language_links(client.get(f"/?{query}").get_data(as_text=True))
    assert set(links) == set(LANGUAGES)
    for code, href in links.items():
        parts = urlsplit(href)
        assert parts.path == "" and not parts.netloc, href  # same page, only the query changes
        assert parse_qsl(parts.query) == [("category", "youth_centre"), ("category", "library"),
                                          ("lat", "53.55"), ("lon", "9.99"), ("z", "14"),
                                          ("lang", code)]


@spatialite_only
@pytest.mark.parametrize("value", ["AR", "ar-SA", "ar_EG", " ar "])
def test_lang_parameter_reads_tags_as_accept_language_does(client, value):
    response = client.get(f"/?lang={value}", headers={"Accept-Language": "de"})
    assert '<html lang="ar" dir="rtl">' in response.get_data(as_text=True)
    assert client.get_cookie("lang").value == "ar"


@spatialite_only
@pytest.mark.parametrize("lang", ["de", "en", "ar", "fa", "uk", "tr"])
def test_error_pages_speak_the_pages_language(client, lang):
    """The message of an error page is in the page's language; werkzeug's English
    descriptions never show; a refused filter is named, its technical detail marked English."""
    from mapservice.http import _PAGE_MESSAGES
    from flask_babel import force_locale

    missing = client.get(f"/no-such-page?lang={lang}")
    assert missing.status_code == 404
    page = missing.get_data(as_text=True)
    assert f'<html lang="{lang}"' in page
    assert "requested URL was not found" not in page  # werkzeug's English
    with client.application.test_request_context(), force_locale(lang):
        expected = str(_PAGE_MESSAGES[404])
    assert expected in page
    if lang != "en":
        assert expected != "There is no page at this address."
    bad = client.get(f"/?lang={lang}&category=unicorns")
    assert bad.status_code == 400
    page = bad.get_data(as_text=True)
    assert "“category”" in page or "„category“" in page or "«category»" in page
    assert '<code lang="en" dir="ltr">category: ' in page

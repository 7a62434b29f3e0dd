"""UI languages (de, en, ar, fa, uk, tr) with Flask-Babel; ar and fa are right-to-left."""
from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, current_app, request
from flask_babel import Babel, get_locale

from .http import is_read_api
from .paths import PACKAGE_DIR

RTL = {"ar", "fa"}
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600  # the choice made with ?lang= is kept for a year


def ui_languages() -> tuple[str, ...]:
    return current_app.extensions["mapservice"]["taxonomy"].ui_languages


def select_locale() -> str:
    """``?lang=`` first, then the ``lang`` cookie (pages only: the read APIs are public and
    cacheable, so their answers depend on the URL and Accept-Language alone), then the
    browser's Accept-Language."""
    offered = ui_languages()
    candidates = [request.args.get("lang")]
    if not is_read_api(request.path):
        candidates.append(request.cookies.get("lang"))
    for candidate in candidates:
        code = language_code(candidate)
        if code in offered:
            return code
    return preferred_language(offered)


def language_code(value: str | None) -> str | None:
    """The primary language subtag of a tag, as Accept-Language is read: "ar-SA", "AR" and
    "uk_UA" -> "ar", "ar", "uk"."""
    if not value:
        return None
    return value.strip().replace("_", "-").split("-")[0].lower()


def preferred_language(offered: tuple[str, ...]) -> str:
    """The client's first Accept-Language choice we offer, matching the primary subtag
    ("fa-IR" -> fa), else the default. werkzeug's best_match would prefer a lower-ranked exact
    "en" to a first choice "fa-IR"."""
    for value, quality in request.accept_languages:
        primary = language_code(value)
        if quality > 0 and primary in offered:
            return primary
    return current_app.config["DEFAULT_LANGUAGE"]


def current_language() -> str:
    return str(get_locale() or current_app.config["DEFAULT_LANGUAGE"])


@lru_cache(maxsize=1)
def _collator() -> Any:
    from pyuca import Collator  # the Unicode Collation Algorithm, read once per process

    return Collator()


def sort_key(label: str) -> tuple[int, ...]:
    """How a list of labels is sorted for people: the Unicode Collation Algorithm's default
    order (untailored), where code points put letters beyond ASCII last: ä with a in German;
    і, ї, є in their places in Ukrainian; پ چ ژ ک گ among the Persian letters; Turkish ç, ö,
    ü with c, o, u (Turkish puts them after those; not tailored: no label today differs)."""
    return _collator().sort_key(label)


def text_direction(lang: str) -> str:
    return "rtl" if lang in RTL else "ltr"


def language_url(code: str) -> str:
    """The current page in another language: its filters and view (``web.PAGE_PARAMETERS``,
    repeated ones too) kept, ``lang`` replaced. Other parameters (a messenger's tracking tags)
    are left out: six links would repeat them six times."""
    from .web import PAGE_PARAMETERS  # web imports this module

    args = [(k, v) for k, v in request.args.items(multi=True) if k in PAGE_PARAMETERS]
    return "?" + urlencode([*args, ("lang", code)])


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale,
          default_translation_directories=str(PACKAGE_DIR / "translations"))

    @app.context_processor
    def _language_context() -> dict:
        lang = current_language()
        languages = current_app.extensions["mapservice"]["taxonomy"].languages
        return {"lang": lang, "dir": text_direction(lang), "ui_languages": ui_languages(),
                "language_names": {code: languages[code]["native"] for code in ui_languages()},
                "language_url": language_url}

    @app.after_request
    def _remember_language(response: Response) -> Response:
        # ?lang= is an explicit choice: keep it in a cookie so the next page (without ?lang=)
        # stays in that language. Only offered codes are stored.
        # Not under the read APIs (their HTML docs and redirects too): their answers depend
        # on the URL and Accept-Language alone, set no cookie and stay publicly cacheable.
        if response.mimetype != "text/html" or is_read_api(request.path):
            return response
        chosen = language_code(request.args.get("lang"))
        if chosen in ui_languages():
            response.set_cookie("lang", chosen, max_age=LANG_COOKIE_MAX_AGE, samesite="Lax",
                                secure=request.is_secure, httponly=True)
        # the page's language follows ?lang=, the cookie and Accept-Language
        response.vary.update(("Cookie", "Accept-Language"))
        return response

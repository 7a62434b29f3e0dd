"""UI languages (de, en, ar, fa, uk, tr) with Flask-Babel; ar and fa are right-to-left."""
from __future__ import annotations

from flask import Flask, current_app, request
from flask_babel import Babel, get_locale

from .paths import PACKAGE_DIR

RTL = {"ar", "fa"}


def ui_languages() -> tuple[str, ...]:
    return current_app.extensions["mapservice"]["taxonomy"].ui_languages


def select_locale() -> str:
    """``?lang=`` first, then the ``lang`` cookie, then the browser's Accept-Language."""
    offered = ui_languages()
    for candidate in (request.args.get("lang"), request.cookies.get("lang")):
        if candidate in offered:
            return candidate
    return request.accept_languages.best_match(offered) or current_app.config["DEFAULT_LANGUAGE"]


def current_language() -> str:
    return str(get_locale() or current_app.config["DEFAULT_LANGUAGE"])


def text_direction(lang: str) -> str:
    return "rtl" if lang in RTL else "ltr"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale,
          default_translation_directories=str(PACKAGE_DIR / "translations"))

    @app.context_processor
    def _language_context() -> dict:
        lang = current_language()
        languages = current_app.extensions["mapservice"]["taxonomy"].languages
        return {"lang": lang, "dir": text_direction(lang), "ui_languages": ui_languages(),
                "language_names": {code: languages[code]["native"] for code in ui_languages()}}

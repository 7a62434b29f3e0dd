"""mapservice: a map of community resilience resources."""
from __future__ import annotations

from typing import Any, Mapping

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None):
    """The application factory. Nothing is built at import time.

    ``config`` overrides settings (by their names without the ``MAPSERVICE_`` prefix, e.g.
    ``{"DATABASE_URL": "sqlite://"}``) and Flask options (``TESTING`` ...).
    """
    from flask import Flask

    from . import settings
    from .db import make_engine
    from .paths import STATIC_DIR, TEMPLATES_DIR
    from .store import make_store
    from .taxonomy import default as default_taxonomy

    app = Flask(__name__, template_folder=str(TEMPLATES_DIR), static_folder=str(STATIC_DIR))
    values = settings.load()
    values.update(config or {})
    settings.resolve(values)
    app.config.update(values)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if app.config["PROXY_COUNT"]:
        # The public scheme, host and client address as the trusted proxies saw them: the
        # links the app writes must carry the URL the client used (https behind nginx).
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_COUNT"]
        # Not X-Forwarded-Port/-Prefix: a proxy that does not set them passes a client's own
        # on, and links with a forged port or path would be cached publicly.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops,  # type: ignore
                                x_host=hops, x_port=0, x_prefix=0)

    engine = make_engine(app.config["DATABASE_URL"],
                         spatialite_library=app.config["SPATIALITE_LIBRARY"],
                         statement_timeout_ms=app.config["STATEMENT_TIMEOUT_MS"],
                         sqlite_mmap_mb=app.config["SQLITE_MMAP_MB"])
    app.extensions["mapservice"] = {"engine": engine, "store": make_store(engine),
                                    "taxonomy": default_taxonomy()}

    from . import http, i18n, ratelimit
    from .api import bp as api_bp
    from .hsds_api import bp as hsds_bp
    from .ogc import bp as ogc_bp
    from .web import bp as web_bp

    http.init_app(app)
    i18n.init_app(app)
    ratelimit.init_app(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(ogc_bp)
    app.register_blueprint(hsds_bp)
    app.register_blueprint(web_bp)

    from .cli import register

    register(app)
    return app

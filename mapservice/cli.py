"""``mapservice ...`` commands; the same commands run as ``flask --app mapservice ...``."""
from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext


def _store():
    return current_app.extensions["mapservice"]["store"]


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from . import migrate

    engine = current_app.extensions["mapservice"]["engine"]
    migrate.upgrade(engine)
    click.echo(f"database at revision {migrate.current(engine)} ({engine.url.render_as_string()})")


@click.command("import-demo")
@with_appcontext
def import_demo() -> None:
    """Load the fictional demo listings (idempotent)."""
    from .demo import load_demo

    report = load_demo(_store())
    click.echo("demo: " + ", ".join(f"{k} {v}" for k, v in report.as_dict().items()
                                    if not isinstance(v, list)))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="gunicorn workers (MAPSERVICE_WORKERS).")
@click.option("--debug", is_flag=True, help="Flask's development server with reloader.")
@with_appcontext
def serve(host: str, port: int, workers: int | None, debug: bool) -> None:
    """Serve the app: gunicorn in production, Flask's server with --debug."""
    if debug:
        current_app.run(host=host, port=port, debug=True)
        return
    from gunicorn.app.base import BaseApplication

    from . import create_app

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers or current_app.config["WORKERS"])
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return create_app()

    # The workers build their own app (and engine) after the fork: nothing is shared.
    _Server().run()


def register(app: Flask) -> None:
    for command in (init_db, import_demo, serve):
        app.cli.add_command(command)


def _create(*_args) -> Flask:
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
@click.version_option(package_name="mapservice")
def main() -> None:
    """mapservice: community resilience resources on a map.

    Settings come from MAPSERVICE_* environment variables (see the README).
    """


# The app is always built by create_app() from the environment: Flask's --app/--env-file/--debug
# options of the generic `flask` command would only confuse here.
main.params = [p for p in main.params if p.name not in {"app", "env_file", "debug"}]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

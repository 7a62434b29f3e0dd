"""``mapservice ...`` commands; the same commands run as ``flask --app mapservice ...``."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from .settings import region_bbox


def _store():
    """The app's store, once its database has the schema this version needs."""
    _check_schema()
    return current_app.extensions["mapservice"]["store"]


def _check_schema() -> None:
    """A command run against a database without the schema (a new SpatiaLite file: e.g. run
    from another directory, or before ``init-db``) or with an older one says so, instead of
    failing half-way with "no such table"."""
    from . import migrate

    engine = current_app.extensions["mapservice"]["engine"]
    try:
        found = migrate.current(engine)
    except Exception as exc:  # noqa: BLE001 - e.g. the server refuses the connection
        raise click.ClickException(f"cannot read the database "
                                   f"{engine.url.render_as_string()}: {exc}") from None
    wanted = migrate.head()
    if found != wanted:
        state = "has no tables yet" if found is None else \
            f"has the schema revision {found}, this version needs {wanted}"
        raise click.ClickException(
            f"the database {engine.url.render_as_string()} {state}: run 'mapservice init-db' "
            "(with the same MAPSERVICE_DATABASE_URL / MAPSERVICE_INSTANCE_DIR)")


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from . import migrate

    engine = current_app.extensions["mapservice"]["engine"]
    migrate.upgrade(engine)
    # Rows written before migration 0005 (or by hand since) get their stored Feature.
    built = current_app.extensions["mapservice"]["store"].fill_features()
    click.echo(f"database at revision {migrate.current(engine)} ({engine.url.render_as_string()})"
               + (f"; built the stored features of {built} resources" if built else ""))


@click.command("import-demo")
@with_appcontext
def import_demo() -> None:
    """Load the fictional demo listings (idempotent)."""
    from .demo import load_demo

    report = load_demo(_store())
    click.echo("demo: " + ", ".join(f"{k} {v}" for k, v in report.as_dict().items()
                                    if not isinstance(v, list)))


def _progress(iterable, total, label):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=label, unit=" records", file=sys.stderr,
                disable=None, mininterval=0.5)


def _status(message: str) -> None:
    if sys.stderr.isatty():  # as the progress bars: only for a person watching
        click.echo(f"{message} ...", err=True)


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "vector", "osm", "overpass", "hsds"]),
              help="Input format; detected from the file when not given.")
@click.option("--source", help="Name of the source (default: the file name without suffix).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Column/tag mapping file (YAML), merged over the built-in one "
                   "(docs/importers.md).")
@click.option("--crs", help="CRS of the file's coordinates, e.g. EPSG:25832; wins over a CRS "
              "the file declares.")
@click.option("--licence", help="Licence of the source, e.g. ODbL-1.0.")
@click.option("--attribution", help="Attribution text the map shows for this source.")
@click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid records and list the invalid ones (default: abort).")
@click.option("--archive-missing", is_flag=True,
              help="Archive resources of this source that are not in the file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def import_(path: Path, fmt: str | None, source: str | None, mapping: Path | None,
            crs: str | None, licence: str | None, attribution: str | None, dry_run: bool,
            skip_invalid: bool, archive_missing: bool, as_json: bool) -> None:
    """Import resources from PATH (CSV, GIS vector file, OSM, Overpass JSON, HSDS).

    Records without coordinates are placed by the offline gazetteer (postcode, Stadtteil,
    Bezirk); when MAPSERVICE_GEOCODER switches the online geocoder on, those it cannot place
    are looked up by their street address there (the address is sent to that server).
    """
    import json

    from importers import ImportFailed, ImportOptions, run_import
    from importers.pipeline import record_geocoder

    from . import geocode
    from .errors import MapserviceError

    region = region_bbox(current_app.config)
    try:
        online = geocode.online(current_app.config)
        options = ImportOptions(
            source=source or path.name.split(".")[0], format=fmt, mapping=mapping, crs=crs,
            dry_run=dry_run, skip_invalid=skip_invalid, archive_missing=archive_missing,
            licence=licence, attribution=attribution,
            region_bbox=region,  # type: ignore[arg-type]
            region_country=current_app.config["REGION_COUNTRY"],
            address_geocoding=online is not None, progress=_progress, status=_status)
        geocoder = record_geocoder(online, city=current_app.config["REGION_CITY"])
        report = run_import(_store(), path, options, geocoder=geocoder)
    except ImportFailed as exc:
        click.echo(f"import aborted: {exc.detail}", err=True)
        sys.exit(2)
    except MapserviceError as exc:
        click.echo(f"import failed: {exc.detail}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(report.summary())


@click.command("import-boundaries")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--level", type=click.Choice(["stadtteil", "bezirk", "auto"]), default="auto",
              show_default=True, help="Which districts the file holds; auto: Stadtteile when "
              "the features name their Bezirk, else Bezirke.")
@click.option("--crs", help="CRS of the file's coordinates, e.g. EPSG:25832; wins over a CRS "
              "the file declares.")
@with_appcontext
def import_boundaries(path: Path, level: str, crs: str | None) -> None:
    """Load Stadtteil/Bezirk polygons from PATH and re-derive every resource's districts."""
    from importers import ImportFailed
    from importers.boundaries import load_boundaries

    from .errors import MapserviceError

    try:
        region = region_bbox(current_app.config)
        report = load_boundaries(_store(), path, level, crs,
                                 region=region)  # type: ignore[arg-type]
    except ImportFailed as exc:
        click.echo(f"import-boundaries aborted: {exc.detail}", err=True)
        sys.exit(2)
    except MapserviceError as exc:
        click.echo(f"import-boundaries failed: {exc.detail}", err=True)
        sys.exit(2)
    click.echo(report.summary())


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["geojson", "csv", "hsds"]), required=True)
@click.argument("out", type=click.Path(dir_okay=True, writable=True, path_type=Path))
@click.option("--source", help="Only the resources of this source.")
@with_appcontext
def export(fmt: str, out: Path, source: str | None) -> None:
    """Write every published resource to OUT (re-importable; confidential ones approximate).

    OUT is replaced only when the export is complete: a failed or interrupted one leaves the
    previous file as it was.
    """
    import signal

    from importers.export import export as run_export

    from .errors import MapserviceError

    store = _store()
    if source is not None and source not in (known := store.source_names()):
        raise click.ClickException(f"no source {source!r}; the database has "
                                   + (", ".join(known) or "none"))
    # a stop (systemd, kill) ends like Ctrl-C: the partial file is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        count = run_export(store, fmt, out, source)
    except MapserviceError as exc:
        click.echo(f"export failed: {exc.detail}", err=True)
        sys.exit(2)
    click.echo(f"exported {count} resource(s) to {out}")
    if not count:
        click.echo("warning: no published resource" + (f" of source {source!r}" if source
                                                       else "") + " to export", err=True)


@click.command("duplicates")
@click.option("--status", type=click.Choice(["open", "dismissed", "merged", "all"]),
              default="open", show_default=True, help="Which flagged pairs to list.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the pairs as JSON.")
@with_appcontext
def duplicates(status: str, limit: int, as_json: bool) -> None:
    """List possible duplicates: resources of different sources near each other with similar
    names, flagged by imports for moderation (never merged automatically)."""
    import json

    pairs = _store().possible_duplicates(None if status == "all" else status, limit=limit)
    if as_json:
        click.echo(json.dumps(pairs, ensure_ascii=False, indent=2, default=str))
        return
    if not pairs:
        click.echo(f"no {'' if status == 'all' else status + ' '}possible duplicates")
        return
    def side(name: str, source: str, source_id: str, status: str) -> str:
        return f"{name!r} ({source}:{source_id}" + (f", {status})" if status != "published"
                                                     else ")")

    for p in pairs:
        first = side(p["name"], p["source"], p["source_id"], p["listing_status"])
        second = side(p["other_name"], p["other_source"], p["other_source_id"],
                      p["other_listing_status"])
        click.echo(f"#{p['id']} {p['status']:<9} score {p['score']:5.1f}  {p['distance_m']:5.1f} m"
                   f"  {first}  ~  {second}")
    click.echo(f"{len(pairs)} pair(s)")


@click.command("resolve-duplicate")
@click.argument("pair_id", type=int)
@click.option("--dismiss", is_flag=True, help="They are two places: close the pair.")
@click.option("--keep", metavar="UID", help="They are one place: keep this listing (a public "
              "id of the pair) and archive the other.")
@with_appcontext
def resolve_duplicate(pair_id: int, dismiss: bool, keep: str | None) -> None:
    """Decide an open pair of 'mapservice duplicates' (PAIR_ID is its #number).

    The archived listing keeps its history and its status is locked: a re-import of its
    source reports a conflict instead of publishing it again ('mapservice unlock UID status'
    undoes that).
    """
    from .errors import MapserviceError

    if dismiss == bool(keep):
        raise click.UsageError("give either --dismiss or --keep UID")
    try:
        done = _store().resolve_duplicate(pair_id, keep=None if dismiss else keep,
                                          changed_by=f"resolve-duplicate:{pair_id}")
    except MapserviceError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"#{pair_id}: {done['status']}"
               + (f"; archived {done['archived']}" if done["archived"] else ""))


@click.command("archive-source")
@click.argument("source")
@click.option("--dry-run", is_flag=True, help="Count what would be archived; change nothing.")
@with_appcontext
def archive_source(source: str, dry_run: bool) -> None:
    """Archive every resource of SOURCE (e.g. demo).

    They leave the map, the API and the exports; nothing is deleted: each keeps its history
    (a new version), and a later import of the source publishes its records again.
    """
    store = _store()
    known = store.source_names()
    if source not in known:
        raise click.ClickException(f"no source {source!r}; the database has "
                                   + (", ".join(known) or "none"))
    archived = store.archive_missing(source, (), changed_by=f"archive-source:{source}",
                                     dry_run=dry_run)
    click.echo(f"{source}: {'would archive' if dry_run else 'archived'} {archived} "
               f"resource(s)")


@click.command("erase")
@click.argument("text")
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.option("--max-listings", type=click.IntRange(min=1), default=20, show_default=True,
              help="Refuse when the text is in more listings than this (a word too common "
                   "to be one person's data); see --dry-run first.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def erase(text: str, dry_run: bool, max_listings: int, as_json: bool) -> None:
    """Erase TEXT - a contact person's name, phone number or e-mail address - everywhere.

    TEXT "-" reads it from standard input (it then stays out of the shell's history). From
    every listing (archived ones too), organisation and source credit, and from every earlier
    version, without regard to case and only as whole words; a phone number however it is
    written (040/123 45 67, +49 (0)40 ...), ß also as ss. A phone, e-mail or website that holds the text is emptied, as is
    a field that is the text; a longer text keeps its other words ("[…]" in place of the
    text). The listing gets a new version that does not hold the old value, and the changed
    fields are locked: correct the source too, or its next import reports them as conflicts
    instead of writing them back ('mapservice unlock' releases them once it is corrected).
    Exports and backups made before still hold the text.
    """
    import json

    from importers.validate import phone_forms

    from .errors import TooCommon

    if text == "-":
        text = sys.stdin.read()
    words = " ".join(text.split())
    if len(words) < 3:
        raise click.ClickException("TEXT must have at least 3 characters (it would erase "
                                   "parts of other words)")
    try:  # a phone number also as other people write it (and as it is stored, +49 40 …)
        report = _store().erase_text([words, *phone_forms(words)], changed_by="erase",
                                     dry_run=dry_run,
                                     max_resources=None if dry_run else max_listings)
    except TooCommon as exc:
        raise click.ClickException(
            f"the text is in {exc.count} listings, more than --max-listings {exc.limit}: is "
            "it one person's data? Look at 'mapservice erase TEXT --dry-run', then raise "
            "--max-listings if it is") from None
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "resources": report.resources,
                               "organizations": report.organizations,
                               "sources": report.sources, "versions": report.versions},
                              ensure_ascii=False, indent=2))
        return
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb} the text in {len(report.resources)} listing(s), "
               f"{len(report.organizations)} organisation(s), {len(report.sources)} "
               f"source(s) and {report.versions} stored version(s)")
    for item in report.resources:
        click.echo(f"  listing {item['uid']} {item['name']!r} ({item['status']}): "
                   + ", ".join(item["fields"]))
    for item in report.organizations:
        click.echo(f"  organisation {item['uid']} {item['name']!r}: " + ", ".join(item["fields"]))
    for name in report.sources:
        click.echo(f"  source {name!r}: its licence, attribution or address")
    if report.resources and not dry_run:
        click.echo("The listings' changed fields are locked against re-imports: correct the "
                   "sources too, then 'mapservice unlock UID FIELD ...'.")
    if report.organizations and not dry_run:
        click.echo("Organisations have no locked fields: the next import of a source that "
                   "still has the text writes it back into the organisation. Correct the "
                   "source first, or run this again after that import.")


@click.command("unlock")
@click.argument("uid")
@click.argument("fields", nargs=-1, required=True)
@with_appcontext
def unlock(uid: str, fields: tuple[str, ...]) -> None:
    """Release locked FIELDS of the listing UID (locked by a moderator or by 'erase'): the
    next import of its source writes them again."""
    from .errors import NotFound
    from .store.base import CONTENT_FIELDS

    unknown = [f for f in fields if f not in CONTENT_FIELDS]
    if unknown:
        raise click.ClickException(f"unknown field(s) {', '.join(unknown)}; the fields: "
                                   + ", ".join(CONTENT_FIELDS))
    try:
        left = _store().unlock(uid, fields)
    except NotFound as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"{uid}: still locked: {', '.join(left) or 'nothing'}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (MAPSERVICE_WORKERS).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads per worker process (MAPSERVICE_THREADS).")
@click.option("--debug", is_flag=True, help="Flask's development server with the debugger.")
def serve(host: str, port: int, workers: int | None, threads: int | None, debug: bool) -> None:
    """Serve the app: granian in production, Flask's server with --debug."""
    _check_schema()
    if debug:
        current_app.run(host=host, port=port, debug=True)
        return
    from granian import Granian
    from granian.constants import Interfaces

    config = current_app.config
    # Each worker process builds its own app (and engine) from the environment: nothing is
    # shared but the database. Granian's HTTP/1.1 server (Rust) keeps connections alive and
    # reads requests before a thread of the worker runs the app (docs/deployment.md).
    Granian("mapservice:create_app", factory=True, interface=Interfaces.WSGI, address=host,
            port=port, workers=workers or config["WORKERS"],
            blocking_threads=threads or config["THREADS"], log_access=config["ACCESS_LOG"],
            websockets=False, respawn_failed_workers=True).serve()


def register(app: Flask) -> None:
    for command in (init_db, import_demo, import_, import_boundaries, export, duplicates,
                    resolve_duplicate, archive_source, erase, unlock, serve):
        app.cli.add_command(command)


def _create(*_args) -> Flask:
    from . import create_app
    from .settings import SettingError

    # The commands sign nothing: without MAPSERVICE_SECRET_KEY they get a key for this run
    # instead of writing instance/secret_key wherever they run (even `mapservice --help` did).
    # The served app (granian's workers) creates and shares the file as before.
    config = None if os.environ.get("MAPSERVICE_SECRET_KEY") else {
        "SECRET_KEY": secrets.token_hex(32)}
    try:
        return create_app(config)
    except SettingError as exc:  # a wrong MAPSERVICE_* value: say which, without a traceback
        raise click.ClickException(f"configuration: {exc}") from None


class _Group(FlaskGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # `mapservice --help` lists the app's commands: with a wrong setting there is no app;
        # say why (as every command does) instead of Flask's traceback.
        from flask.cli import ScriptInfo

        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            return []
        return super().list_commands(ctx)


@click.group(cls=_Group, create_app=_create, add_default_commands=False,
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

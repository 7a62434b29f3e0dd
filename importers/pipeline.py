"""The one import pipeline: ``read -> map -> validate -> upsert -> report``.

Every format module registers a :class:`Reader` that turns a file into :class:`Candidate`
records (already mapped to the model's fields, each with the place it came from). The pipeline
then geocodes what lacks coordinates, validates everything, and either commits all valid
records in one transaction or nothing. (A file below ``PARALLEL_MIN_BYTES`` is validated
whole before the write begins; a larger one is validated by a second process while the write
streams what it has validated, and an invalid record rolls the write back.)

- by default one invalid record aborts the run and nothing is written (:class:`ImportFailed`
  lists every problem with its file, row/feature number and field);
- ``skip_invalid`` writes the valid records and reports the rest;
- ``dry_run`` does all the work inside a transaction that is rolled back.

A record without coordinates is placed by the ``geocoder`` given to :func:`run_import`:
:func:`gazetteer_geocoder` (postcode, Stadtteil, Bezirk centroids, offline), or
:func:`record_geocoder`, which adds the online geocoder for the street address when the
settings switch it on. A record that cannot be placed is invalid; one the online geocoder failed
on is invalid with the reason.
"""
from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol

from mapservice.errors import GeocoderUnavailable, MapserviceError
from mapservice.store import Store
from mapservice.store.base import BULK_THRESHOLD

from . import validate as _validate

if TYPE_CHECKING:
    from mapservice.geocode import OnlineGeocoder


@dataclass(frozen=True, slots=True)  # one per record read: kept small
class Where:
    """Where a value came from: the file, the record's number in it and the field."""

    file: str
    item: int | None = None  # 1-based: CSV data row, feature, OSM element, HSDS record
    kind: str = "row"
    field: str | None = None
    ref: str | None = None  # the item's own id in the source, e.g. OSM "way/456"

    def at(self, field_name: str) -> Where:
        return Where(self.file, self.item, self.kind, field_name, self.ref)

    def __str__(self) -> str:
        parts = [self.file]
        if self.item is not None:
            parts.append(f"{self.kind} {self.item}" + (f" ({self.ref})" if self.ref else ""))
        elif self.ref:
            parts.append(self.ref)
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Problem:
    where: Where
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.where.file, "item": self.where.item, "kind": self.where.kind,
                "field": self.where.field, "ref": self.where.ref, "message": self.message}


@dataclass
class Candidate:
    """One record read from a file and mapped onto the model (``source_id`` + content fields,
    ``organization`` as a mapping). ``problems`` are mapping errors the reader found."""

    where: Where
    record: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


class ImportFailed(MapserviceError):
    """The input has errors; nothing was written."""

    status = 400
    title = "Invalid import data"

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        head = f"{len(problems)} problem(s)" + (f" in {total} record(s)" if total else "")
        super().__init__(head + "; nothing was written:\n" + "\n".join(
            f"  {p}" for p in problems[:50]) + ("\n  ..." if len(problems) > 50 else ""))
        self.problems, self.total = problems, total

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "errors": [p.as_dict() for p in self.problems[:1000]]}


@dataclass
class ImportOptions:
    source: str
    format: str | None = None
    mapping: Path | None = None
    crs: str | None = None
    dry_run: bool = False
    skip_invalid: bool = False
    archive_missing: bool = False
    licence: str | None = None
    attribution: str | None = None
    region_bbox: tuple[float, float, float, float] | None = None
    # ISO 3166-1 code of the service region's country: German postcodes have five digits, so a
    # four-digit one in a German deployment lost its leading zero in a spreadsheet
    region_country: str = "DE"
    # Rows may be placed by their street address alone (the online geocoder is switched on).
    address_geocoding: bool = False
    # A progress bar around the records as they are read and as they are written ...
    progress: Callable[[Iterable[Any], int | None, str], Iterable[Any]] | None = None
    # ... and a line for each later step of the write (archiving, duplicates, commit).
    status: Callable[[str], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    source: str
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    archived: int = 0
    invalid: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "read": self.read, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged, "archived": self.archived,
                "invalid": [p.as_dict() for p in self.invalid],
                "warnings": [p.as_dict() for p in self.warnings],
                "duplicates": self.duplicates, "conflicts": self.conflicts,
                "dry_run": self.dry_run}

    def summary(self) -> str:
        lines = [("DRY RUN - nothing was written. " if self.dry_run else "")
                 + f"{self.source}: read {self.read}, created {self.created}, updated "
                 f"{self.updated}, unchanged {self.unchanged}, archived {self.archived}, "
                 f"invalid {len(self.invalid)}, warnings {len(self.warnings)}, possible "
                 f"duplicates {len(self.duplicates)}, conflicts {len(self.conflicts)}"]
        for title, items in (("invalid (skipped)", self.invalid), ("warnings", self.warnings)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  {p}" for p in items[:100]]
                if len(items) > 100:
                    lines.append(f"  ... and {len(items) - 100} more")
        if self.conflicts:
            lines.append("conflicts (moderator edits kept):")
            lines += [f"  {c['source_id']}: {c['field']}: kept {c['kept']!r}, incoming "
                      f"{c['incoming']!r}" for c in self.conflicts[:100]]
        if self.duplicates:
            lines.append("possible duplicates (for moderation):")
            lines += [f"  {d['name']!r} ~ {d['other_name']!r} ({d['distance_m']:.0f} m, "
                      f"{d['other_source']})" for d in self.duplicates[:100]]
        return "\n".join(lines)


class Reader(Protocol):
    """A format: turns a file into mapped candidates."""

    name: str
    suffixes: tuple[str, ...]

    def sniff(self, path: Path) -> bool:
        """True when ``path`` looks like this format (used when --format is not given)."""

    def read(self, path: Path, options: ImportOptions) -> Iterator[Candidate]: ...


READERS: dict[str, Reader] = {}


def register(reader: Reader) -> Reader:
    READERS[reader.name] = reader
    return reader


def _load_readers() -> None:
    # Import the format modules so they register themselves; a module that is missing (not
    # written yet, or its optional dependency absent) simply offers no reader.
    import importlib

    for module in sorted(_BUILT_IN_READERS):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def detect_format(path: Path) -> str:
    """The format of ``path``: first by a reader's ``sniff``, in registration order."""
    _load_readers()
    for name, reader in READERS.items():
        if reader.sniff(path):
            return name
    raise MapserviceError(f"{path}: cannot tell the format; pass --format "
                          f"({'|'.join(READERS) or 'none available'})")


def reader_for(name: str) -> Reader:
    _load_readers()
    try:
        return READERS[name]
    except KeyError:
        raise MapserviceError(f"unknown format {name!r}; available: "
                              f"{', '.join(READERS)}") from None


@dataclass(frozen=True)
class Placement:
    """Where a geocoder put a record, and how (for the row's warning)."""

    lat: float
    lon: float
    how: str


class NotPlaced(Exception):
    """A geocoder's reason why it could not place a record: the record's error."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field_name, message


# What a geocoder returns: a (lat, lon) pair (placed at a postcode's or district's centroid), a
# Placement, or None (nothing to place it by). It raises NotPlaced with its reason, or
# GeocoderUnavailable when an online lookup failed.
Geocoder = Callable[[dict[str, Any]], "tuple[float, float] | Placement | None"]


def _check_source_options(options: ImportOptions) -> None:
    """The source's name, licence and attribution as the source table can hold them, before
    anything is read (PostgreSQL would refuse a longer value at the very end)."""
    from mapservice.models import Source

    columns = Source.__table__.c
    for option, value, column in (("--source", options.source, columns.name),
                                  ("--licence", options.licence, columns.licence),
                                  ("--attribution", options.attribution, None)):
        if value is None:
            continue
        if option == "--source" and not value.strip():
            raise MapserviceError("--source: the source needs a name")
        problem = _validate.text_problem(value, column)
        if problem is None and any(ch in value for ch in "\t\n\r"):
            problem = "contains a line break or tab"
        if problem:
            raise MapserviceError(f"{option}: {problem}")


def run_import(store: Store, path: Path, options: ImportOptions,
               geocoder: Geocoder | None = None) -> ImportReport:
    """Import ``path`` into ``store``; see the module docstring for the rules."""
    with _without_cyclic_gc():
        return _run_import(store, Path(path), options, geocoder)


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off for the run. An import holds every valid record
    (a dict of ~20 values) until the write; each full collection walks all of them, and with
    a million records that cost a third of the reading and validating (1M rows: 16 full
    collections, 15.6 of 50.6 s). An import makes next to no reference cycles: memory is
    freed by reference counting as before; the collector runs again after the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_import(store: Store, path: Path, options: ImportOptions,
                geocoder: Geocoder | None) -> ImportReport:
    if not path.exists():
        raise MapserviceError(f"{path}: no such file or directory")
    _check_source_options(options)
    fmt = options.format or detect_format(path)
    reader = reader_for(fmt)
    report = ImportReport(source=options.source, dry_run=options.dry_run)
    if geocoder is not None and options.address_geocoding:
        geocoder = _reusing_placed_addresses(store, options.source, geocoder)
    if _in_parallel(path, reader, geocoder):
        return _run_streamed(store, path, fmt, reader, options, geocoder, report)
    candidates = reader.read(path, options)
    if options.progress is not None:
        candidates = options.progress(candidates, None, f"reading {path.name}")
    found = Found()
    checked = list(check_records(candidates, geocoder, options.region_bbox, found))
    report.read, report.warnings = found.read, found.warnings
    if found.problems and not options.skip_invalid:
        raise ImportFailed(found.problems, report.read)
    report.invalid = found.problems
    valid = [rec for rec, _where in checked]
    # Stadtteil/Bezirk by point-in-polygon once boundaries are loaded, before the upsert
    # compares: a re-import then finds the same derived values and changes nothing.
    from .boundaries import derive as derive_districts

    report.warnings.extend(derive_districts(store, valid, [where for _rec, where in checked]))
    # Many records take the set-based path (COPY / one executemany + merge); same result.
    write = store.bulk_upsert if len(valid) > BULK_THRESHOLD else store.upsert
    records: Iterable[dict[str, Any]] = valid
    if options.progress is not None:
        records = options.progress(valid, len(valid), "writing")
    return _write(store, reader, options, write, records, found, report, str(path))


@dataclass
class Found:
    """What :func:`check_records` found besides the valid records."""

    read: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    in_file: set[str] = field(default_factory=set)  # every source id in the file, valid or not


def check_records(candidates: Iterable[Candidate], geocoder: Geocoder | None,
                  region: tuple[float, float, float, float] | None, found: Found
                  ) -> Iterator[tuple[dict[str, Any], Where]]:
    """Place (``geocoder``) and validate ``candidates``; yield each valid record, checked,
    with where it came from, as soon as it is; count, collect problems and warnings into
    ``found``. A source id that appears twice makes the second record invalid."""
    seen: dict[str, Where] = {}
    for cand in candidates:
        found.read += 1
        if cand.record.get("source_id"):
            found.in_file.add(str(cand.record["source_id"]))
        found.warnings.extend(cand.warnings)
        errors = list(cand.problems)
        rec = cand.record
        if not errors:
            unplaced: Problem | None = None
            if rec.get("lat") is None or rec.get("lon") is None:
                try:
                    point = geocoder(rec) if geocoder else None
                except NotPlaced as exc:
                    point, unplaced = None, Problem(cand.where.at(exc.field), exc.message)
                except GeocoderUnavailable as exc:
                    point = None
                    unplaced = Problem(cand.where.at("address"), "no coordinates, and the "
                                       f"address could not be geocoded: {exc.detail}")
                if isinstance(point, Placement):
                    rec["lat"], rec["lon"] = point.lat, point.lon
                    found.warnings.append(Problem(cand.where, f"no coordinates; {point.how}"))
                elif point is not None:
                    rec["lat"], rec["lon"] = point
                    found.warnings.append(Problem(cand.where, "no coordinates; placed at the "
                                                  "centroid of its postcode/district"))
            checked, errs, warns = _validate.record(rec, cand.where, region)
            if unplaced is not None:  # the reason replaces validate's "no coordinates"
                errs = [unplaced, *(e for e in errs if e.where.field != "lat/lon")]
            errors += errs
            found.warnings.extend(warns)
            sid = str(rec.get("source_id") or "")
            if sid and sid in seen and not errs:
                errors.append(Problem(cand.where.at("source_id"), f"source id {sid!r} also "
                                      f"appears at {seen[sid]}"))
            elif sid:
                seen[sid] = cand.where
            if not errors:
                yield checked, cand.where
        found.problems += errors


def _write(store: Store, reader: Reader, options: ImportOptions, write: Callable[..., Any],
           records: Iterable[dict[str, Any]], found: Found, report: ImportReport, file: str
           ) -> ImportReport:
    """The write of a run. One transaction for the whole run: the source, the records, the
    archived ones and the possible duplicates are written together or not at all; a dry run
    does exactly the same work (so its report is the real one, duplicates included) and rolls
    it back."""
    changed_by = f"import:{options.source}"
    with store.transaction(dry_run=options.dry_run) as conn:
        # A format may name the licence its data always carries (OSM: ODbL, which requires
        # the attribution on the map); an explicit --licence/--attribution wins.
        # A file may name them itself (mapservice's GeoJSON export: its "sources" member).
        named = reader.licence_of(Path(file)) if hasattr(reader, "licence_of") else None
        licence, attribution = named or (getattr(reader, "licence", None),
                                         getattr(reader, "attribution", None))
        store.register_source(
            options.source, licence=options.licence or licence,
            attribution=options.attribution or attribution, conn=conn)
        upserted = write(records, source=options.source, changed_by=changed_by, conn=conn)
        _refuse_own_export(store, options, found, file, conn)
        report.created, report.updated = upserted.created, upserted.updated
        report.unchanged, report.conflicts = upserted.unchanged, upserted.conflicts
        if options.archive_missing:
            if not (upserted.created or upserted.updated or upserted.unchanged):
                # --skip-invalid with a file of invalid records only: its records tell
                # nothing about what the source still offers.
                raise ImportFailed([Problem(Where(file, field="--archive-missing"), (
                    "the file has no valid record: every resource of the source "
                    f"{options.source!r} would be archived; to retire a whole source, run "
                    f"'mapservice archive-source {options.source}'")), *found.problems],
                    found.read)
            # A record that is in the file but invalid today is not "gone from the source":
            # keep it. (Streamed: ``found`` is complete once ``records`` is consumed.)
            _status(options, "archiving the records gone from the source")
            report.archived = store.archive_missing(options.source, found.in_file,
                                                    changed_by=changed_by, conn=conn)
        _status(options, "looking for possible duplicates")
        report.duplicates = store.flag_duplicates(options.source, conn=conn)
        _status(options, "rolling back (dry run)" if options.dry_run else "committing")
    return report


#: A GeoJSON object's type member: how the JSON readers tell GeoJSON (a place or an
#: organisation named "Feature" does not make a file GeoJSON).
GEOJSON_TYPE = re.compile(r'"type"\s*:\s*"Feature(?:Collection)?"')


#: How many of a file's source ids are compared with the stored public ids: an export of this
#: database carries the public id of every resource, so a few hundred tell.
_OWN_EXPORT_SAMPLE = 500


def _refuse_own_export(store: Store, options: ImportOptions, found: Found, file: str,
                       conn: Any) -> None:
    """Refuse a file whose source ids are public ids of resources stored here: an export of
    this database (``mapservice export``; its ``id`` is the public id and becomes the source
    id). Imported again, each of its resources would be listed twice (and with
    --archive-missing the originals archived). Public ids are random UUIDs: another source's
    id is never one by chance."""
    sample = list(islice(found.in_file, _OWN_EXPORT_SAMPLE))
    hits = [r for r in store.with_uids(sample, conn=conn)
            if (r["source"], r["source_id"]) != (options.source, r["uid"])]
    if hits:
        first = hits[0]
        raise ImportFailed([Problem(Where(file, field="id"), (
            f"the ids are public ids of resources stored here ({first['uid']} is "
            f"{first['name']!r} of the source {first['source']!r}; {len(hits)} of "
            f"{len(sample)} ids compared): the file is an export of this database, and "
            "importing it would list each of its resources twice. Import it into another "
            "database, or re-import the original files of the sources"))], found.read)


# ---- a large file: read and validated in a second process while this one writes ----------
#: From this size on, a file is read and validated in a second process (a CPU of its own)
#: while this one writes what it has validated so far (~50,000 CSV rows; starting the process
#: costs about a second). The outcome is the same as on the serial path: one transaction,
#: and an invalid record (without --skip-invalid) raises ImportFailed after the whole file
#: was read, which rolls back what was written meanwhile.
PARALLEL_MIN_BYTES = 16 << 20
_BATCH = 2_000  # records per message between the processes


def _in_parallel(path: Path, reader: Reader, geocoder: Geocoder | None) -> bool:
    # Only the offline gazetteer (a module function, the same in the other process): the
    # online geocoder keeps state (failures, stored points) and reads the store. Only the
    # built-in formats: the other process knows no reader registered at run time.
    return (geocoder is None or geocoder is gazetteer_geocoder) \
        and type(reader).__module__ in _BUILT_IN_READERS and path.is_file() \
        and path.stat().st_size >= PARALLEL_MIN_BYTES


_BUILT_IN_READERS = {f"importers.{name}" for name in ("csv_reader", "vector", "osm", "hsds")}


def _run_streamed(store: Store, path: Path, fmt: str, reader: Reader, options: ImportOptions,
                  geocoder: Geocoder | None, report: ImportReport) -> ImportReport:
    import os
    import pickle
    import subprocess
    import sys

    from .boundaries import derive as derive_districts
    from .boundaries import district_levels

    # A process of its own (``python -m importers.worker``), not a fork: it shares no
    # database connection, lock or thread with this one. It gets the options without the
    # progress and status callbacks, and sends pickled messages back on its stdout. ``-P``:
    # the modules come from this process's path, never from the current directory.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           "MAPSERVICE_IMPORT_PARENT": str(os.getpid())}
    worker = subprocess.Popen([sys.executable, "-P", "-m", "importers.worker"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    found = Found()
    derived: list[Problem] = []
    done = False

    def batches() -> Iterator[list[tuple[dict[str, Any], Where]]]:
        nonlocal done
        while True:
            try:
                message = pickle.load(worker.stdout)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - EOF, or a message cut off by a kill
                worker.kill()
                raise MapserviceError(f"{path}: the reading process ended unexpectedly "
                                      f"(exit code {worker.wait()})") from None
            kind = message[0]
            if kind == "records":
                derived.extend(derive_districts(store, [r for r, _ in message[1]],
                                                [w for _, w in message[1]], levels=levels))
                yield message[1]
                continue
            done = True
            if kind == "done":
                found.read, found.problems, found.warnings, found.in_file = message[1:]
                return
            if kind == "failed":
                raise ImportFailed(message[1], message[2])
            if kind == "error":
                error = MapserviceError(message[1])
                error.status, error.title = message[2], message[3]
                raise error
            raise RuntimeError(f"reading {path} failed in the reading process:\n{message[1]}")

    def valid() -> Iterator[dict[str, Any]]:
        for batch in batches():
            for rec, _where in batch:
                yield rec
        if found.problems and not options.skip_invalid:
            # Ends the load and rolls back what was written. Its text is all PostgreSQL
            # logs of an aborted COPY: the problems (with the records' values) stay here.
            raise _Invalid("the file has invalid records")

    try:
        try:
            task = pickle.dumps((path, fmt, replace(options, progress=None, status=None),
                                 geocoder))
            worker.stdin.write(task)
        except BrokenPipeError:  # it did not start; reading its messages will say so
            pass
        finally:
            try:
                worker.stdin.close()
            except BrokenPipeError:
                pass
        levels = district_levels(store)  # read before the transaction holds the connection
        records: Iterable[dict[str, Any]] = valid()
        if options.progress is not None:
            records = options.progress(records, None, f"reading and writing {path.name}")
        # (a file this large is the set-based path's; it gives the row path's result)
        _write(store, reader, options, store.bulk_upsert, records, found, report, str(path))
    except _Invalid:
        raise ImportFailed(found.problems, found.read) from None
    finally:
        worker.stdout.close()
        if not done:  # the write failed or was interrupted: the reading is not needed
            worker.kill()
        worker.wait()
    report.read, report.invalid = found.read, found.problems
    report.warnings = found.warnings + derived
    return report


class _Invalid(Exception):
    """The end of a streamed load whose file has invalid records."""


def produce(source: Any, sink: Any) -> None:
    """The reading process (:mod:`importers.worker`): read ``(path, format, options,
    geocoder)`` from ``source``; read, place and validate the file; write pickled messages to
    ``sink``: the valid records in batches, then ("done", read, problems, warnings, source
    ids), or what went wrong."""
    import pickle
    import traceback

    def send(message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)  # whole, or not at all
        sink.write(data)
        sink.flush()

    try:
        path, fmt, options, geocoder = pickle.load(source)
        found = Found()
        batch: list[tuple[dict[str, Any], Where]] = []
        with _without_cyclic_gc():
            for item in check_records(reader_for(fmt).read(path, options), geocoder,
                                      options.region_bbox, found):
                if found.problems and not options.skip_invalid:
                    continue  # the run will fail: nothing more to write, only to report
                batch.append(item)
                if len(batch) == _BATCH:
                    send(("records", batch))
                    batch = []
            if batch:
                send(("records", batch))
            send(("done", found.read, found.problems, found.warnings, found.in_file))
    except BrokenPipeError:  # the writing process stopped listening (its write failed)
        pass
    except ImportFailed as exc:
        send(("failed", exc.problems, exc.total))
    except MapserviceError as exc:
        send(("error", exc.detail, exc.status, exc.title))
    except Exception:  # noqa: BLE001 - handed to the other process, which raises it
        send(("crash", traceback.format_exc()))


def _status(options: ImportOptions, message: str) -> None:
    if options.status is not None:
        options.status(message)


def gazetteer_geocoder(rec: dict[str, Any]) -> tuple[float, float] | None:
    """Place a record without coordinates at its postcode's or district's centroid, from the
    offline gazetteer (never the network)."""
    from mapservice import geocode

    for key in ("postcode", "stadtteil", "bezirk"):
        value = rec.get(key)
        if value:
            point = geocode.centroid(str(value))
            if point is not None:
                return point
    return None


def record_geocoder(online: OnlineGeocoder | None, city: str | None = None) -> Geocoder:
    """The geocoder of an import run: the gazetteer first; when it cannot place a record and
    ``online`` is given (the settings switched the online geocoder on), the record's street
    address (``address``, then ``postcode`` and ``city``, the service's city unless the address
    names one after a comma) goes to the online geocoder, and its best match in the service
    region places the record. No match: the record is invalid, naming the query.

    Never sent: a record without a street address, and a confidential location (a shelter's
    address must not leave the server; the record stays invalid until the file gives its
    point). After three failed lookups in a row the run stops asking and reports the remaining
    records unplaced with the last failure, instead of waiting out a timeout per row.
    """
    if online is None:
        return gazetteer_geocoder
    failures: list[GeocoderUnavailable] = []

    def place(rec: dict[str, Any]) -> tuple[float, float] | Placement | None:
        point = gazetteer_geocoder(rec)
        if point is not None:
            return point
        street = str(rec.get("address") or "").strip()
        if not street:
            return None
        if rec.get("location_confidential"):
            raise NotPlaced("lat/lon", "no coordinates, and a confidential location's address "
                            "is not sent to the online geocoder: give its coordinates")
        if len(failures) >= _MAX_ONLINE_FAILURES:
            raise GeocoderUnavailable(f"the online geocoder is not asked again in this run "
                                      f"after {len(failures)} failures in a row (last: "
                                      f"{failures[-1].detail})")
        town = " ".join(filter(None, (str(rec.get("postcode") or "").strip(),
                                      "" if "," in street else (city or "").strip())))
        query = ", ".join(filter(None, (street, town)))
        try:
            found = online.geocode(query)
        except GeocoderUnavailable as exc:
            failures.append(exc)
            raise
        failures.clear()
        if not found:
            raise NotPlaced("address", f"no coordinates, and neither the gazetteer nor the "
                            f"online geocoder found {query!r} in the service region")
        best = found[0]
        return Placement(best["lat"], best["lon"], f"placed by the online geocoder at "
                         f"{best['name']!r} (asked for {query!r})")

    return place


_MAX_ONLINE_FAILURES = 3


def _address_key(address: Any, postcode: Any) -> tuple[str, str]:
    return (" ".join(str(address or "").split()).casefold(),
            " ".join(str(postcode or "").split()).casefold())


def _reusing_placed_addresses(store: Store, source: str, geocoder: Geocoder) -> Geocoder:
    """``geocoder``, but a record of ``source`` that is stored already with the same street
    address and postcode keeps the point it has (an earlier run placed it: by the online
    geocoder, or from coordinates the file had then) and nothing is asked; so does one whose
    address a moderator set (the import will not change that address). A re-import then
    sends no address again and changes nothing, even if the online geocoder's data moved
    meanwhile. The stored points are read once, when the first record needs one."""
    placed: dict[str, tuple[str, str | None, float, float, bool]] | None = None

    def place(rec: dict[str, Any]) -> tuple[float, float] | Placement | None:
        nonlocal placed
        sid = str(rec.get("source_id") or "")
        if sid and str(rec.get("address") or "").strip() and \
                not rec.get("location_confidential"):
            if placed is None:
                placed = store.placed_addresses(source)
            known = placed.get(sid)
            if known is not None and known[4]:
                # A moderator set the address: the import keeps it (a conflict), and the
                # point belongs to that address, not to the file's.
                return Placement(known[2], known[3], "kept its point: a moderator set its "
                                 "address (the online geocoder was not asked)")
            if known is not None and _address_key(known[0], known[1]) == _address_key(
                    rec.get("address"), rec.get("postcode")):
                return Placement(known[2], known[3], "kept the point of its earlier import "
                                 "(same address; the online geocoder was not asked)")
        return geocoder(rec)

    return place

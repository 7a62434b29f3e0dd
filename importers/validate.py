"""Validation of one mapped record before anything is written.

Returns the cleaned record (normalised URL, email, phone), the errors and the warnings, each
naming the field. Errors make a record invalid; warnings are reported and the record is kept.
"""
from __future__ import annotations

import math
import re
from collections import abc
from functools import lru_cache
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from mapservice.models import COSTS, STATUSES, WHEELCHAIR, Organization, Resource
from mapservice.urls import to_iri
from mapservice.taxonomy import default as taxonomy

from . import pipeline


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, for a message: "a number", "a string", "null", ..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bool):
        return "true/false"
    return {int: "a number", float: "a number", str: "a string", list: "a list",
            type(None): "null"}.get(type(value), f"a {type(value).__name__}")


@lru_cache(maxsize=4096)
def _hours_error(value: str) -> str | None:
    import opening_hours

    try:
        opening_hours.OpeningHours(value)
    except Exception as exc:  # noqa: BLE001 - the parser raises its own error type
        return str(exc).splitlines()[0][:200]
    return None


def normalise_url(value: str) -> str:
    """``example.org/x`` -> ``https://example.org/x``; only http(s) URLs with a host."""
    value = value.strip()
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or "." not in parts.hostname or " " in value:
        raise ValueError(f"{value!r} is not a web address (http/https)")
    # one form whatever the file wrote: "xn--" hosts and escaped letters as people write
    # them (mapservice.urls; a format that needs a URI gets one at export)
    return to_iri(urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/",
                              parts.query, parts.fragment)))


def _phone(value: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(value, "DE")
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{value!r} is not a possible phone number")
    return number


def normalise_phone(value: str) -> str:
    return phonenumbers.format_number(_phone(value),
                                      phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_forms(value: str) -> list[str]:
    """The digits of the phone number ``value`` as people write it (040…, +49 40…, 0049 40…,
    +49 (0)40…); [] when ``value`` is not a phone number."""
    try:
        number = _phone(value)
    except ValueError:
        return []
    national, country = str(number.national_number), str(number.country_code)
    return [f"0{national}", f"{country}{national}", f"00{country}{national}",
            f"{country}0{national}"]


# The local part of an everyday address (ASCII dot-atom, RFC 5322): email_validator only checks
# its syntax and length and keeps it as it is, so for such an address only the domain needs the
# library (~30 µs a call), once per domain.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


try:  # RFC 2142 role mailboxes (info@, postmaster@): the library lowercases them
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES as _ROLES
except ImportError:  # another layout: every address goes through the library
    _ROLES = None


@lru_cache(maxsize=4096)
def _email_domain(domain: str) -> str:
    return validate_email("a@" + domain, check_deliverability=False).normalized[2:]


def normalise_email(value: str) -> str:
    text = value.strip()
    local, _, domain = text.rpartition("@")
    # (not for a punycode domain: the library measures the address with it in Unicode)
    if _ROLES is not None and local and len(local) <= 64 and len(text) <= 254 \
            and text.isascii() and "xn--" not in domain.lower() and _DOT_ATOM.fullmatch(local):
        if local.lower() in _ROLES:
            local = local.lower()
        try:
            return f"{local}@{_email_domain(domain)}"
        except EmailNotValidError:
            pass  # the whole address through the library, for its own words on the problem
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an email address ({exc})") from None


_CONVERTERS = {"website": normalise_url, "email": normalise_email, "phone": normalise_phone}


@lru_cache(maxsize=65_536)  # an organisation's phone and website recur on its listings
def _contact(field_: str, value: str) -> tuple[str | None, str | None]:
    """(normalised value, None) or (None, the error) for a website, email or phone."""
    try:
        return _CONVERTERS[field_](value), None
    except ValueError as exc:
        return None, str(exc)


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.strip().replace(",", ".") if value.count(",") == 1 and "." not in value \
            else value.strip()
        if "_" in value:  # Python reads "5_3.55" as 53.55
            raise ValueError(f"could not convert string to float: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


# Control characters other than tab, line feed and carriage return: never text a person wrote
# (a broken export, a binary file read as text). PostgreSQL refuses NUL in any text column.
# C1 (U+0080..U+009F) too: in Unicode text they are mojibake (UTF-8 decoded as Latin-1).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def text_problem(value: str, column: Any = None) -> str | None:
    """What is wrong with text ``value`` for a database ``column`` (a control character, or
    longer than the column's length), else None. Shared by every writer of imported text:
    records, the source's options, district boundaries."""
    bad = _CONTROL.search(value)
    if bad:
        return (f"contains the control character U+{ord(bad.group()):04X} at position "
                f"{bad.start() + 1}")
    limit = getattr(getattr(column, "type", None), "length", None)
    if limit is not None and len(value) > limit:
        return f"longer than {limit} characters ({len(value)})"
    return None


def _control_characters(rec: Mapping[str, Any], prefix: str = ""
                        ) -> Iterator[tuple[str, str]]:
    """(field, problem) for each text value of ``rec`` (nested: ``translations.ar.name``,
    ``organization.name``) that holds a control character."""
    for key, value in rec.items():
        kind = type(value)  # every field of every record: the common types the short way
        if kind is str or isinstance(value, str):
            if _CONTROL.search(value):
                yield f"{prefix}{key}", text_problem(value)  # type: ignore[misc]
        elif value is None or kind is float or kind is int or kind is bool:
            continue
        elif kind is dict:
            yield from _control_characters(value, f"{prefix}{key}.")
        elif kind is list or kind is tuple or isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if type(item) is str:
                    if _CONTROL.search(item):
                        yield f"{prefix}{key}[{i}]", text_problem(item)  # type: ignore[misc]
                elif item is not None:
                    yield from _control_characters({f"{key}[{i}]": item}, prefix)
        elif isinstance(value, abc.Mapping):
            yield from _control_characters(value, f"{prefix}{key}.")


def _lengths(table: Any, fields: tuple[str, ...]) -> dict[str, int]:
    """The longest value each of ``fields`` may hold: its column's length."""
    return {name: table.c[name].type.length for name in fields}


# PostgreSQL refuses a longer value (SQLite would store it): checked here, named, not a crash.
_RESOURCE_LENGTHS = _lengths(Resource.__table__, (
    "source_id", "address", "postcode", "stadtteil", "bezirk", "phone", "email", "website"))
_ORGANIZATION_LENGTHS = _lengths(Organization.__table__, (
    "name", "source_id", "phone", "email", "website"))


def _too_long(rec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name, limit in _RESOURCE_LENGTHS.items():
        value = rec.get(name)
        if isinstance(value, str) and len(value) > limit:
            yield name, f"longer than {limit} characters ({len(value)})"
    org = rec.get("organization")
    if type(org) is dict or isinstance(org, abc.Mapping):
        limits = dict(_ORGANIZATION_LENGTHS)
        if not org.get("source_id"):  # the name is also the organisation's key
            limits["name"] = min(limits["name"], limits["source_id"])
        for name, limit in limits.items():
            value = org.get(name)
            if isinstance(value, str) and len(value) > limit:
                yield f"organization.{name}", f"longer than {limit} characters ({len(value)})"


def record(rec: dict[str, Any], where: pipeline.Where,
           region: tuple[float, float, float, float] | None
           ) -> tuple[dict[str, Any], list[pipeline.Problem], list[pipeline.Problem]]:
    """Check and clean one record."""
    Problem = pipeline.Problem
    errors: list[Problem] = []
    warnings: list[Problem] = []
    out = dict(rec)
    tax = taxonomy()
    for field_, problem in _control_characters(out):
        errors.append(Problem(where.at(field_), problem))

    if not str(out.get("source_id") or "").strip():
        errors.append(Problem(where.at("source_id"), "missing source id"))
    name = str(out.get("name") or "").strip()
    if not name:
        errors.append(Problem(where.at("name"), "missing name"))
    elif len(name) > 300:
        errors.append(Problem(where.at("name"), f"name longer than 300 characters ({len(name)})"))
    out["name"] = name

    try:
        lat, lon = _number(out.get("lat")), _number(out.get("lon"))
    except (TypeError, ValueError):
        errors.append(Problem(where.at("lat/lon"), f"coordinates {out.get('lat')!r}, "
                              f"{out.get('lon')!r} are not numbers"))
        lat = lon = None
    else:
        if lat is None or lon is None:
            keys = [f"{key} {str(out[key])[:40]!r}" for key in ("postcode", "stadtteil", "bezirk")
                    if out.get(key)]
            errors.append(Problem(where.at("lat/lon"), (
                f"no coordinates, and the gazetteer does not know its {' or '.join(keys)}"
                if keys else "no coordinates and no postcode or district to place it by")))
        elif not -90 <= lat <= 90:
            errors.append(Problem(where.at("lat"), f"latitude {lat} is outside -90..90"))
        elif not -180 <= lon <= 180:
            errors.append(Problem(where.at("lon"), f"longitude {lon} is outside -180..180"))
        elif lat == 0 and lon == 0:  # what readers make of NaN, 1e400 or an empty position
            errors.append(Problem(where.at("lat/lon"), "coordinates (0, 0) (\"Null Island\"): "
                                  "a missing or broken position"))
        elif region and not (region[0] <= lon <= region[2] and region[1] <= lat <= region[3]):
            warnings.append(Problem(where.at("lat/lon"), f"point ({lat}, {lon}) lies outside "
                                    "the service region"))
    out["lat"], out["lon"] = lat, lon

    for name_ in ("website", "email", "phone"):
        value = out.get(name_)
        if value is None or str(value).strip() == "":
            out[name_] = None
            continue
        normalised, error = _contact(name_, str(value))
        if error is None:
            out[name_] = normalised
        else:
            errors.append(Problem(where.at(name_), error))

    hours = out.get("opening_hours")
    if hours is not None and str(hours).strip():
        out["opening_hours"] = str(hours).strip()
        problem = _hours_error(out["opening_hours"])
        if problem:
            errors.append(Problem(where.at("opening_hours"),
                                  f"{out['opening_hours']!r} is not valid opening_hours "
                                  f"syntax: {problem}"))
    else:
        out["opening_hours"] = None

    for field_, allowed in (("categories", tax.categories), ("audiences", tax.audiences),
                            ("languages", tax.languages)):
        values = list(dict.fromkeys(out.get(field_) or []))
        unknown = [v for v in values if v not in allowed]
        if unknown:
            errors.append(Problem(where.at(field_), f"unknown code(s) {', '.join(unknown)}"))
        out[field_] = values
    for field_, allowed, default in (("cost", COSTS, "unknown"),
                                     ("wheelchair", WHEELCHAIR, "unknown"),
                                     ("status", STATUSES, "published")):
        value = out.get(field_) or default
        if value not in allowed:
            errors.append(Problem(where.at(field_), f"{value!r} is not one of "
                                  f"{', '.join(allowed)}"))
        out[field_] = value
    for field_, problem in _too_long(out):
        errors.append(Problem(where.at(field_), problem))
    if not out["categories"] and name:
        warnings.append(Problem(where.at("categories"), "no category: the resource is only "
                                "found without a category filter"))
    return out, errors, warnings

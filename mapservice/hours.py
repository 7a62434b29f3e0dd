"""Opening hours in OpenStreetMap syntax (``Mo-Fr 09:00-17:00; PH off``): parse, validate and
ask "is it open at this moment?".

Resources keep their ``opening_hours`` string verbatim; this module evaluates it with
opening-hours-py. Every string is evaluated in Hamburg: local time Europe/Berlin, Hamburg's
public holidays (``PH``: the German nationwide calendar, and Reformation Day, see
``REGIONAL_HOLIDAYS``) and Hamburg's sunrise/sunset. Parsing is the expensive part (~30 µs per
string, ~3-6 µs per evaluation), so parsed expressions are cached per string.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from opening_hours import OpeningHours, ParserError

TIMEZONE = ZoneInfo("Europe/Berlin")
COUNTRY = "DE"
COORDS = (53.5511, 9.9937)  # Hamburg: sunrise/sunset for "sunrise-sunset" expressions
CACHE_SIZE = 8192
#: Hamburg's public holidays that the nationwide calendar lacks: (month, day) -> (first year,
#: a country whose opening-hours-py calendar has that day every year). opening-hours-py knows
#: countries, not regions; an instant on such a day is evaluated with that country's calendar,
#: so that the expression's ``PH`` rules apply to it, and every other instant with Germany's.
#: Reformation Day (Reformationstag), 31 October, is a public holiday in Hamburg since 2018
#: (2017: in all of Germany, and in the German calendar); Slovenia keeps it every year.
REGIONAL_HOLIDAYS = {(10, 31): (2018, "SI")}


class InvalidOpeningHours(ValueError):
    """A string that is not a valid OSM ``opening_hours`` expression."""


def _compile(value: str, country: str = COUNTRY) -> OpeningHours:
    # auto_country=False: the country is given, and looking it up from the coordinates would
    # make every parse ~30x slower.
    return OpeningHours(value, timezone=TIMEZONE, country=country, coords=COORDS,
                        auto_country=False)


@lru_cache(maxsize=CACHE_SIZE)
def _cached(value: str, country: str = COUNTRY) -> OpeningHours | None:
    try:
        return _compile(value, country)
    except (ParserError, SyntaxError, ValueError):
        return None


def _calendar(when: dt.datetime) -> str:
    """The country whose holiday calendar gives Hamburg's public holidays on ``when``'s day
    (a Berlin time)."""
    regional = REGIONAL_HOLIDAYS.get((when.month, when.day))
    return regional[1] if regional is not None and when.year >= regional[0] else COUNTRY


def parse(value: str) -> OpeningHours:
    """The parsed expression of ``value``; :class:`InvalidOpeningHours` when it is not valid."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidOpeningHours("opening hours are empty")
    parsed = _cached(value.strip())
    if parsed is None:
        try:
            _compile(value.strip())
        except (ParserError, SyntaxError, ValueError) as exc:
            raise InvalidOpeningHours(f"not a valid opening_hours expression: {value!r} "
                                      f"({str(exc).splitlines()[0]})") from None
        raise InvalidOpeningHours(f"not a valid opening_hours expression: {value!r}")
    return parsed


def is_valid(value: str) -> bool:
    return isinstance(value, str) and bool(value.strip()) and _cached(value.strip()) is not None


def local(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware Europe/Berlin time; a naive ``when`` is read as Berlin time.

    A wall time that does not exist (the hour skipped when summer time starts) moves forward
    by that hour; one that exists twice (when it ends) is the first, summer-time one. The round
    trip through UTC makes every result a real Berlin time (opening_hours refuses others).
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=TIMEZONE)
    return when.astimezone(dt.timezone.utc).astimezone(TIMEZONE)


def resource_is_open(opening_hours: str | None, when: dt.datetime) -> bool:
    """Whether a resource with this ``opening_hours`` string is open at ``when``.

    No opening hours, or a string that does not parse, is *not* open: we only say "open" when
    the listing says so.
    """
    if not opening_hours or not opening_hours.strip():
        return False
    when = local(when)
    parsed = _cached(opening_hours.strip(), _calendar(when))
    return parsed is not None and bool(parsed.is_open(when))


__all__ = ["REGIONAL_HOLIDAYS", "TIMEZONE", "InvalidOpeningHours", "is_valid", "local", "parse",
           "resource_is_open"]

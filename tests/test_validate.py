"""Per-value checks of importers/validate.py that have a fast path beside the library they
stand in for: the fast path must answer exactly as the library does."""
from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from importers import validate
from importers.validate import normalise_email, normalise_url

ADDRESSES = [
    "a@example.org", "Info@Example.ORG", "POSTMASTER@example.org", "Kontakt@Example.org",
    " x.y+z@sub.example.de ", "a..b@example.org", ".a@example.org", "a.@example.org",
    "a@localhost", "a@example", "a@test", "a@foo.test", "a@foo.local", "a@foo.invalid",
    "a@foo.onion", "a@foo.arpa", "a@home.arpa", "a@-foo.de", "a@foo-.de", "a@foo..de", "a@123",
    "a@1.2.3.4", "a@[1.2.3.4]", "a@foo.123", "a@" + "x" * 64 + ".de", "a@" + "x" * 63 + ".de",
    "x" * 65 + "@ex.de", "x" * 64 + "@ex.de", "a@" + ".".join(["abcdefghij"] * 25) + ".de",
    "b@" + ".".join(["abcdefghij"] * 22) + ".de", '"a b"@example.org', "a@b@example.org",
    "ä@example.org", "a@bücher.de", "a@xn--bcher-kva.de", "a@example.org.", "a@_dmarc.example.org",
    "a@ex_ample.org", "a@example.c", "a@mail.example.museum", "a b@example.org",
    "a@exa mple.org", "@example.org", "a@", "a", "Name <a@example.org>", "a@EXAMPLE.ORG",
    "a@ex--ample.org", "a@xn--ample.org", "a!#$%&'*+/=?^_`{|}~-@example.org", "a(b)@example.org",
    # too long only once the punycode labels are Unicode again (found by a review)
    "kontakt.beratungsstelle.nord@" + ".".join(["xn--fiqaaaaaaaaaaaaaaaaaa"] * 4) + ".de",
]


def _library(value: str) -> str | None:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _ours(value: str) -> str | None:
    try:
        return normalise_email(value)
    except ValueError:
        return None


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_fast_path_answers_as_the_library(address):
    assert _ours(address) == _library(address)


def test_email_fast_path_is_taken():
    # (if email_validator moves its list of role mailboxes, every address takes the slow path:
    # still correct, but then this test says so)
    assert validate._ROLES is not None
    validate._email_domain.cache_clear()
    normalise_email("kontakt@traeger.example.org")
    assert validate._email_domain.cache_info().misses == 1


def test_email_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"'a\.\.b@example\.org' is not an email address"):
        normalise_email("a..b@example.org")


@pytest.mark.parametrize("rec, found", [
    ({"name": "Treff\x00"}, [("name", "U+0000", 6)]),
    ({"categories": ["ok", "b\x1b"]}, [("categories[1]", "U+001B", 2)]),
    ({"translations": {"ar": {"name": "\x7f"}}}, [("translations.ar.name", "U+007F", 1)]),
    ({"organization": {"name": "T", "phones": [{"n": "\x01"}]}},
     [("organization.phones[0].n", "U+0001", 1)]),
    ({"address": "Stra\u00c3\u009fe 1"}, [("address", "U+009F", 6)]),  # "Straße", mojibake
    ({"name": "Tab\tand\nline\r", "lat": 53.5, "x": None, "y": True, "z": 3}, []),
    ({"name": "\u00a0Caf\u00e9 \u0645\u0631\u0643\u0632 \u200f"}, []),
])
def test_control_characters_are_found_at_any_depth(rec, found):
    assert list(validate._control_characters(rec)) == [
        (field, f"contains the control character {code} at position {pos}")
        for field, code, pos in found]


@pytest.mark.parametrize("iri, uri", [
    ("https://bücherhalle.de/über-uns?q=ä#teil", "https://xn--bcherhalle-9db.de/%C3%BCber-uns?q=%C3%A4#teil"),
    ("https://user@bücher.de:8080/x", "https://user@xn--bcher-kva.de:8080/x"),
    ("https://example.org/a%20b/über", "https://example.org/a%20b/%C3%BCber"),
    ("https://example.org/plain", "https://example.org/plain"),
])
def test_websites_convert_between_iri_and_uri(iri, uri):
    from mapservice.urls import to_iri, to_uri

    assert to_uri(iri) == uri and to_iri(uri) == iri
    assert normalise_url(uri) == normalise_url(iri) == iri


@pytest.mark.parametrize("kept", ["https://example.org/%FF%C3", "https://example.org/%E2%80%8F",
                                  "https://example.org/a%2Fb", "https://xn--ample.org/"])
def test_escapes_that_are_no_letters_stay(kept):
    from mapservice.urls import to_iri

    assert to_iri(kept) == kept

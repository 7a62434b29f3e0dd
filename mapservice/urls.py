"""Web addresses in two forms: stored and shown as IRIs (``https://bücherhalle.de/über-uns``,
as people write them), handed to formats that require a URI (HSDS' ``format: uri``) as URIs
(``https://xn--bcherhalle-xob.de/%C3%BCber-uns``). The two convert into each other, so an
address survives every export and re-import unchanged."""
from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

import idna

_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _with_host(url: str, convert) -> str:
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return url
    try:
        new = convert(host)
    except (idna.IDNAError, UnicodeError, ValueError):
        return url
    netloc = parts.netloc
    at = netloc.rfind("@") + 1
    netloc = netloc[:at] + netloc[at:].lower().replace(host, new, 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def to_iri(url: str) -> str:
    """``url`` with a punycode host (``xn--``) in Unicode and percent-escaped UTF-8 letters
    written as themselves; escapes of ASCII characters (``%20``, ``%2F``), of invisible or
    control characters and of bytes that are no UTF-8 stay as they are."""
    if "xn--" in url.lower():
        url = _with_host(url, lambda host: idna.decode(host))

    def letters(match: re.Match[str]) -> str:
        try:
            text = unquote_to_bytes(match.group()).decode("utf-8")
        except UnicodeDecodeError:
            return match.group()
        return "".join(ch if ord(ch) > 127 and ch.isprintable() else quote(ch, safe="")
                       for ch in text)

    return _ESCAPES.sub(letters, url) if "%" in url else url


def to_uri(url: str) -> str:
    """``url`` in ASCII: the host IDNA-encoded (UTS 46), other non-ASCII characters
    percent-escaped as UTF-8."""
    if url.isascii():
        return url
    url = _with_host(url, lambda host: host if host.isascii()
                     else idna.encode(host, uts46=True).decode("ascii"))
    return _NON_ASCII.sub(lambda m: quote(m.group(), safe=""), url)

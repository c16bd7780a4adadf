"""Store URLs (``--store``): which backend, where, and how to print one without its password.

``sqlite:///path`` (a file; ``sqlite:////abs`` or ``sqlite:///rel``) or
``postgresql://user:password@host:port/db?options`` (``postgres://`` too; libpq's
URI, https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = ("sqlite", "postgresql", "postgres")

# Query options of a libpq URI that carry a secret.
_SECRET_OPTIONS = frozenset({"password", "sslpassword"})


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed store URL: ``backend`` is "sqlite" (with ``path``) or "postgresql" (``url``)."""

    backend: str
    url: str
    path: Path | None = None

    def __repr__(self) -> str:
        return f"StoreURL({self.backend!r}, {redact(self.url)!r})"

    def __str__(self) -> str:
        return redact(self.url)


class SecretURL(str):
    """A URL whose repr hides its password (``str()`` is the URL itself, for connecting).

    >>> SecretURL("postgresql://u:pw@db/e")
    'postgresql://u:***@db/e'
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact(self))


def parse(url: str) -> StoreURL:
    """Parses a store URL; ValueError (naming what is wrong, the password hidden) if bad.

    >>> parse("sqlite:////data/evalstream.db").path
    PosixPath('/data/evalstream.db')
    >>> parse("postgres://u:secret@db/evalstream")
    StoreURL('postgresql', 'postgres://u:***@db/evalstream')
    >>> parse("mysql://db/x")
    Traceback (most recent call last):
    ...
    ValueError: 'mysql://db/x' is not a store URL: expected sqlite:///PATH or postgresql://...
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(
            f"{redact(url)!r} is not a store URL: expected sqlite:///PATH or postgresql://..."
        )
    if scheme.lower() == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"{url!r} names no file: write sqlite:///relative/path or sqlite:////absolute/path"
            )
        return StoreURL("sqlite", url, Path(rest[1:]))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{redact(url)!r} is not a valid PostgreSQL URL: {exc}") from None
    return StoreURL("postgresql", url)


def redact(url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ``***``.

    The rest is kept as written.

    >>> redact("postgresql://evalstream:s3cr%40t@db:5432/evalstream?sslmode=require")
    'postgresql://evalstream:***@db:5432/evalstream?sslmode=require'
    >>> redact("postgresql:///evalstream?host=/run/pg&password=s3cret")
    'postgresql:///evalstream?host=/run/pg&password=***'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at >= 0:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        if ":" in userinfo:
            authority = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        options = []
        for option in query.split("&"):
            key, eq, _value = option.partition("=")
            options.append(f"{key}=***" if eq and key in _SECRET_OPTIONS else option)
        tail = f"{path}?{'&'.join(options)}{hash_}{fragment}"
    return f"{scheme}://{authority}{tail}"


def password(url: str) -> str:
    """The password a URL carries (in its authority or its query), or "".

    >>> password("postgresql://u:s3cr%40t@db/e"), password("postgresql:///e?password=x")
    ('s3cr@t', 'x')
    """
    try:
        parts = urlsplit(url)
        if parts.password:
            return unquote(parts.password)
    except ValueError:
        return ""
    for key, value in parse_qsl(parts.query):
        if key == "password":
            return value
    return ""

"""Which webhook URLs are accepted: well-formed http(s), and for per-run webhooks an allowlist.

Per-run webhooks let any caller with the write role make the server POST to a URL of
its choice, from inside the server's network (cloud metadata at 169.254.169.254, admin
ports on loopback): server-side request forgery. So a per-run webhook is accepted only
when its host is on the operator's ``--alert-run-webhook-hosts`` list (none by default:
per-run webhooks are refused). ``*`` accepts any host except link-local addresses
(cloud metadata), which must be listed by address to be reached.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Sequence

__all__ = ["MAX_RUN_WEBHOOKS", "MAX_URL_CHARS", "host_allowed", "url_problem"]

#: Longest webhook URL accepted.
MAX_URL_CHARS = 2048
#: Most webhooks one run may carry.
MAX_RUN_WEBHOOKS = 8


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL, or None.

    Example:
        >>> url_problem("https://hooks.example.com/T0/B0") is None
        True
        >>> url_problem("ftp://example.com/x")
        "scheme 'ftp' is not http or https"
        >>> url_problem("https:///path")
        'the URL has no host'
    """
    if len(url) > MAX_URL_CHARS:
        return f"{len(url)} characters, at most {MAX_URL_CHARS}"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} is not http or https"
    if not parts.hostname:
        return "the URL has no host"
    if any(c.isspace() for c in url):
        return "the URL contains whitespace"
    return None


def _link_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_link_local
    except ValueError:
        return False


def host_allowed(url: str, hosts: Sequence[str]) -> bool:
    """Whether a per-run webhook's host is on the allowlist.

    An entry is a host name or address (exact, case-insensitive), ``.example.com``
    (that domain's subdomains) or ``*`` (any host but link-local addresses).

    Example:
        >>> host_allowed("https://hooks.slack.com/services/x", ["hooks.slack.com"])
        True
        >>> host_allowed("https://a.corp.example/x", [".corp.example"])
        True
        >>> host_allowed("http://169.254.169.254/latest", ["*"])
        False
        >>> host_allowed("http://127.0.0.1:8080/x", [])
        False
    """
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    for entry in hosts:
        entry = entry.strip().lower()
        if entry == "*" and host and not _link_local(host):
            return True
        if entry.startswith(".") and host.endswith(entry):
            return True
        if entry == host:
            return True
    return False

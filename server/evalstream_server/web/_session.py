"""Browser sessions: a token given once, then kept in an HttpOnly cookie.

``POST /api/v1/session`` with ``{"token": "..."}`` (JSON only: a cross-site form cannot
send it) checks the token and sets two cookies, both ``SameSite=Strict`` (and
``Secure`` under TLS): `SESSION_COOKIE`, HttpOnly, holding the token itself (so a
revoked token ends its sessions at once, and any replica accepts them), and
`CSRF_COOKIE`, readable by the page's script. A request authenticated by the cookie
that is not a GET or HEAD must repeat the latter in the `CSRF_HEADER` header (a
double-submit check); a request with an ``Authorization`` header needs neither.
``GET`` answers who the session is; ``DELETE`` signs out.
"""

from __future__ import annotations

import hmac
import secrets

import grpc
from aiohttp import web

from evalstream_server.auth import ALL_ACCESS, Principal, TokenTable, bearer_token
from evalstream_server.web._calls import ApiError
from evalstream_server.web._routes import CALLER, json_response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SESSION_PATH",
    "Sessions",
    "request_token",
]

SESSION_PATH = "/api/v1/session"
SESSION_COOKIE = "evalstream_session"
CSRF_COOKIE = "evalstream_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: How long a browser keeps a session: a working day.
MAX_AGE_SECONDS = 12 * 3600
_SAFE = ("GET", "HEAD", "OPTIONS")


def request_token(request: web.Request) -> tuple[str | None, bool]:
    """The request's token and whether it came from the session cookie.

    An ``Authorization`` header wins over the cookie; a cookie-borne token of an
    unsafe method must pass the CSRF check.

    Raises:
        ApiError: PERMISSION_DENIED when the CSRF header is missing or does not match.
    """
    headers = request.headers.getall("Authorization", [])
    if headers:
        return bearer_token([("authorization", v) for v in headers]), False
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, False
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        kept = request.cookies.get(CSRF_COOKIE, "")
        if not sent or not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{request.method} with a session cookie needs the header {CSRF_HEADER} "
                f"equal to the {CSRF_COOKIE} cookie",
            )
    return token, True


def _who(principal: Principal) -> dict[str, object]:
    return {"name": principal.name, "role": principal.role, "projects": list(principal.projects)}


class Sessions:
    """The /api/v1/session handlers."""

    def __init__(self, tokens: TokenTable | None, *, secure: bool) -> None:
        self._tokens = tokens
        self._secure = secure

    def _cookie(self, response: web.Response, name: str, value: str, *, httponly: bool) -> None:
        response.set_cookie(
            name,
            value,
            path="/",
            max_age=MAX_AGE_SECONDS,
            httponly=httponly,
            samesite="Strict",
            secure=self._secure,
        )

    async def sign_in(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'send {{"token": "..."}} as application/json, not {request.content_type!r}',
            )
        try:
            body = await request.json()
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                'token: required, a string: {"token": "es_..."}',
                field="token",
            )
        if self._tokens is None:
            return json_response({**_who(ALL_ACCESS), "authentication": "off"})
        principal = self._tokens.lookup(token)
        if principal is None:
            raise ApiError(grpc.StatusCode.UNAUTHENTICATED, "the token is not valid")
        response = json_response(_who(principal))
        self._cookie(response, SESSION_COOKIE, token, httponly=True)
        self._cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32), httponly=False)
        return response

    async def who(self, request: web.Request) -> web.Response:
        return json_response(_who(CALLER.get()))

    async def sign_out(self, request: web.Request) -> web.Response:
        response = json_response({"signed_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        response.del_cookie(CSRF_COOKIE, path="/")
        return response

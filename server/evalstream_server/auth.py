"""Authentication and project scopes: bearer tokens, roles, and the interceptor that checks them.

A caller sends ``authorization: Bearer <token>``. Tokens are stored only as SHA-256
digests (``--auth-tokens-file``; one admin token from ``EVALSTREAM_ADMIN_TOKEN``) and
compared in constant time. A token's role (read, write, admin: `METHOD_ROLES`, fail
closed) decides which methods it may call, and its project patterns which runs it sees
(enforced by ``api._scope.ScopedStore``). grpc.health.v1 is open; no token or an unknown
one is UNAUTHENTICATED before the handler runs; tokens never reach logs or metrics. The
caller reaches servicers as a `Principal` (`current_principal`).

Minting a token (prints the token once, and the JSON entry to add)::

    python -m evalstream_server.auth mint --name ci --role write --project 'vision-*' \
        [--file tokens.json]
    python -m evalstream_server.auth revoke --name ci --file tokens.json
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc import aio

from evalstream_server.rpc import behavior, rebuild

log = logging.getLogger("evalstream.auth")

ROLES = ("read", "write", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX = "es_"

#: The role each evalstream.v1 method needs. Tests check that every method of
#: both services is listed, so a new method cannot be forgotten; one that is
#: not listed needs admin.
METHOD_ROLES: Mapping[str, str] = {
    "/evalstream.v1.Runs/GetRun": "read",
    "/evalstream.v1.Runs/ListRuns": "read",
    "/evalstream.v1.Runs/GetCurves": "read",
    "/evalstream.v1.Runs/GetVerdict": "read",
    "/evalstream.v1.Runs/WatchVerdict": "read",
    "/evalstream.v1.Runs/CompareRuns": "read",
    "/evalstream.v1.Runs/ListEvaluationSteps": "read",
    "/evalstream.v1.Runs/GetSpecimens": "read",
    "/evalstream.v1.Runs/ListProjects": "read",
    "/evalstream.v1.Runs/ExportCurves": "read",
    "/evalstream.v1.Runs/GetSpecimenHistory": "read",
    "/evalstream.v1.Runs/CompareSpecimens": "read",
    "/evalstream.v1.Runs/CreateRun": "write",
    "/evalstream.v1.Runs/StreamLoss": "write",
    "/evalstream.v1.Runs/LogCheckpoint": "write",
    "/evalstream.v1.Runs/SetRunStatus": "write",
    "/evalstream.v1.Runs/UpdateRun": "write",
    "/evalstream.v1.Scoring/ScoreText": "write",
    "/evalstream.v1.Scoring/ScoreBoxes": "write",
}
#: Methods anyone may call, with or without a token.
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
#: Reflection needs a valid token of any role.
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def required_role(method: str) -> str:
    """The least role that may call `method` (a full gRPC method name).

    Example:
        >>> required_role("/evalstream.v1.Runs/GetRun"), required_role("/x.Y/Z")
        ('read', 'admin')
    """
    if method.startswith(REFLECTION_PREFIXES):
        return "read"
    return METHOD_ROLES.get(method, "admin")


@functools.lru_cache(maxsize=1024)
def _pattern(project: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if p == "*" else re.escape(p) for p in re.split(r"(\*)", project))
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name, its role and the project patterns it may touch.

    Example:
        >>> p = Principal("ci", "write", ("vision-*",))
        >>> p.may_call("read"), p.may_call("admin")
        (True, False)
        >>> p.can_access("vision-vqa"), p.can_access("nlp")
        (True, False)
    """

    name: str
    role: str
    projects: tuple[str, ...]

    @property
    def all_projects(self) -> bool:
        """Whether every project is in scope (a ``*`` pattern)."""
        return "*" in self.projects

    def may_call(self, role: str) -> bool:
        """Whether this principal's role includes `role`."""
        return _RANK[self.role] >= _RANK[role]

    def can_access(self, project: str) -> bool:
        """Whether `project` matches one of the patterns (``*`` matches any characters)."""
        return self.all_projects or any(
            _pattern(pattern).fullmatch(project) for pattern in self.projects
        )


#: The caller when authentication is off: an admin of every project.
ALL_ACCESS = Principal("anonymous (authentication off)", "admin", ("*",))

_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "evalstream_principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC this code runs for.

    Raises:
        RuntimeError: outside an RPC (nothing set it): a programming error, refused
            loudly rather than treated as any caller.
    """
    principal = _PRINCIPAL.get()
    if principal is None:
        raise RuntimeError("no caller identity here: code outside an RPC touched scoped data")
    return principal


def acting_as(principal: Principal) -> contextvars.Context:
    """A copy of the current context in which `current_principal` is `principal`.

    Example:
        >>> acting_as(ALL_ACCESS).run(current_principal).role
        'admin'
    """
    ctx = contextvars.copy_context()
    ctx.run(_PRINCIPAL.set, principal)
    return ctx


# ------------------------------------------------------------------ tokens


def hash_token(token: str) -> str:
    """The hex SHA-256 stored for `token` (see the module docstring for why unsalted).

    Example:
        >>> hash_token("abc")[:16]
        'ba7816bf8f01cfea'
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mint_token() -> str:
    """A new random token: ``es_`` and 256 bits in URL-safe base64 (43 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenFileError(ValueError):
    """The tokens file is unreadable or malformed; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One stored token: its name (shown in logs), hash, role and project patterns."""

    name: str
    sha256: bytes
    role: str
    projects: tuple[str, ...]

    def principal(self) -> Principal:
        return Principal(self.name, self.role, self.projects)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256.hex(),
            "role": self.role,
            "projects": list(self.projects),
        }


def parse_entries(data: object, where: str = "tokens file") -> list[TokenEntry]:
    """Validates ``{"tokens": [{"name", "sha256", "role", "projects"}, ...]}``.

    Raises:
        TokenFileError: naming the entry and the field.

    Example:
        >>> entry = {"name": "ci", "sha256": hash_token("t"), "role": "read", "projects": ["a"]}
        >>> parse_entries({"tokens": [entry]})[0].role
        'read'
        >>> parse_entries({"tokens": [{**entry, "role": "root"}]})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        evalstream_server.auth.TokenFileError: tokens file: tokens[0].role: 'root' is not one of ...
    """
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
        raise TokenFileError(f'{where}: expected {{"tokens": [...]}}')
    entries: list[TokenEntry] = []
    names: set[str] = set()
    hashes: set[bytes] = set()
    for i, raw in enumerate(data["tokens"]):
        at = f"{where}: tokens[{i}]"
        if not isinstance(raw, dict):
            raise TokenFileError(f"{at}: expected an object")
        unknown = sorted(set(raw) - {"name", "sha256", "role", "projects", "comment"})
        if unknown:
            raise TokenFileError(f"{at}: unknown keys {unknown}")
        name, digest, role, projects = (raw.get(k) for k in ("name", "sha256", "role", "projects"))
        if not isinstance(name, str) or not name:
            raise TokenFileError(f"{at}.name: a non-empty string is required")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise TokenFileError(f"{at}.sha256: 64 hex digits are required")
        if role not in ROLES:
            raise TokenFileError(f"{at}.role: {role!r} is not one of {', '.join(ROLES)}")
        if (
            not isinstance(projects, list)
            or not projects
            or not all(isinstance(p, str) and p for p in projects)
        ):
            raise TokenFileError(f"{at}.projects: a non-empty list of project patterns is required")
        if name in names:
            raise TokenFileError(f"{at}.name: {name!r} is used twice")
        value = bytes.fromhex(digest)
        if value in hashes:
            raise TokenFileError(f"{at}.sha256: the same token is listed twice")
        names.add(name)
        hashes.add(value)
        entries.append(TokenEntry(name, value, role, tuple(projects)))
    return entries


def read_token_file(path: Path) -> list[TokenEntry]:
    """Reads and validates a tokens file.

    Raises:
        TokenFileError: unreadable, not JSON, or malformed.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TokenFileError(f"cannot read tokens file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise TokenFileError(
            f"tokens file {path}: not JSON ({exc.msg}, line {exc.lineno})"
        ) from exc
    return parse_entries(data, str(path))


class TokenTable:
    """The tokens a server accepts; re-reads its file when the file changes.

    Rotation without a restart: add the new entry, move clients over, remove the
    old entry. The file is checked at most every `reload_seconds`; a file that
    no longer parses is logged and the previous tokens stay in force.

    Example:
        >>> entry = TokenEntry("ci", bytes.fromhex(hash_token("s3cret")), "read", ("a",))
        >>> table = TokenTable([entry])
        >>> table.lookup("s3cret").name, table.lookup("guess")
        ('ci', None)
    """

    def __init__(
        self,
        entries: Sequence[TokenEntry],
        *,
        path: Path | None = None,
        fixed: Sequence[TokenEntry] = (),
        reload_seconds: float = 2.0,
    ) -> None:
        self._fixed = tuple(fixed)
        self._entries = tuple(entries) + self._fixed
        self._path = path
        self._reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._file_stamp()

    @classmethod
    def from_config(cls, tokens_file: Path | None, admin_token: str) -> TokenTable | None:
        """The table configured, or None when no token is (authentication off).

        Raises:
            TokenFileError: the file is unreadable or malformed.
        """
        if tokens_file is None and not admin_token:
            return None
        fixed = []
        if admin_token:
            fixed.append(
                TokenEntry(
                    "admin (EVALSTREAM_ADMIN_TOKEN)",
                    hashlib.sha256(admin_token.encode()).digest(),
                    "admin",
                    ("*",),
                )
            )
        entries = read_token_file(tokens_file) if tokens_file is not None else []
        return cls(entries, path=tokens_file, fixed=fixed)

    def __len__(self) -> int:
        return len(self._entries)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if now - self._checked < self._reload_seconds:
            return
        with self._lock:
            if now - self._checked < self._reload_seconds:
                return
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                entries = read_token_file(self._path)
            except TokenFileError as exc:
                log.error(
                    "tokens file not reloaded; the previous tokens stay in force",
                    extra={"fields": {"error": str(exc)}},
                )
                return
            self._entries = tuple(entries) + self._fixed
            log.info("tokens file reloaded", extra={"fields": {"tokens": len(self._entries)}})

    def lookup(self, token: str) -> Principal | None:
        """The principal of `token`, or None. Compares with every entry (no early exit)."""
        self._maybe_reload()
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: TokenEntry | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.sha256) and found is None:
                found = entry
        return found.principal() if found is not None else None


# ------------------------------------------------------------------ the interceptor


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the ``authorization: Bearer <token>`` entry; None when absent or malformed.

    Example:
        >>> bearer_token([("authorization", "Bearer abc")]), bearer_token([("x", "y")])
        ('abc', None)
    """
    values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _refusal(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same kind that ends the call with `code` without running the method."""
    if handler.response_streaming:

        async def refuse_stream(
            _request: object, context: aio.ServicerContext
        ) -> AsyncIterator[object]:
            await context.abort(code, message)
            yield None  # pragma: no cover - abort raises; this makes it an async generator

        return rebuild(handler, refuse_stream)

    async def refuse(_request: object, context: aio.ServicerContext) -> NoReturn:
        await context.abort(code, message)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    return rebuild(handler, refuse)


def _as_principal(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    """The handler, run with `principal` as `current_principal` (streams included).

    Each call runs in its own asyncio task, whose context the variable is set in;
    handler threads run in a copy of it (`evalstream_server.rpc.sync_to_async`).
    """
    inner = behavior(handler)

    if handler.response_streaming:

        async def run_stream(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            _PRINCIPAL.set(principal)
            async for response in inner(request, context):
                yield response

        return rebuild(handler, run_stream)

    async def run(request: Any, context: aio.ServicerContext) -> Any:
        _PRINCIPAL.set(principal)
        return await inner(request, context)

    return rebuild(handler, run)


class AuthInterceptor(aio.ServerInterceptor):
    """Checks the bearer token and role of every call before its handler runs.

    Args:
        tokens: the accepted tokens; None turns authentication off (every
            caller is `ALL_ACCESS`).
    """

    def __init__(self, tokens: TokenTable | None) -> None:
        self._tokens = tokens

    @property
    def enabled(self) -> bool:
        return self._tokens is not None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self._tokens is None:
            return _as_principal(handler, ALL_ACCESS)
        token = bearer_token(handler_call_details.invocation_metadata)
        principal = self._tokens.lookup(token) if token is not None else None
        if principal is None:
            reason = "missing bearer token" if token is None else "unknown token"
            log.info("auth refused", extra={"fields": {"method": method, "reason": reason}})
            return _refusal(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "a valid bearer token is required (metadata 'authorization: Bearer <token>')"
                if token is None
                else "the bearer token is not valid",
            )
        needed = required_role(method)
        if not principal.may_call(needed):
            log.info(
                "auth refused",
                extra={
                    "fields": {
                        "method": method,
                        "token_name": principal.name,
                        "reason": f"role {principal.role} < {needed}",
                    }
                },
            )
            return _refusal(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {principal.name!r} has role {principal.role!r}; {method} needs {needed!r}",
            )
        return _as_principal(handler, principal)


# ------------------------------------------------------------------ the minting CLI


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evalstream_server.auth mint|revoke|hash``; returns the exit code."""
    p = argparse.ArgumentParser(
        prog="python -m evalstream_server.auth",
        description="Mint, revoke and hash evalstream bearer tokens.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mint", help="make a token; print it once, and its tokens-file entry")
    m.add_argument("--name", required=True, help="shown in logs, e.g. ci-vision-2026-11")
    m.add_argument("--role", required=True, choices=ROLES)
    m.add_argument(
        "--project",
        action="append",
        required=True,
        help="project or pattern ('vision-*', '*'); repeat for several",
    )
    m.add_argument(
        "--file", type=Path, help="add the entry to this tokens file (created if absent)"
    )
    r = sub.add_parser("revoke", help="remove a token by name from a tokens file")
    r.add_argument("--name", required=True)
    r.add_argument("--file", type=Path, required=True)
    sub.add_parser("hash", help="print the sha256 entry value of a token read from stdin")
    args = p.parse_args(argv)
    try:
        if args.command == "hash":
            token = sys.stdin.readline().strip()
            if not token:
                p.error("no token on stdin")
            print(hash_token(token))
            return 0
        data: dict[str, Any] = {"tokens": []}
        if args.file is not None and args.file.exists():
            data = json.loads(args.file.read_text(encoding="utf-8"))
            parse_entries(data, str(args.file))
        if args.command == "revoke":
            kept = [e for e in data["tokens"] if e.get("name") != args.name]
            if len(kept) == len(data["tokens"]):
                print(f"no token named {args.name!r} in {args.file}", file=sys.stderr)
                return 1
            _write_atomically(args.file, {**data, "tokens": kept})
            print(f"revoked {args.name!r}; a running server drops it within seconds")
            return 0
        token = mint_token()
        entry = TokenEntry(
            args.name, bytes.fromhex(hash_token(token)), args.role, tuple(args.project)
        )
        if args.file is not None:
            candidate = {**data, "tokens": [*data["tokens"], entry.to_json()]}
            parse_entries(candidate, str(args.file))  # e.g. a name used twice
            _write_atomically(args.file, candidate)
            print(f"added {args.name!r} to {args.file}", file=sys.stderr)
        else:
            print("add this entry to the tokens file:", file=sys.stderr)
            print(json.dumps(entry.to_json()), file=sys.stderr)
        print("the token (shown once; give it to the client as EVALSTREAM_TOKEN):", file=sys.stderr)
        print(token)
        return 0
    except (TokenFileError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

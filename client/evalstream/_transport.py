"""How a client reaches the server: plaintext or TLS (client certificate for mTLS), and its token.

The bearer token travels as ``authorization: Bearer <token>`` metadata on every
call, added by a client interceptor. An interceptor rather than grpc's call
credentials, because call credentials are refused on plaintext channels and a
loopback server (the quick start) or one behind a TLS-terminating proxy is
plaintext. To keep the token from crossing a network in the clear, a token on a
plaintext channel to a non-loopback host is refused unless ``insecure=True``.
The token is never logged and never part of a repr.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from evalstream._targets import parse_targets

#: A PEM file's path, or its bytes.
PemSource = str | Path | bytes


def _pem(value: PemSource | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {value}: {exc.strerror}") from exc


def target_is_local(target: str) -> bool:
    """Whether `target` is this machine: a unix socket, ``localhost``, 127.0.0.0/8 or ``::1``.

    Example:
        >>> target_is_local("localhost:50051"), target_is_local("[::1]:5")
        (True, True)
        >>> target_is_local("dns:///evalstream.internal:443"), target_is_local("10.0.0.2:50051")
        (False, False)
    """
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
            break
    if target.startswith("["):
        host = target[1 : target.find("]")]
    elif target.count(":") == 1:
        host = target.split(":")[0]
    else:
        host = target
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_token(details: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    return details._replace(metadata=(*(details.metadata or ()), *metadata))


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the authorization metadata to every call of a blocking channel."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __repr__(self) -> str:
        return "_BearerToken(<hidden>)"

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_token(details, self._metadata), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_token(details, self._metadata), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(_with_token(details, self._metadata), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(_with_token(details, self._metadata), requests)


class _AsyncBearer:
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<hidden>)"


# grpc.aio files an interceptor under the first of the four kinds it implements,
# so each kind gets its own class.
class _AsyncUnaryUnary(_AsyncBearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._metadata), request)


class _AsyncUnaryStream(_AsyncBearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._metadata), request)


class _AsyncStreamUnary(_AsyncBearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, self._metadata), requests)


class _AsyncStreamStream(_AsyncBearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, self._metadata), requests)


def _async_bearer(token: str) -> list[Any]:
    """Interceptors adding the authorization metadata to every call of an asyncio channel."""
    kinds = (_AsyncUnaryUnary, _AsyncUnaryStream, _AsyncStreamUnary, _AsyncStreamStream)
    return [kind(token) for kind in kinds]


@dataclass(frozen=True)
class Transport:
    """Channel credentials (None: plaintext) and the bearer token (None: none)."""

    credentials: grpc.ChannelCredentials | None = None
    token: str | None = field(default=None, repr=False)

    def channel(self, target: str, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
        """A blocking channel to `target`."""
        if self.credentials is None:
            channel = grpc.insecure_channel(target, options=list(options))
        else:
            channel = grpc.secure_channel(target, self.credentials, options=list(options))
        if self.token is None:
            return channel
        return grpc.intercept_channel(channel, _BearerToken(self.token))

    def aio_channel(self, target: str, options: Sequence[tuple[str, Any]]) -> grpc.aio.Channel:
        """An asyncio channel to `target`."""
        interceptors = _async_bearer(self.token) if self.token is not None else None
        if self.credentials is None:
            return grpc.aio.insecure_channel(
                target, options=list(options), interceptors=interceptors
            )
        return grpc.aio.secure_channel(
            target, self.credentials, options=list(options), interceptors=interceptors
        )


def make_transport(
    target: str | Sequence[str],
    *,
    token: str | None = None,
    ca: PemSource | None = None,
    client_cert: PemSource | None = None,
    client_key: PemSource | None = None,
    tls: bool | None = None,
    insecure: bool = False,
) -> Transport:
    """The transport for these options (see `Client`).

    TLS is used when `tls` is True, or when `tls` is None and a CA or a client
    certificate is given; without `ca` the system's roots verify the server.
    `target` is one address or several (see `evalstream._targets`); a token on
    plaintext is checked against every one of them.

    Raises:
        ValueError: a client certificate without its key (or the reverse), a PEM
            file that cannot be read, an empty token, or a token that would travel
            in plaintext to a non-loopback host without ``insecure=True``.

    Example:
        >>> make_transport("localhost:50051", token="t")
        Transport(credentials=None)
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together: give both or neither")
    if token is not None:
        token = token.strip()
        if not token:
            raise ValueError("token is empty")
    use_tls = tls if tls is not None else (ca is not None or client_cert is not None)
    if not use_tls:
        if ca is not None or client_cert is not None:
            raise ValueError("ca and client_cert need TLS; do not pass tls=False with them")
        remote = [a for a in parse_targets(target).addresses if not target_is_local(a)]
        if token is not None and not insecure and remote:
            raise ValueError(
                f"refusing to send a token in plaintext to {remote[0]}: use TLS (ca=..., or "
                "tls=True for the system's roots), or insecure=True if the network is trusted"
            )
        return Transport(None, token)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_pem(ca, "CA bundle"),
        private_key=_pem(client_key, "client key"),
        certificate_chain=_pem(client_cert, "client certificate"),
    )
    return Transport(credentials, token)

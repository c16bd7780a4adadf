"""Fixtures for the security tests: a throwaway PKI (openssl) and token files."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evalstream_server.app import Deps, RunningServer, build_server
from evalstream_server.auth import hash_token, mint_token
from evalstream_server.config import Config
from grpc_health.v1 import health_pb2

# name -> (role, projects)
TOKENS = {
    "admin": ("admin", ["*"]),
    "writer-a": ("write", ["proj-a"]),
    "reader-a": ("read", ["proj-a"]),
    "writer-b": ("write", ["proj-b*"]),
}


@dataclass
class Server:
    target: str
    deps: Deps
    config: Config
    running: RunningServer | None = None


def live(data_dir: Path, **overrides: object) -> Iterator[Server]:
    """An in-process server on a free loopback port (BERTScore off) with these Config fields."""
    config = Config(
        port=0,
        metrics_port=-1,
        data_dir=data_dir,
        bertscore_model="none",
        **{"http_port": -1, **overrides},  # type: ignore[arg-type]
    )
    deps = Deps.open(config)
    server, port = build_server(config, deps)
    # SERVING once the text metrics have warmed up (the server's lifecycle): wait for
    # it, so that a test's first health check does not race the warm-up.
    deadline = time.monotonic() + 120
    while deps.health._server_status.get("") != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "the server did not turn SERVING"
        time.sleep(0.02)
    try:
        yield Server(f"127.0.0.1:{port}", deps, config, server)
    finally:
        server.stop(0).wait()
        deps.close()


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, a rogue one."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "rogue-ca")
    _leaf(
        d,
        "server",
        "ca",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\n",
    )
    _leaf(d, "client", "ca", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    _leaf(d, "rogue", "rogue-ca", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    return Pki(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        rogue_cert=d / "rogue.pem",
        rogue_key=d / "rogue.key",
    )


@dataclass(frozen=True)
class Tokens:
    file: Path
    values: dict[str, str]  # name -> token

    def __getitem__(self, name: str) -> str:
        return self.values[name]


def write_tokens(path: Path, spec: dict[str, tuple[str, list[str]]]) -> dict[str, str]:
    values = {name: mint_token() for name in spec}
    entries = [
        {"name": name, "sha256": hash_token(values[name]), "role": role, "projects": projects}
        for name, (role, projects) in spec.items()
    ]
    path.write_text(json.dumps({"tokens": entries}))
    return values


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    path = tmp_path / "tokens.json"
    return Tokens(path, write_tokens(path, TOKENS))


@pytest.fixture
def auth_server(tmp_path: Path, tokens: Tokens) -> Iterator[Server]:
    """An in-process plaintext loopback server that requires the `tokens`."""
    yield from live(tmp_path / "data", auth_tokens_file=tokens.file)


@pytest.fixture
def mtls_server(tmp_path: Path, pki: Pki, tokens: Tokens) -> Iterator[Server]:
    """TLS with required client certificates, and tokens."""
    yield from live(
        tmp_path / "data",
        auth_tokens_file=tokens.file,
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        tls_client_ca=pki.ca,
    )


@pytest.fixture
def tls_server(tmp_path: Path, pki: Pki, tokens: Tokens) -> Iterator[Server]:
    """TLS without client certificates, and tokens."""
    yield from live(
        tmp_path / "data",
        auth_tokens_file=tokens.file,
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
    )


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Starts servers with Config overrides; stops them at the end."""
    running: list[Iterator[Server]] = []

    def start(**overrides: object) -> Server:
        gen = live(tmp_path / f"data{len(running)}", **overrides)
        running.append(gen)
        return next(gen)

    yield start
    for gen in running:
        for _ in gen:
            pass

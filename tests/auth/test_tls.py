"""TLS and mTLS: a client without a certificate is refused; the client's options."""

from __future__ import annotations

import pytest
from evalstream import Client, errors
from evalstream._transport import make_transport, target_is_local


def test_mtls_accepts_a_client_with_a_certificate(mtls_server, pki, tokens) -> None:
    with Client(
        f"localhost:{mtls_server.target.rsplit(':', 1)[1]}",
        ca=pki.ca,
        client_cert=pki.client_cert,
        client_key=pki.client_key.read_bytes(),  # a path or PEM bytes
        token=tokens["writer-a"],
        timeout=10,
    ) as client:
        assert client.health() == "SERVING"
        client.create_run("proj-a", "over-mtls").finish()
        assert [r.name for r in client.list_runs("proj-a")] == ["over-mtls"]


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate", "plaintext"])
def test_mtls_refuses_a_client_without_a_valid_certificate(mtls_server, pki, tokens, who) -> None:
    options = {
        "no certificate": {"ca": pki.ca},
        "another CA's certificate": {
            "ca": pki.ca,
            "client_cert": pki.rogue_cert,
            "client_key": pki.rogue_key,
        },
        "plaintext": {},
    }[who]
    with Client(mtls_server.target, timeout=5, **options) as client:
        with pytest.raises(errors.Unavailable):
            client.health()  # health is open, but the handshake is not
        with pytest.raises(errors.Unavailable):
            list(client.list_runs("proj-a"))


def test_tls_without_client_ca(tls_server, pki, tokens) -> None:
    with Client(tls_server.target, ca=pki.ca, token=tokens["reader-a"], timeout=10) as client:
        assert client.health() == "SERVING"
        assert list(client.list_runs("proj-a")) == []
    with Client(tls_server.target, timeout=5) as plaintext, pytest.raises(errors.Unavailable):
        plaintext.health()


def test_client_refuses_a_plaintext_token_to_a_remote_host() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        make_transport("10.1.2.3:50051", token="es_x")
    assert make_transport("10.1.2.3:50051", token="es_x", insecure=True).credentials is None
    assert make_transport("10.1.2.3:50051").credentials is None  # no token: nothing to leak
    assert make_transport("10.1.2.3:50051", token="es_x", tls=True).credentials is not None
    with pytest.raises(ValueError, match="go together"):
        make_transport("localhost:1", client_cert=b"x")
    assert "es_x" not in repr(make_transport("localhost:1", token="es_x"))


@pytest.mark.parametrize(
    ("target", "local"),
    [
        ("localhost:50051", True),
        ("127.0.0.1:1", True),
        ("[::1]:1", True),
        ("unix:/tmp/s", True),
        ("dns:///localhost:1", True),
        ("evalstream.internal:443", False),
        ("0.0.0.0:1", False),
    ],
)
def test_target_is_local(target: str, local: bool) -> None:
    assert target_is_local(target) is local


def test_tls_and_token_over_two_replicas(make_server, pki, tokens) -> None:
    tls = {"auth_tokens_file": tokens.file, "tls_cert": pki.server_cert, "tls_key": pki.server_key}
    a, b = make_server(**tls), make_server(**tls)
    targets = [a.target, b.target]  # two 127.0.0.1 addresses: balanced as ipv4:...
    with Client(targets, ca=pki.ca, token=tokens["writer-a"], timeout=10) as client:
        for i in range(8):  # round robin: both replicas serve, each verified against the CA
            client.create_run("proj-a", f"run-{i}")
    # Both replicas took runs (each has its own store here): round robin used both over TLS.
    counts = []
    for server in (a, b):
        with Client(server.target, ca=pki.ca, token=tokens["writer-a"], timeout=10) as one:
            counts.append(len(list(one.list_runs("proj-a"))))
    assert sum(counts) == 8 and min(counts) >= 1, counts
    with Client(targets, token=tokens["writer-a"], timeout=5) as plaintext:
        with pytest.raises(errors.Unavailable):
            list(plaintext.list_runs("proj-a"))
    with Client(targets, ca=pki.ca, timeout=10) as tokenless:
        with pytest.raises(errors.Unauthenticated):
            list(tokenless.list_runs("proj-a"))


def test_client_refuses_a_plaintext_token_to_any_remote_replica() -> None:
    with pytest.raises(ValueError, match=r"plaintext to 10\.1\.2\.3:1"):
        make_transport(["127.0.0.1:1", "10.1.2.3:1"], token="es_x")
    with pytest.raises(ValueError, match=r"plaintext to 10\.1\.2\.3:1"):
        make_transport("ipv4:127.0.0.1:1,10.1.2.3:1", token="es_x")
    assert make_transport(["127.0.0.1:1", "127.0.0.2:1"], token="es_x").credentials is None
    assert make_transport(["127.0.0.1:1", "10.1.2.3:1"], token="es_x", tls=True).credentials

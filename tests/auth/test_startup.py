"""Start-up policy: auth off is said loudly; non-loopback needs TLS (or --insecure) and tokens."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from evalstream_server import app, auth, config
from evalstream_server.config import Config


def _disabled_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage() == "AUTHENTICATION IS DISABLED"
    ]


def test_no_auth_logs_a_loud_warning(make_server, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        make_server(no_auth=True)
    [record] = _disabled_warnings(caplog)
    assert "--no-auth" in record.fields["reason"]  # type: ignore[attr-defined]


def test_loopback_without_tokens_is_open_and_says_so(make_server, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        make_server()
    [record] = _disabled_warnings(caplog)
    assert "loopback only" in record.fields["reason"]  # type: ignore[attr-defined]


def test_tokens_turn_auth_on_without_warning(make_server, tokens, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        make_server(auth_tokens_file=tokens.file)
    assert _disabled_warnings(caplog) == []


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({}, ["plaintext", "without authentication"]),
        ({"insecure": True}, ["without authentication"]),
        ({"no_auth": True}, ["plaintext"]),
        ({"insecure": True, "no_auth": True}, []),
        ({"insecure": True, "admin_token": "x" * 40}, []),
        ({"tls_cert": Path("c"), "tls_key": Path("k"), "auth_tokens_file": Path("t")}, []),
    ],
)
def test_non_loopback_exposure(overrides: dict[str, object], needles: list[str]) -> None:
    problems = Config(host="0.0.0.0", **overrides).exposure_problems()  # type: ignore[arg-type]
    assert len(problems) == len(needles)
    for problem, needle in zip(problems, needles, strict=True):
        assert needle in problem


def test_loopback_hosts_need_nothing() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.1.2.3"):
        assert Config(host=host).exposure_problems() == []


def test_server_refuses_to_start_exposed(tmp_path: Path, caplog) -> None:
    """serve() refuses before binding anything (no non-loopback address is bound here)."""
    cfg = Config(host="0.0.0.0", port=0, metrics_port=-1, data_dir=tmp_path, bertscore_model="none")
    with caplog.at_level(logging.ERROR):
        assert app.serve(cfg) == 1
    assert any("refusing plaintext" in json.dumps(getattr(r, "fields", {})) for r in caplog.records)
    assert not (tmp_path / "evalstream.db").exists()  # nothing was opened


def test_build_server_refuses_to_start_exposed(tmp_path: Path) -> None:
    cfg = Config(host="0.0.0.0", port=0, metrics_port=-1, data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="refusing plaintext"):
        app.build_server(cfg, deps=None)  # type: ignore[arg-type]  # refused before deps are used


def test_flags_and_variables() -> None:
    c = config.load(
        ["--no-auth", "--insecure", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        {"EVALSTREAM_TLS_CLIENT_CA": "ca.pem"},
    )
    assert (c.no_auth, c.insecure, c.tls, c.tls_client_ca) == (True, True, True, Path("ca.pem"))
    c = config.load([], {"EVALSTREAM_NO_AUTH": "yes", "EVALSTREAM_INSECURE": "0"})
    assert (c.no_auth, c.insecure) == (True, False)
    token = auth.mint_token()
    c = config.load([], {"EVALSTREAM_ADMIN_TOKEN": token})
    assert c.admin_token == token and c.tokens_configured


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--no-auth", "--auth-tokens-file", "t.json"], {}, "no-auth contradicts"),
        (["--tls-cert", "c.pem"], {}, "tls-cert and tls-key"),
        (["--tls-client-ca", "ca.pem"], {}, "tls-client-ca"),
        ([], {"EVALSTREAM_ADMIN_TOKEN": "short-secret"}, "at least 32"),
        ([], {"EVALSTREAM_NO_AUTH": "maybe"}, "EVALSTREAM_NO_AUTH"),
    ],
)
def test_bad_security_settings(argv, env, needle, capsys) -> None:
    with pytest.raises(SystemExit):
        config.load(argv, env)
    err = capsys.readouterr().err
    assert needle in err
    assert "short-secret" not in err


def test_unreadable_tokens_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.json"
    bad.write_text('{"tokens": [{"name": "x"}]}')
    cfg = Config(port=0, metrics_port=-1, http_port=-1, data_dir=tmp_path, auth_tokens_file=bad)
    with pytest.raises(RuntimeError, match=r"tokens\[0\].sha256"):
        app.load_tokens(cfg)

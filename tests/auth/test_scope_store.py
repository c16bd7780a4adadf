"""ScopedStore covers every Store method, so no store access escapes the caller's scope."""

from __future__ import annotations

import inspect

from evalstream_server.api._scope import ScopedStore
from evalstream_server.store import Store


def test_scoped_store_implements_every_store_method() -> None:
    protocol = {
        n for n, v in inspect.getmembers(Store, inspect.isfunction) if not n.startswith("_")
    }
    scoped = {
        n for n, v in inspect.getmembers(ScopedStore, inspect.isfunction) if not n.startswith("_")
    }
    assert protocol <= scoped, f"not scoped: {sorted(protocol - scoped)}"


def test_cli_reads_the_token_from_the_environment(auth_server, tokens, monkeypatch, capsys) -> None:
    from evalstream.cli import main

    argv = ["--target", auth_server.target, "runs", "list", "--project", "proj-a"]
    monkeypatch.delenv("EVALSTREAM_TOKEN", raising=False)
    assert main(argv) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    monkeypatch.setenv("EVALSTREAM_TOKEN", tokens["reader-a"])
    assert main(argv) == 0
    assert main(["--target", auth_server.target, "--token", tokens["writer-b"], *argv[2:]]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err

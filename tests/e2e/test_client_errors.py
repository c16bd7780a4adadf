"""Client errors that say what to do: unknown metric, taken name, no server, unknown service."""

from __future__ import annotations

import io

import pytest
from evalstream import Client, errors
from evalstream.cli import main

from ..conftest import free_port


def test_unknown_metric_is_an_evalstream_error_listing_the_valid_ones() -> None:
    with Client(f"127.0.0.1:{free_port()}") as client:  # refused before anything is sent
        with pytest.raises(errors.InvalidArgument) as info:
            client.score_text(["a cat"], ["a cat"], metrics=["bleu", "blue"])
    assert isinstance(info.value, ValueError)  # what Python code caught before
    assert "'blue'" in info.value.message and "bleu, rouge, meteor, bertscore" in info.value.message
    assert [v.field for v in info.value.violations] == ["metrics[1]"]


def test_already_exists_says_to_pass_resume(live_server) -> None:
    with Client(live_server.target) as client:
        client.create_run("p", "taken")
        with pytest.raises(errors.AlreadyExists) as info:
            client.create_run("p", "taken")
        assert "'taken'" in info.value.message and "'p'" in info.value.message
        assert "pass resume=True to continue the existing run" in info.value.message
        assert client.create_run("p", "taken", resume=True).info.name == "taken"


def test_no_server_asks_whether_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{free_port()}"
    with Client(target, timeout=5) as client, pytest.raises(errors.Unavailable) as info:
        client.health()
    hint = f"is evalstream-server running at {target}? (start it with `make serve` or "
    assert hint in info.value.message
    assert main(["--target", target, "--timeout", "5", "health"]) == 1
    assert hint in capsys.readouterr().err


def test_health_of_an_unknown_service_lists_the_services(
    live_server, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert main(["--target", live_server.target, "health", "--service", "foo"], out=out) == 1
    err = capsys.readouterr().err
    assert "unknown service 'foo'; services: '' (the whole server)" in err
    assert "evalstream.v1.Runs" in err and "evalstream.v1.Scoring" in err
    assert main(["--target", live_server.target, "health", "--service", "evalstream.v1.Runs"]) == 0


def test_create_run_refuses_an_unknown_option_before_creating_the_run(live_server) -> None:
    with Client(live_server.target) as client:
        # A verdict threshold passed where logger options go: refused at the call,
        # not at the first log, and no run is left behind.
        with pytest.raises(TypeError, match="unknown run logger option 'monitor'.*verdict_config"):
            client.create_run("opts", "r", monitor="validation/loss")
        with pytest.raises(ValueError, match="unknown verdict setting 'monitr'; known: monitor"):
            client.create_run("opts", "r", verdict_config={"monitr": "validation/loss"})
        with pytest.raises(errors.NotFound):
            client.find_run("opts", "r")
        run = client.create_run("opts", "r", verdict_config={"monitor": "validation/loss"})
        run.log(0, split="validation", loss=1.0)
        run.log(1, split="validation", loss=0.5)
        run.finish()
        assert run.verdict().early_stopping.monitor == "validation/loss"
        with pytest.raises(TypeError, match="unknown run logger option 'chunk'"):
            client.get_run(run.id, chunk=10)

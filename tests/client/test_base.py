"""The shared request/reply layer without a server: plans driven by hand."""

from __future__ import annotations

from typing import Any

import pytest
from evalstream import _base, errors
from evalstream.v1 import runs_pb2


def drive(plan: _base.Plan[Any], replies: dict[str, Any]) -> tuple[Any, list[str]]:
    """Runs `plan` as a client would; a reply that is an exception is thrown into it."""
    calls: list[str] = []
    try:
        call = next(plan)
        while True:
            calls.append(call.method)
            reply = replies[call.method]
            call = plan.throw(reply) if isinstance(reply, Exception) else plan.send(reply)
    except StopIteration as stop:
        return stop.value, calls


def test_create_run_resume_finds_the_existing_run() -> None:
    taken = errors.AlreadyExists("taken", code="ALREADY_EXISTS")
    replies = {
        "CreateRun": taken,
        "ListRuns": runs_pb2.ListRunsResponse(runs=[runs_pb2.Run(id="r7")]),
        "GetRun": runs_pb2.Run(id="r7", name="baseline"),
    }
    info, calls = drive(_base.create_run("p", "baseline", "", "", None, True), replies)
    assert (info.id, info.name, calls) == ("r7", "baseline", ["CreateRun", "ListRuns", "GetRun"])


def test_create_run_without_resume_raises_already_exists() -> None:
    taken = errors.AlreadyExists("taken", code="ALREADY_EXISTS")
    with pytest.raises(errors.AlreadyExists):
        drive(_base.create_run("p", "baseline", "", "", None, False), {"CreateRun": taken})


def test_find_run_unknown_name_is_not_found() -> None:
    with pytest.raises(errors.NotFound, match="'nope' not found in project 'p'"):
        drive(_base.find_run("p", "nope"), {"ListRuns": runs_pb2.ListRunsResponse()})


def test_checks_run_before_any_call() -> None:
    with pytest.raises(ValueError, match="task 'bogus'"):
        next(_base.create_run("p", "n", "", "bogus", None, False))
    with pytest.raises(ValueError, match="status 'weird'"):
        next(_base.set_status("r", "weird"))
    with pytest.raises(ValueError, match="checkpoint metrics must be finite"):
        next(_base.log_checkpoint("r", 1, {"acc": float("nan")}, "validation"))


def test_health_round_trip() -> None:
    status, calls = drive(_base.health("evalstream.v1.Runs", None), {_base.HEALTH: b"\x08\x01"})
    assert (status, calls) == ("SERVING", [_base.HEALTH])


def test_text_stream_options_travel_with_the_first_batch_only() -> None:
    op = _base.text_stream([[("a", ("a",), "")]] * 2, ["bleu"], None, {"lowercase": True})
    assert op.encode is not None
    first, second = (op.encode(b) for b in op.request)
    assert first.HasField("options") and first.options.bleu.lowercase
    assert not second.HasField("options")


def test_text_stream_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown text options \\['bogus'\\]"):
        _base.text_stream([], None, None, {"bogus": 1})

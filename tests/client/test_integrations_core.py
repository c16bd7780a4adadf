"""The integrations' framework-free core: the run they open, when they stop, what they score."""

from __future__ import annotations

import pytest
from evalstream import Box, Client, ImageBoxes
from evalstream._verdicts import EarlyStopping, Verdict
from evalstream.errors import AlreadyExists
from evalstream.integrations import EvaluationScorer, StopRule, connect, open_run
from evalstream.integrations._core import split_options


def _verdict(
    state: str, *, should_stop: bool = False, best_step: int | None = 40, path: str = ""
) -> Verdict:
    return Verdict(
        run_id="r_1",
        state=state,
        severity="error" if state == "diverged" else "info",
        summary=f"The run is {state}.",
        evidence={},
        advice=(),
        checkpoints=(),
        early_stopping=EarlyStopping(
            "validation/loss", "min", best_step, 0.5, 3, 30, should_stop, path
        ),
        loss_context={},
        as_of_step=70,
    )


def test_stop_rule_stops_on_a_listed_state_and_names_the_checkpoint_to_keep() -> None:
    rule = StopRule(("diverged", "overfitting"))
    decision = rule.decide(_verdict("overfitting", path="out/checkpoint-40"))
    assert decision.stop and decision.state == "overfitting" and decision.step == 70
    assert (decision.best_step, decision.best_checkpoint) == (40, "out/checkpoint-40")
    assert decision.reason == (
        "the run is overfitting at step 70: The run is overfitting; "
        "keep the checkpoint of step 40 (out/checkpoint-40)"
    )
    assert not rule.decide(_verdict("healthy")).stop
    assert rule.decide(_verdict("healthy")).reason == ""


def test_stop_rule_early_stopping_only_when_asked() -> None:
    patience_spent = _verdict("healthy", should_stop=True, path="")
    assert not StopRule(("diverged",)).decide(patience_spent).stop
    decision = StopRule(early_stopping=True).decide(patience_spent)
    assert decision.stop
    assert decision.reason == (
        "early stopping at step 70: validation/loss has not improved in 3 evaluations; "
        "keep the checkpoint of step 40"
    )


def test_stop_rule_refuses_states_it_cannot_stop_on() -> None:
    with pytest.raises(ValueError, match="'healthy' is not a state to stop on"):
        StopRule(("healthy",))
    assert StopRule("diverged").stop_on == ("diverged",)  # one state, not its letters
    assert not StopRule().active and StopRule(early_stopping=True).active


def test_connect_uses_a_given_client_and_the_environment(monkeypatch) -> None:
    with Client("localhost:1") as given:
        assert connect(given) == (given, False)
        with pytest.raises(TypeError, match="given with a Client"):
            connect(given, timeout=3)
    monkeypatch.setenv("EVALSTREAM_TARGET", "127.0.0.1:7")
    client, owned = connect()
    with client:
        assert (client.target, owned) == ("127.0.0.1:7", True)


def test_open_run_creates_resumes_by_name_and_by_id(live_server, monkeypatch) -> None:
    monkeypatch.delenv("EVALSTREAM_RUN_ID", raising=False)
    with Client(live_server.target) as client:
        run = open_run(client, project="p", name="a", hyperparameters={"learning_rate": 1e-3})
        assert run.info.hyperparameters == {"learning_rate": 1e-3}
        with pytest.raises(AlreadyExists):
            open_run(client, project="p", name="a")
        assert open_run(client, project="p", name="a", resume=True).id == run.id
        run.set_status("failed")
        # EVALSTREAM_RUN_ID wins over the name and sets the run running again.
        monkeypatch.setenv("EVALSTREAM_RUN_ID", run.id)
        resumed = open_run(client, project="p", name="another", run_options={"chunk_points": 8})
        assert (resumed.id, resumed.info.status) == (run.id, "running")
        with pytest.raises(ValueError, match=f"run {run.id} .*belongs to project 'p', not 'q'"):
            open_run(client, project="q", name="a")


def test_evaluation_scorer_records_the_checkpoint_in_the_background(live_server) -> None:
    images = [
        ImageBoxes("a", predictions=(Box(0, 0, 10, 10, "cup", 0.9),), ground_truth=()),
        ImageBoxes("b", predictions=(), ground_truth=(Box(0, 0, 10, 10, "cup"),)),
    ]
    with Client(live_server.target) as client:
        run = client.create_run("p", "scored")
        scorer = EvaluationScorer(run, background=True)
        future = scorer.score_boxes(200, images)
        scorer.wait(30)
        assert future.result().overall[0].f1.value == 0.0
        (step,) = run.evaluation_steps()
        assert (step.step, step.split, step.specimens) == (200, "validation", 2)
        # A refused scoring is raised by wait (once), not lost on the thread.
        scorer.score_boxes(-1, images)
        with pytest.raises(ValueError, match="checkpoint.step = -1"):
            scorer.wait(30)
        scorer.wait(30)
        scorer.close()


def test_split_options_sorts_client_and_run_options_and_refuses_unknown_names() -> None:
    client_options, run_options = split_options(
        None,
        {"token": "t", "timeout": 3.0, "chunk_points": 64, "alert_webhooks": ["https://h/x"]},
        owner="EvalstreamCallback",
    )
    assert client_options == {"token": "t", "timeout": 3.0}
    assert run_options == {"chunk_points": 64, "alert_webhooks": ["https://h/x"]}
    with pytest.raises(TypeError, match="EvalstreamCallback: unknown option 'bogus'"):
        split_options(None, {"bogus": 1}, owner="EvalstreamCallback")
    with Client("localhost:1") as given:
        assert split_options(given, {"on_full": "drop"}, owner="X") == ({}, {"on_full": "drop"})
        with pytest.raises(TypeError, match=r"X: client options \['token'\] given with a Client"):
            split_options(given, {"token": "t"}, owner="X")


def test_integrations_refuse_unknown_options_at_construction() -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("lightning")
    from evalstream.integrations.lightning import EvalstreamLogger
    from evalstream.integrations.transformers import EvalstreamCallback

    with pytest.raises(TypeError, match="EvalstreamCallback: unknown option 'bogus'"):
        EvalstreamCallback("localhost:1", project="p", bogus=1)
    with pytest.raises(TypeError, match="EvalstreamLogger: unknown option 'bogus'"):
        EvalstreamLogger("localhost:1", project="p", bogus=1)

"""One specimen across evaluation steps and runs, through a real server (RPCs and client).

The runs are evaluated by checkpoint-named scoring, which records every image as a
specimen and the batch's figures as the step's checkpoint metrics.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from evalstream import AsyncClient, Box, Client, ImageBoxes, errors
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

VALIDATION = common_pb2.SPLIT_VALIDATION
F1 = "bbox_f1@0.5"

CAT_GT = Box(10, 10, 50, 50, label="cat")
DOG_GT = Box(100, 100, 140, 140, label="dog")
CAT_HIT = Box(10, 10, 50, 50, label="cat", confidence=0.9)
DOG_HIT = Box(100, 100, 140, 140, label="dog", confidence=0.8)


def _images(cat_found: bool, dog_found: bool) -> list[ImageBoxes]:
    return [
        ImageBoxes("cat", predictions=(CAT_HIT,) if cat_found else (), ground_truth=(CAT_GT,)),
        ImageBoxes("dog", predictions=(DOG_HIT,) if dog_found else (), ground_truth=(DOG_GT,)),
    ]


# Run "a", by step: which of cat and dog are found. F1 at 0.5 worked by hand:
# one found, one missed: TP 1, FN 1, FP 0 -> 2 / (2 + 1) = 0.667; both found: 1.0.
# The best checkpoint by F1 (higher is better) is therefore step 200.
RUN_A = {100: (True, False), 200: (True, True), 300: (False, True)}
# Run "b" never evaluated step 200.
RUN_B = {100: (False, False), 300: (True, True)}


def _create(target: str, name: str, monitor: str = "") -> str:
    with Client(target) as client:
        config = {"monitor": monitor} if monitor else None
        return client.create_run("hist", name, verdict_config=config).id


@pytest.fixture
def runs(live_server) -> dict[str, str]:
    """Run a monitors F1 (its best checkpoint is 200); run b keeps the default monitor."""
    ids = {
        "a": _create(live_server.target, "a", monitor=f"validation/{F1}"),
        "b": _create(live_server.target, "b"),
    }
    with Client(live_server.target) as client:
        for name, plan in (("a", RUN_A), ("b", RUN_B)):
            run = client.get_run(ids[name])
            for step, found in plan.items():
                client.score_boxes(_images(*found), checkpoint=run.checkpoint(step))
    return ids


@pytest.fixture
def stub(live_server):
    with grpc.insecure_channel(live_server.target) as channel:
        yield runs_pb2_grpc.RunsStub(channel)


def _refusal(fn) -> tuple[grpc.StatusCode, list[str], str]:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    err = errors.from_grpc(info.value)
    return info.value.code(), [v.field for v in err.violations], info.value.details()


# ------------------------------------------------------------------ history


def test_history_is_every_step_by_step_with_scores_and_flags(live_server, runs) -> None:
    with Client(live_server.target) as client:
        history = client.get_run(runs["a"]).specimen_history("cat")
        assert [h.step for h in history] == [100, 200, 300]
        assert [h.specimen.specimen_id for h in history] == ["cat"] * 3
        assert [h.specimen.flags for h in history] == [(), (), ("missed_detection",)]
        assert [len(h.specimen.predicted_boxes) for h in history] == [1, 1, 0]
        assert history[0].specimen.ground_truth_boxes[0].label == "cat"
        # By "project/name", as every run argument takes.
        again = client.specimen_history("hist/a", "dog")
        assert [h.specimen.flags for h in again] == [("missed_detection",), (), ()]
        assert [h.step for h in client.specimen_history(runs["b"], "cat")] == [100, 300]


def test_history_async(live_server, runs) -> None:
    async def main() -> list[int]:
        async with AsyncClient(live_server.target) as client:
            run = await client.get_run(runs["a"])
            return [h.step for h in await run.specimen_history("dog")]

    assert asyncio.run(main()) == [100, 200, 300]


def test_history_unknown_specimen_is_not_found_naming_it(stub, runs) -> None:
    code, fields, details = _refusal(
        lambda: stub.GetSpecimenHistory(
            runs_pb2.GetSpecimenHistoryRequest(
                run_id=runs["a"], split=VALIDATION, specimen_id="bird"
            ),
            timeout=10,
        )
    )
    assert (code, fields) == (grpc.StatusCode.NOT_FOUND, ["specimen_id"])
    assert "'bird'" in details and "validation" in details
    # Recorded in validation only: the test split has no such specimen.
    code, fields, _ = _refusal(
        lambda: stub.GetSpecimenHistory(
            runs_pb2.GetSpecimenHistoryRequest(
                run_id=runs["a"], split=common_pb2.SPLIT_TEST, specimen_id="cat"
            ),
            timeout=10,
        )
    )
    assert (code, fields) == (grpc.StatusCode.NOT_FOUND, ["specimen_id"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"split": VALIDATION}, ["specimen_id"]),
        ({"specimen_id": "cat"}, ["split"]),
        ({}, ["split", "specimen_id"]),
    ],
)
def test_history_needs_a_split_and_a_specimen(stub, runs, fields, expected) -> None:
    code, got, _ = _refusal(
        lambda: stub.GetSpecimenHistory(
            runs_pb2.GetSpecimenHistoryRequest(run_id=runs["a"], **fields), timeout=10
        )
    )
    assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, expected)


def test_history_unknown_run_is_not_found(stub) -> None:
    code, _, _ = _refusal(
        lambda: stub.GetSpecimenHistory(
            runs_pb2.GetSpecimenHistoryRequest(run_id="r_nope", split=VALIDATION, specimen_id="x"),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------ compare


def test_compare_at_a_step_marks_the_run_without_it(live_server, runs) -> None:
    with Client(live_server.target) as client:
        a, b = client.compare_specimens([runs["a"], "hist/b"], "cat", step=200)
    assert (a.run_id, a.run_name, a.step, a.present) == (runs["a"], "a", 200, True)
    assert a.specimen is not None and a.specimen.flags == ()
    assert (b.run_name, b.step, b.present, b.specimen) == ("b", 200, False, None)
    assert b.note == "not recorded at step 200; recorded at step 100, 300"


def test_compare_best_is_the_verdicts_best_checkpoint(live_server, runs) -> None:
    with Client(live_server.target) as client:
        assert client.verdict(runs["a"]).early_stopping.best_step == 200
        a, b = client.compare_specimens([runs["a"], runs["b"]], "dog", best=True)
    # Run a: F1 1.0 at step 200 (worked above); there the dog is found.
    assert (a.step, a.present) == (200, True)
    assert a.specimen is not None and len(a.specimen.predicted_boxes) == 1
    assert a.note == (
        f"best checkpoint: validation/{F1} = 1 (highest is best) at step 200, "
        "as the run's verdict picks it"
    )
    # Run b monitors validation/loss, which it never logged: no best checkpoint.
    assert (b.present, b.specimen) == (False, None)
    assert b.note.startswith("no best checkpoint: the verdict's monitor validation/loss")


def test_compare_best_async(live_server, runs) -> None:
    async def main() -> list[tuple[int, bool]]:
        async with AsyncClient(live_server.target) as client:
            got = await client.compare_specimens([runs["a"], runs["b"]], "cat", best=True)
            return [(r.step, r.present) for r in got]

    assert asyncio.run(main()) == [(200, True), (0, False)]


def test_compare_best_without_checkpoint_metrics(live_server, runs) -> None:
    with Client(live_server.target) as client:
        bare = client.create_run("hist", "bare")
        bare.log(0, loss=1.0)
        bare.flush()
    # The specimen must exist in the run for it to be compared at all: record one
    # through the store directly (scoring would log checkpoint metrics with it).
    live_server.deps.store.record_specimens(bare.id, "validation", 5, [_record("cat")])
    with Client(live_server.target) as client:
        _, entry = client.compare_specimens([runs["a"], bare.id], "cat", best=True)
    assert (entry.present, entry.note) == (
        False,
        "no best checkpoint: the run has no checkpoint metrics",
    )


def _record(specimen_id: str):  # type: ignore[no-untyped-def]
    from evalstream_server.store import SpecimenRecord

    return SpecimenRecord(specimen_id)


def _compare(stub, **fields):  # type: ignore[no-untyped-def]
    return lambda: stub.CompareSpecimens(runs_pb2.CompareSpecimensRequest(**fields), timeout=10)


def test_compare_refusals_name_their_field(stub, runs) -> None:
    a, b = runs["a"], runs["b"]
    ok = {"split": VALIDATION, "specimen_id": "cat", "step": 100}
    cases = [
        (dict(ok, run_ids=[a]), grpc.StatusCode.INVALID_ARGUMENT, ["run_ids"]),
        (
            dict(ok, run_ids=[f"r{i}" for i in range(21)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            ["run_ids"],
        ),
        (dict(ok, run_ids=[a, b, a]), grpc.StatusCode.INVALID_ARGUMENT, ["run_ids[2]"]),
        (
            {"run_ids": [a, b], "split": VALIDATION, "specimen_id": "cat"},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["at"],
        ),
        (
            {"run_ids": [a, b], "split": VALIDATION, "specimen_id": "cat", "best": False},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["at"],
        ),
        (dict(ok, run_ids=[a, b], step=-1), grpc.StatusCode.INVALID_ARGUMENT, ["step"]),
        (
            dict(ok, run_ids=[a, b], specimen_id=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            ["specimen_id"],
        ),
        (dict(ok, run_ids=[a, b], split=0), grpc.StatusCode.INVALID_ARGUMENT, ["split"]),
        (dict(ok, run_ids=[a, "r_nope"]), grpc.StatusCode.NOT_FOUND, ["run_ids[1]"]),
        (dict(ok, run_ids=[b, a], specimen_id="bird"), grpc.StatusCode.NOT_FOUND, ["specimen_id"]),
    ]
    for fields, code, expected in cases:
        got_code, got_fields, details = _refusal(_compare(stub, **fields))
        assert (got_code, got_fields) == (code, expected), fields
    # The message names the run and the specimen, and where to look.
    _, _, details = _refusal(_compare(stub, **dict(ok, run_ids=[b, a], specimen_id="bird")))
    assert "no run of the 2 listed" in details and "'bird'" in details and "GetSpecimens" in details


def test_compare_answers_a_run_that_never_recorded_the_specimen_as_absent(
    live_server, runs
) -> None:
    """Only the runs given that recorded it show it; the others say why they do not."""
    with Client(live_server.target) as client:
        other = client.create_run("hist", "c")
        client.score_boxes([_images(True, True)[1]], checkpoint=other.checkpoint(200))  # dog only
        got = client.compare_specimens([runs["a"], other.id], "cat", step=200)
    assert [e.present for e in got] == [True, False]
    assert got[1].specimen is None and got[1].step == 200
    assert "never recorded specimen 'cat' in the validation split" in got[1].note


def test_client_compare_needs_exactly_one_of_step_and_best(live_server, runs) -> None:
    with Client(live_server.target) as client:
        for kwargs in ({}, {"step": 100, "best": True}):
            with pytest.raises(ValueError, match="exactly one of step"):
                client.compare_specimens([runs["a"], runs["b"]], "cat", **kwargs)
        with pytest.raises(TypeError, match="sequence of runs"):
            client.compare_specimens(runs["a"], "cat", step=1)  # type: ignore[arg-type]

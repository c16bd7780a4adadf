"""GetCurves by step range and page, end to end (real server, port 0), and run.curves()."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from evalstream import Client
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

TRAIN, VALIDATION = common_pb2.SPLIT_TRAIN, common_pb2.SPLIT_VALIDATION


@pytest.fixture
def stub(live_server):
    limit = 64 * 1024 * 1024  # as the client's channel: answers of up to 1M points fit
    options = [("grpc.max_receive_message_length", limit)]
    with grpc.insecure_channel(live_server.target, options=options) as channel:
        yield runs_pb2_grpc.RunsStub(channel)


def _run(stub) -> str:
    return stub.CreateRun(runs_pb2.CreateRunRequest(project="p", name="r"), timeout=10).id


def _write(stub, run_id: str, steps, values, *, split=TRAIN, series="loss", per=250_000) -> None:
    """Streams the points in chunks of ``per`` (each LossChunk well under the message limit)."""
    steps, values = np.asarray(steps), np.asarray(values)
    chunks = [
        runs_pb2.LossChunk(
            sequence=i + 1,
            run_id=run_id,
            split=split,
            series=series,
            steps=steps[a : a + per].tolist(),
            values=values[a : a + per].tolist(),
        )
        for i, a in enumerate(range(0, len(steps), per))
    ]
    acks = list(stub.StreamLoss(iter(chunks), timeout=60))
    assert all(a.accepted for a in acks)


def _violation(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    fields = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        detail.Unpack(bad)
        fields += [v.field for v in bad.field_violations]
    return fields


def _refused(stub, code: grpc.StatusCode, **fields) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetCurves(runs_pb2.GetCurvesRequest(**fields), timeout=10)
    assert info.value.code() == code, info.value.details()
    return info.value


def test_two_and_a_half_million_points_read_back_bit_for_bit(live_server, stub) -> None:
    # 2.5M points: one GetCurves message would hold ~45 MB of steps and values and the
    # request of every point was refused past 1M; run.curves() pages and glues them.
    run_id = _run(stub)
    n = 2_500_000
    rng = np.random.default_rng(7)
    values = rng.standard_normal(n) * 1e3
    values[[3, 1_000_000, n - 1]] = [np.inf, -0.0, 5e-324]
    _write(stub, run_id, np.arange(n), values)
    err = _refused(stub, grpc.StatusCode.FAILED_PRECONDITION, run_id=run_id)
    assert err.details().startswith("2,500,000 points in the range asked for")
    with Client(live_server.target) as client:
        (loss,) = client.get_run(run_id).curves()
    assert loss.total_points == n and len(loss.steps) == n
    assert np.array_equal(np.asarray(loss.steps), np.arange(n))
    assert np.array_equal(np.asarray(loss.values).view(np.int64), values.view(np.int64))


def test_pages_cross_series_and_glue_back(stub) -> None:
    run_id = _run(stub)
    _write(stub, run_id, range(0, 70, 10), np.arange(7.0))  # train/loss: 7 points
    _write(stub, run_id, range(5), np.arange(5.0) + 0.5, series="lr")  # train/lr: 5
    _write(stub, run_id, [100, 200], [9.0, 8.0], split=VALIDATION)  # validation/loss: 2
    stub.LogCheckpoint(
        runs_pb2.LogCheckpointRequest(
            run_id=run_id, split=VALIDATION, step=100, metrics={"f1": 0.5}
        ),
        timeout=10,
    )
    pages, token = [], ""
    while True:
        reply = stub.GetCurves(
            runs_pb2.GetCurvesRequest(run_id=run_id, page_size=4, page_token=token), timeout=10
        )
        pages.append([(s.split, s.name, list(s.steps)) for s in reply.series])
        assert sum(len(s.steps) for s in reply.series) <= 4
        assert len(reply.checkpoint_metrics) == (1 if not token else 0)  # first page only
        token = reply.next_page_token
        if not token:
            break
    # 14 points in pages of 4, series in split then name order, running on into the next page.
    assert pages == [
        [(TRAIN, "loss", [0, 10, 20, 30])],
        [(TRAIN, "loss", [40, 50, 60]), (TRAIN, "lr", [0])],
        [(TRAIN, "lr", [1, 2, 3, 4])],
        [(VALIDATION, "loss", [100, 200])],
    ]


def test_page_token_is_bound_to_its_request(stub) -> None:
    run_id = _run(stub)
    _write(stub, run_id, range(10), np.arange(10.0))
    first = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id, page_size=3), timeout=10)
    token = first.next_page_token
    assert token and list(first.series[0].steps) == [0, 1, 2]
    second = stub.GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run_id, page_size=3, page_token=token), timeout=10
    )
    assert list(second.series[0].steps) == [3, 4, 5]
    other_run = stub.CreateRun(runs_pb2.CreateRunRequest(project="p", name="o"), timeout=10).id
    for fields in (
        {"run_id": run_id, "page_size": 4, "page_token": token},  # another page size
        {"run_id": run_id, "page_size": 3, "page_token": token, "end_step": 8},  # another range
        {"run_id": run_id, "page_size": 3, "page_token": token, "splits": [TRAIN]},
        {"run_id": other_run, "page_size": 3, "page_token": token},  # another run
        {"run_id": run_id, "page_size": 3, "page_token": token[:-3] + "xyz"},  # garbled
        {"run_id": run_id, "page_size": 3, "page_token": "not a token"},
        {"run_id": run_id, "page_token": token},  # not paged at all
    ):
        err = _refused(stub, grpc.StatusCode.INVALID_ARGUMENT, **fields)
        assert _violation(err) == ["page_token"], fields
        assert "from another request" in err.details()


def test_ranges_are_inclusive_and_checkpoints_cut(stub) -> None:
    run_id = _run(stub)
    _write(stub, run_id, range(100), np.arange(100.0) * 2)
    for step in (10, 50, 90):
        stub.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id=run_id, split=VALIDATION, step=step, metrics={"f1": step / 100}
            ),
            timeout=10,
        )
    reply = stub.GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run_id, start_step=40, end_step=59), timeout=10
    )
    (s,) = reply.series
    assert list(s.steps) == list(range(40, 60)) and list(s.values) == [
        2.0 * i for i in range(40, 60)
    ]
    assert s.total_points == 20
    (f1,) = reply.checkpoint_metrics
    assert list(f1.steps) == [50]
    only_end = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id, end_step=2), timeout=10)
    assert list(only_end.series[0].steps) == [0, 1, 2]
    only_start = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id, start_step=97), timeout=10)
    assert list(only_start.series[0].steps) == [97, 98, 99]
    past = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id, start_step=500), timeout=10)
    assert [len(s.steps) for s in past.series] == [0]
    # start_step 0 is a bound, not "unset": optional fields tell them apart.
    zero = stub.GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run_id, start_step=0, end_step=0), timeout=10
    )
    assert list(zero.series[0].steps) == [0]


def test_downsampling_within_a_range_keeps_its_spike(stub) -> None:
    run_id = _run(stub)
    n = 200_000
    values = np.linspace(3.0, 0.5, n)
    values[123_457] = 40.0  # inside the zoom
    values[10] = 99.0  # outside it
    _write(stub, run_id, np.arange(n), values)
    (s,) = stub.GetCurves(
        runs_pb2.GetCurvesRequest(
            run_id=run_id, start_step=120_000, end_step=129_999, max_points=200
        ),
        timeout=10,
    ).series
    assert 2 <= len(s.steps) <= 200 and s.total_points == 10_000
    assert s.steps[0] == 120_000 and s.steps[-1] == 129_999
    assert 123_457 in s.steps and max(s.values) == 40.0


def test_bad_requests_name_their_field(stub) -> None:
    run_id = _run(stub)
    bad = grpc.StatusCode.INVALID_ARGUMENT
    err = _refused(stub, bad, run_id=run_id, start_step=10, end_step=5)
    assert _violation(err) == ["start_step"] and "after end_step 5" in err.details()
    assert _violation(_refused(stub, bad, run_id=run_id, start_step=-1)) == ["start_step"]
    assert _violation(_refused(stub, bad, run_id=run_id, end_step=-2)) == ["end_step"]
    err = _refused(stub, bad, run_id=run_id, max_points=100, page_size=10)
    assert _violation(err) == ["max_points"] and "not both" in err.details()
    assert _violation(_refused(stub, bad, run_id=run_id, page_size=-1)) == ["page_size"]
    assert _violation(_refused(stub, bad, run_id=run_id, page_size=1_000_001)) == ["page_size"]
    _refused(stub, grpc.StatusCode.NOT_FOUND, run_id="r_missing", page_size=10)


def test_too_many_points_for_one_answer_says_what_to_do(stub) -> None:
    run_id = _run(stub)
    _write(stub, run_id, np.arange(700_000), np.zeros(700_000))
    _write(stub, run_id, np.arange(400_000), np.ones(400_000), split=VALIDATION)
    err = _refused(stub, grpc.StatusCode.FAILED_PRECONDITION, run_id=run_id)
    text = err.details()
    assert "1,100,000 points in the range asked for, more than one answer holds (1,000,000)" in text
    for hint in ("page_size", "page_token", "max_points", "ExportCurves", "runs export"):
        assert hint in text
    # Each alone fits, and so does the whole when downsampled or narrowed.
    (one,) = stub.GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run_id, splits=[TRAIN]), timeout=30
    ).series
    assert one.total_points == 700_000
    narrow = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id, end_step=399_999), timeout=30)
    assert [s.total_points for s in narrow.series] == [400_000, 400_000]


def test_client_checks_its_arguments(live_server) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(ValueError, match="start_step 9 is after end_step 3"):
            client.curves("r", start_step=9, end_step=3)
        with pytest.raises(ValueError, match="end_step -1 is negative"):
            client.curves("r", end_step=-1)
        with pytest.raises(ValueError, match="max_points 1"):
            client.curves("r", max_points=1)
        with pytest.raises(ValueError, match="max_points -5"):
            client.curves("r", max_points=-5)
        with pytest.raises(TypeError, match="start_step must be an int"):
            client.curves("r", start_step=1.5)  # type: ignore[arg-type]


def test_client_reads_ranges_paged_and_downsampled(live_server, stub, monkeypatch) -> None:
    from evalstream import _curves

    monkeypatch.setattr(_curves, "PAGE_SIZE", 7)  # many pages over a few points
    run_id = _run(stub)
    _write(stub, run_id, range(50), np.arange(50.0))
    _write(stub, run_id, range(0, 50, 5), np.arange(10.0), series="lr")
    with Client(live_server.target) as client:
        run = client.get_run(run_id)
        whole = {s.name: s for s in run.curves()}
        part = {s.name: s for s in run.curves(start_step=12, end_step=31)}
        (small,) = run.curves(series=["loss"], max_points=10, start_step=10)
    assert whole["loss"].steps == tuple(range(50)) and whole["lr"].steps == tuple(range(0, 50, 5))
    assert part["loss"].steps == tuple(range(12, 32)) and part["loss"].total_points == 20
    assert part["lr"].steps == (15, 20, 25, 30) and part["lr"].values == (3.0, 4.0, 5.0, 6.0)
    assert len(small.steps) <= 10 and small.steps[0] == 10 and small.steps[-1] == 49
    assert small.total_points == 40


def test_async_run_reads_ranges_paged(live_server, stub, monkeypatch) -> None:
    import asyncio

    from evalstream import AsyncClient, _curves

    monkeypatch.setattr(_curves, "PAGE_SIZE", 3)
    run_id = _run(stub)
    _write(stub, run_id, range(20), np.arange(20.0))

    async def read() -> tuple[tuple[int, ...], tuple[int, ...]]:
        async with AsyncClient(live_server.target) as client:
            run = await client.get_run(run_id)
            (whole,) = await run.curves()
            (part,) = await run.curves(start_step=4, end_step=11, max_points=0)
            return whole.steps, part.steps

    whole, part = asyncio.run(read())
    assert whole == tuple(range(20)) and part == tuple(range(4, 12))


@pytest.mark.parametrize("live_server", [{"max_message_bytes": 1024 * 1024}], indirect=True)
def test_pages_shrink_to_the_servers_message_limit(live_server, stub) -> None:
    # --max-message-bytes 1 MiB: a page holds at most 20,164 points (half the limit at
    # 26 bytes a point) whatever page_size asks, and the client glues the smaller pages.
    run_id = _run(stub)
    n = 100_000
    _write(stub, run_id, np.arange(n) * 1_000_000_007, np.arange(n) * 0.25, per=20_000)
    reply = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id, page_size=n), timeout=30)
    assert len(reply.series[0].steps) == 20_164 and reply.next_page_token
    err = _refused(stub, grpc.StatusCode.FAILED_PRECONDITION, run_id=run_id)
    assert "100,000 points in the range asked for, more than one answer holds (20,164)" in (
        err.details()
    )
    with Client(live_server.target) as client:
        (loss,) = client.curves(run_id)
    assert loss.steps == tuple(range(0, n * 1_000_000_007, 1_000_000_007))
    assert loss.values == tuple(np.arange(n) * 0.25)


def test_client_pages_fit_its_own_message_limit(live_server, stub) -> None:
    # Client(max_message_bytes=1 MiB) asks for pages of 20,164 points, not 500,000.
    run_id = _run(stub)
    n = 100_000  # ~1.5 MB in one answer: 7-byte steps and 8-byte values
    steps = np.arange(n) * 1_000_000_007
    _write(stub, run_id, steps, np.arange(n) * 0.5)
    with Client(live_server.target, max_message_bytes=1024 * 1024) as client:
        (loss,) = client.curves(run_id)
    assert loss.steps == tuple(steps.tolist()) and loss.values == tuple(np.arange(n) * 0.5)

"""ExportCurves end to end: every point of a run, in each format, read back bit for bit.

The reference is GetCurves (`run.curves()`, every point in one message, fine at
these sizes); the server's windows and messages are made tiny so that a series
spans many of both, rewrites straddling their bounds.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import struct
import threading
import time

import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest
from evalstream import AsyncClient, Client, Point, errors
from evalstream.cli import main
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from evalstream_server.api import export
from evalstream_server.store import PointChunk, SQLiteStore


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _key(split: str, name: str, step: int, value: float, wall: float | None) -> tuple:
    """A point, comparable bit for bit (every NaN the same; no wall time as None)."""
    v = "nan" if math.isnan(value) else _bits(value)
    w = None if wall is None or math.isnan(wall) else _bits(wall)
    return (split, name, step, v, w)


def _expected(run, *, splits=(), series=(), lo=None, hi=None) -> list[tuple]:
    out = []
    for s in run.curves():
        if (splits and s.split not in splits) or (series and s.name not in series):
            continue
        walls = s.wall_times or (None,) * len(s.steps)
        for step, value, wall in zip(s.steps, s.values, walls, strict=True):
            if (lo is None or step >= lo) and (hi is None or step <= hi):
                out.append(_key(s.split, s.name, step, value, wall))
    return out


@pytest.fixture
def small_windows(monkeypatch):
    monkeypatch.setattr(export, "WINDOW_POINTS", 64)
    monkeypatch.setattr(export, "MESSAGE_POINTS", 50)


@pytest.fixture
def run(live_server, small_windows):
    """A run of several series: NaN and infinities, some wall times, overlapping rewrites."""
    store = live_server.deps.store
    with Client(live_server.target) as client:
        r = client.create_run("p", "export")
        rng = np.random.default_rng(7)

        def write(split, name, steps, values, walls=None):
            store.write_points(
                PointChunk(r.id, split, name, np.asarray(steps), np.asarray(values), walls)
            )

        values = rng.normal(size=1000)
        values[[5, 77, 500]] = [np.nan, np.inf, -np.inf]
        values[9] = -0.0
        for at in range(0, 1000, 100):  # chunks in step order
            write("train", "loss", np.arange(at, at + 100), values[at : at + 100])
        write("train", "loss", np.arange(450, 620), rng.normal(size=170))  # a rewrite
        write("train", "loss", np.array([3, 999, 5000]), np.array([1.5, np.nan, 2.5]))  # sparse
        walls = 1.7e9 + np.arange(300) * 0.25
        walls[10] = np.nan  # this point was logged without one
        write("train", 'lr "peak",x', np.arange(0, 600, 2), rng.random(300) * 1e-3, walls)
        write("train", 'lr "peak",x', np.arange(100, 140), rng.random(40))  # rewrite, no walls
        write("validation", "loss", np.array([0, 2**62, 2**63 - 1]), np.array([5e-324, 1e300, 0.0]))
        write("test", "acc", [10], [0.75])
        yield r


def _csv_points(text: bytes) -> list[tuple]:
    rows = list(csv.reader(io.StringIO(text.decode(), newline="")))
    assert rows[0] == ["split", "series", "step", "wall_time", "value"]
    return [_key(a, b, int(c), float(e), float(d) if d else None) for a, b, c, d, e in rows[1:]]


def _jsonl_points(text: bytes) -> list[tuple]:
    out = []
    for line in text.decode().splitlines():
        row = json.loads(line)
        wall = row["wall_time"]
        out.append(
            _key(
                row["split"], row["series"], row["step"], float(row["value"]), wall and float(wall)
            )
        )
    return out


def test_export_each_format_matches_curves_bit_for_bit(live_server, run, tmp_path) -> None:
    want = _expected(run)
    assert len(want) == 1001 + 300 + 20 + 3 + 1  # loss, lr (+ its odd rewrites), val, test
    with Client(live_server.target) as client:
        got = [_key(p.split, p.series, p.step, p.value, p.wall_time) for p in run.iter_points()]
        assert got == want
        buf = io.BytesIO()
        assert client.export(run.id, buf) == len(want)
        assert _csv_points(buf.getvalue()) == want
        buf = io.BytesIO()
        assert client.export(run.id, buf, format="jsonl") == len(want)
        assert _jsonl_points(buf.getvalue()) == want
        with open(tmp_path / "p.parquet", "wb") as f:
            assert client.export(run.id, f, format="parquet") == len(want)
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [
        _key(*(r[k] for k in ("split", "series", "step", "value", "wall_time"))) for r in table
    ] == want
    schema = pq.read_schema(tmp_path / "p.parquet")
    assert str(schema.field("step").type) == "int64"
    assert str(schema.field("series").type) == "dictionary<values=string, indices=int32, ordered=0>"


def test_export_ranges_and_filters(live_server, run) -> None:
    with Client(live_server.target) as client:
        cases = [
            {"start_step": 100, "end_step": 130},
            {"start_step": 990},
            {"end_step": 3},
            {"splits": ["validation"], "start_step": 2**62},
            {"series": ["loss"], "splits": ["train"], "start_step": 449, "end_step": 621},
            {"series": ["nothing"]},
            {"start_step": 6000},
        ]
        for case in cases:
            lo, hi = case.get("start_step"), case.get("end_step")
            want = _expected(
                run, splits=case.get("splits", ()), series=case.get("series", ()), lo=lo, hi=hi
            )
            got = [
                _key(p.split, p.series, p.step, p.value, p.wall_time)
                for p in run.iter_points(**case)
            ]
            assert got == want, case
            buf = io.BytesIO()
            client.export(run.id, buf, **case)
            assert _csv_points(buf.getvalue()) == want, case
        # A run given by project/name.
        assert sum(1 for _ in client.iter_points("p/export", series=["acc"])) == 1


def test_export_async_twins(live_server, run) -> None:
    async def main_() -> tuple[list[Point], bytes]:
        async with AsyncClient(live_server.target) as client:
            handle = await client.get_run(run.id)
            points = [p async for p in handle.iter_points(splits=["validation"])]
            buf = io.BytesIO()
            await client.export(run.id, buf, format="jsonl", series=["acc"])
            return points, buf.getvalue()

    points, text = asyncio.run(main_())
    assert [p.step for p in points] == [0, 2**62, 2**63 - 1]
    assert _jsonl_points(text) == _expected(run, series=["acc"])


def test_export_messages_are_bounded(live_server) -> None:
    """Each message holds at most MESSAGE_POINTS points and a few MB, whatever the series."""
    store = live_server.deps.store
    with Client(live_server.target) as client:
        r = client.create_run("p", "big")
        n = 300_000
        for at in range(0, n, 100_000):
            store.write_points(
                PointChunk(
                    r.id, "train", "x" * 128, np.arange(at, at + 100_000), np.random.rand(100_000)
                )
            )
        # A name JSON escapes to six bytes a character (\u0001), and CSV quotes.
        control = PointChunk(r.id, "test", '\x01"' * 64, np.arange(20_000), np.random.rand(20_000))
        store.write_points(control)
        n += 20_000
    with grpc.insecure_channel(live_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        for fmt in (
            runs_pb2.EXPORT_FORMAT_POINTS,
            runs_pb2.EXPORT_FORMAT_CSV,
            runs_pb2.EXPORT_FORMAT_JSONL,
        ):
            replies = list(
                stub.ExportCurves(runs_pb2.ExportCurvesRequest(run_id=r.id, format=fmt), timeout=60)
            )
            assert replies[0].estimated_points == n
            assert sum(m.points for m in replies) == n
            assert max(m.points for m in replies) <= export.MESSAGE_POINTS
            assert max(m.ByteSize() for m in replies) <= 5 << 20, fmt


def test_a_slow_client_holds_the_server_back(live_server, monkeypatch) -> None:
    """The server reads a window only when the previous messages were taken: a client
    that stops reading stops the export's reads (memory stays bounded)."""
    store = live_server.deps.store
    with Client(live_server.target) as client:
        r = client.create_run("p", "slow")
        for at in range(0, 2_000_000, 50_000):
            store.write_points(
                PointChunk(
                    r.id, "train", "loss", np.arange(at, at + 50_000), np.random.rand(50_000)
                )
            )
    reads = []
    real = SQLiteStore.read_series

    def counted(self, *args, **kwargs):
        reads.append(time.monotonic())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SQLiteStore, "read_series", counted)
    monkeypatch.setattr(export, "WINDOW_POINTS", 65_536)
    with grpc.insecure_channel(live_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        call = stub.ExportCurves(
            runs_pb2.ExportCurvesRequest(run_id=r.id, format=runs_pb2.EXPORT_FORMAT_CSV), timeout=60
        )
        next(call)
        next(call)
        time.sleep(1.5)  # the client reads nothing
        held = len(reads)
        rest = sum(m.points for m in call)
    windows = len(reads)
    assert windows == 20  # 2M points in windows of two chunks (64k points or more)
    print(f"{held} of {windows} windows read while the client read nothing")
    assert held <= 6, f"{held} of {windows} windows read while the client read nothing"
    assert rest > 1_500_000


def test_export_bad_input(live_server, run) -> None:
    with grpc.insecure_channel(live_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)

        def refusal(**fields):
            with pytest.raises(grpc.RpcError) as info:
                list(stub.ExportCurves(runs_pb2.ExportCurvesRequest(**fields), timeout=10))
            return info.value.code(), errors.from_grpc(info.value)

        code, err = refusal(run_id=run.id, splits=[common_pb2.SPLIT_TRAIN, 9])
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in err.violations] == ["splits[1]"]
        code, err = refusal(run_id=run.id, start_step=10, end_step=9)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in err.violations] == ["start_step"]
        assert "after end_step 9" in err.message
        code, err = refusal(run_id=run.id, start_step=-1)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in err.violations] == ["start_step"]
        code, err = refusal(run_id=run.id, format=17)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in err.violations] == ["format"]
        code, _ = refusal(run_id="r_0000000000000000")
        assert code == grpc.StatusCode.NOT_FOUND
    with Client(live_server.target) as client:
        with pytest.raises(ValueError, match="after end_step"):
            list(client.iter_points(run.id, start_step=5, end_step=4))
        with pytest.raises(ValueError, match="not one of csv, jsonl, parquet"):
            client.export(run.id, io.BytesIO(), format="xml")
        with pytest.raises(errors.NotFound):
            list(client.iter_points("r_0000000000000000"))


def test_cli_export(live_server, run, tmp_path, capsys) -> None:
    tmp_path = tmp_path / "out"  # beside the server's data
    tmp_path.mkdir()
    target = ["--target", live_server.target]
    out = io.StringIO()
    assert main([*target, "runs", "export", run.id, "--series", "acc"], out=out) == 0
    assert out.getvalue() == "split,series,step,wall_time,value\ntest,acc,10,,0.75\n"
    path = tmp_path / "all.jsonl"
    out = io.StringIO()
    assert (
        main([*target, "runs", "export", "p/export", "--format", "jsonl", "-o", str(path)], out=out)
        == 0
    )
    want = _expected(run)
    assert _jsonl_points(path.read_bytes()) == want
    assert f"{len(want)} points written to {path}" in out.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["all.jsonl"]  # no temporary file left
    path = tmp_path / "some.parquet"
    argv = [*target, "runs", "export", run.id, "--format", "parquet", "-o", str(path)]
    assert (
        main(
            [*argv, "--split", "validation", "--start-step", "1", "--json"],
            out=(out := io.StringIO()),
        )
        == 0
    )
    assert json.loads(out.getvalue()) == {"file": str(path), "points": 2}
    assert pq.read_table(path).column("step").to_pylist() == [2**62, 2**63 - 1]
    # Usage errors exit 2, server refusals 1; a failed export leaves no file behind.
    capsys.readouterr()
    assert main([*target, "runs", "export", run.id, "--start-step", "5", "--end-step", "4"]) == 2
    assert "--start-step 5 is after --end-step 4" in capsys.readouterr().err
    assert main([*target, "runs", "export", run.id, "--format", "parquet"]) == 2
    assert "needs -o FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([*target, "runs", "export", run.id, "--split", "dev"])
    assert exit_.value.code == 2
    missing = tmp_path / "missing.csv"
    assert main([*target, "runs", "export", "r_0000000000000000", "-o", str(missing)]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert not missing.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "all.jsonl",
        "some.parquet",
    ]


def test_cli_parquet_without_pyarrow_names_the_extra(
    live_server, run, tmp_path, monkeypatch, capsys
) -> None:
    tmp_path = tmp_path / "out"  # beside the server's data
    tmp_path.mkdir()
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    code = main(
        [
            "--target",
            live_server.target,
            "runs",
            "export",
            run.id,
            "--format",
            "parquet",
            "-o",
            str(tmp_path / "x.parquet"),
        ]
    )
    assert code == 2
    assert "pip install 'evalstream[parquet]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_keeps_the_event_loop_serving(live_server, run, monkeypatch) -> None:
    """Windows are read and formatted in the handler pool: other calls are answered meanwhile."""
    gate = threading.Event()
    real = export._messages

    def slow(data, fmt):
        gate.wait(10)
        yield from real(data, fmt)

    monkeypatch.setattr(export, "_messages", slow)
    counted: list[int] = []
    with Client(live_server.target) as client:
        stream = client.iter_points(run.id)
        worker = threading.Thread(target=lambda: counted.append(sum(1 for _ in stream)))
        worker.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert client.get_run(run.id).id == run.id
        assert time.monotonic() - started < 2
        gate.set()
        worker.join(20)
        assert not worker.is_alive()
    assert counted == [len(_expected(run))]

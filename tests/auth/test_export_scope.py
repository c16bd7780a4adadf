"""ExportCurves under project scopes: another project's run is NOT_FOUND, as a missing one."""

from __future__ import annotations

import io

import grpc
import pytest
from evalstream import Client, errors
from evalstream.cli import main
from evalstream.v1 import runs_pb2, runs_pb2_grpc


def test_export_of_another_projects_run_is_not_found(auth_server, tokens) -> None:
    with Client(auth_server.target, token=tokens["admin"]) as admin:
        a = admin.create_run("proj-a", "run-a")
        b = admin.create_run("proj-b", "run-b")
        for run in (a, b):
            run.log(0, loss=1.0)
            run.finish()
    md = (("authorization", f"Bearer {tokens['reader-a']}"),)
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        for fmt in (runs_pb2.EXPORT_FORMAT_POINTS, runs_pb2.EXPORT_FORMAT_CSV):
            with pytest.raises(grpc.RpcError) as info:
                list(
                    stub.ExportCurves(
                        runs_pb2.ExportCurvesRequest(run_id=b.id, format=fmt), metadata=md
                    )
                )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert info.value.details() == f"run {b.id!r} not found"  # as a missing run's
        own = list(stub.ExportCurves(runs_pb2.ExportCurvesRequest(run_id=a.id), metadata=md))
        assert sum(m.points for m in own) == 1
    with Client(auth_server.target, token=tokens["reader-a"]) as reader:
        with pytest.raises(errors.NotFound):
            list(reader.iter_points(b.id))
    out = io.StringIO()
    argv = ["--target", auth_server.target, "--token", tokens["reader-a"], "runs", "export"]
    assert main([*argv, b.id], out=out) == 1
    assert main([*argv, a.id], out=out) == 0
    header, row, end = out.getvalue().split("\n")
    assert (header, end) == ("split,series,step,wall_time,value", "")
    split, series, step, wall, value = row.split(",")
    assert (split, series, step, value) == ("train", "loss", "0", "1.0")
    assert float(wall) > 1.7e9  # run.log stamps the wall time

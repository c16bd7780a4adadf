"""The server's standard surfaces: health, reflection, Prometheus, logs, UNIMPLEMENTED."""

from __future__ import annotations

import json
import logging
import urllib.request

import grpc
import pytest
from evalstream import Client, ImageBoxes, errors
from evalstream_server.observability import JsonFormatter
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import generate_latest

from .test_score_boxes import IMAGE_A, IMAGE_B

SERVICES = ("evalstream.v1.Scoring", "evalstream.v1.Runs")


@pytest.mark.parametrize("service", ["", *SERVICES])
def test_health_is_serving(live_server, service: str) -> None:
    with grpc.insecure_channel(live_server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with Client(live_server.target) as client:
        assert client.health(service) == "SERVING"


def test_health_of_unknown_service_is_not_found(live_server) -> None:
    with Client(live_server.target) as client, pytest.raises(errors.NotFound):
        client.health("no.such.Service")


def test_health_flips_to_not_serving_at_shutdown(live_server) -> None:
    live_server.deps.health.enter_graceful_shutdown()
    with Client(live_server.target) as client:
        assert client.health() == "NOT_SERVING"
        assert client.health("evalstream.v1.Scoring") == "NOT_SERVING"


def _reflect(
    target: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))


def test_reflection_lists_and_describes_every_service(live_server) -> None:
    listed = _reflect(live_server.target, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert set(SERVICES) <= names
    assert "grpc.health.v1.Health" in names
    for service, methods in (
        ("evalstream.v1.Scoring", {"ScoreText", "ScoreBoxes"}),
        (
            "evalstream.v1.Runs",
            {
                "CreateRun",
                "GetRun",
                "ListRuns",
                "ListProjects",
                "SetRunStatus",
                "UpdateRun",
                "StreamLoss",
                "LogCheckpoint",
                "GetCurves",
                "ExportCurves",
                "GetVerdict",
                "WatchVerdict",
                "CompareRuns",
                "ListEvaluationSteps",
                "GetSpecimens",
                "GetSpecimenHistory",
                "CompareSpecimens",
            },
        ),
    ):
        reply = _reflect(
            live_server.target,
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=service),
        )
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto
        ]
        found = {
            m.name
            for f in files
            for s in f.service
            if f"{f.package}.{s.name}" == service
            for m in s.method
        }
        assert found == methods


def test_prometheus_endpoint_counts_rpcs_and_items(live_server) -> None:
    _server, port = live_server.deps.metrics.serve_http("127.0.0.1", 0)
    try:
        with Client(live_server.target) as client:
            client.score_boxes([IMAGE_A, IMAGE_B])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        _server.shutdown()
    labels = 'grpc_method="ScoreBoxes",grpc_service="evalstream.v1.Scoring",grpc_type="bidi_stream"'
    assert f"evalstream_grpc_server_started_total{{{labels}}} 1.0" in text
    assert f'evalstream_grpc_server_handled_total{{grpc_code="OK",{labels}}} 1.0' in text
    assert f"evalstream_grpc_server_msg_received_total{{{labels}}} 1.0" in text
    assert f"evalstream_grpc_server_msg_sent_total{{{labels}}} 1.0" in text
    assert f"evalstream_grpc_server_in_flight{{{labels}}} 0.0" in text
    assert f"evalstream_grpc_server_handling_seconds_count{{{labels}}} 1.0" in text
    assert 'evalstream_items_scored_total{family="boxes"} 6.0' in text  # 3 + 2 in A, 1 in B
    assert 'evalstream_items_scored_total{family="box_images"} 2.0' in text
    assert "process_cpu_seconds_total" in text
    assert "evalstream_bertscore_batcher_queue_depth 0.0" in text
    assert "evalstream_bertscore_batcher_oom_retries_total 0.0" in text


def test_one_log_line_per_rpc_without_payloads(
    live_server, caplog: pytest.LogCaptureFixture
) -> None:
    secret_id = "image-id-that-must-not-be-logged"
    with caplog.at_level(logging.INFO, logger="evalstream.rpc"):
        with Client(live_server.target) as client:
            client.score_boxes([ImageBoxes(secret_id, IMAGE_A.predictions, IMAGE_A.ground_truth)])
    records = [r for r in caplog.records if r.name == "evalstream.rpc"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["method"] == "/evalstream.v1.Scoring/ScoreBoxes"
    assert line["code"] == "OK"
    assert line["duration_ms"] >= 0
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    assert secret_id not in json.dumps(line)


@pytest.mark.parametrize("live_server", [{"max_concurrent_rpcs": 2}], indirect=True)
def test_over_the_limit_is_resource_exhausted_fast_while_health_answers(live_server) -> None:
    import threading
    import time

    release = threading.Event()
    opened = threading.Barrier(3)

    def hold() -> None:
        def batches():
            yield [IMAGE_A]
            opened.wait(10)
            release.wait(20)

        with Client(live_server.target) as client:
            for _ in client.stream_boxes(batches()):
                pass

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        opened.wait(10)
        with Client(live_server.target) as client:
            start = time.perf_counter()
            with pytest.raises(errors.ResourceExhausted):
                client.score_boxes([IMAGE_A])
            assert time.perf_counter() - start < 1.0
            assert client.health() == "SERVING"
    finally:
        release.set()
        for t in threads:
            t.join(20)
    with Client(live_server.target) as client:  # the slots are free again
        assert client.score_boxes([IMAGE_A]).overall[0].tp == 2


@pytest.mark.parametrize("live_server", [{"quality_gauges": True}], indirect=True)
def test_quality_gauges_export_a_running_runs_latest_losses(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("vision", "gauged")
        for step in range(1, 4):
            run.log(step, loss=1.0 / step)
        run.log(3, loss=0.9, split="validation")
        run.flush(30)
        registry = live_server.deps.metrics.registry
        labels = {"project": "vision", "run_id": run.id, "run_name": "gauged"}
        assert registry.get_sample_value("evalstream_run_train_loss", labels) == 1.0 / 3
        assert registry.get_sample_value("evalstream_run_validation_loss", labels) == 0.9
        assert registry.get_sample_value("evalstream_run_validation_step", labels) == 3.0
        run.finish()
        # Finished runs are no longer exported.
        assert registry.get_sample_value("evalstream_run_train_loss", labels) is None


def test_quality_gauges_are_off_by_default(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("vision", "plain")
        run.log(1, loss=0.5)
        run.flush(30)
        text = generate_latest(live_server.deps.metrics.registry).decode()
        assert "evalstream_run_" not in text
        run.finish()


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None
    found = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad)
        found += [(v.field, v.description) for v in bad.field_violations]
    return found


def test_bytes_that_do_not_parse_are_invalid_argument_naming_the_message(live_server) -> None:
    from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

    corrupt = b"\n\x80\x80\x80\x80\x80 "  # a length that never ends
    with grpc.insecure_channel(live_server.target) as channel:
        with pytest.raises(grpc.RpcError) as unary:
            channel.unary_unary("/evalstream.v1.Runs/GetRun")(corrupt, timeout=10)
        assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [(field, description)] = _violations(unary.value)
        assert field == "request"
        assert description.startswith("does not parse as evalstream.v1.GetRunRequest")

        run = runs_pb2_grpc.RunsStub(channel).CreateRun(
            runs_pb2.CreateRunRequest(project="p", name="raw")
        )
        good = runs_pb2.LossChunk(
            run_id=run.id, split=common_pb2.SPLIT_TRAIN, steps=[1], values=[0.5], sequence=1
        ).SerializeToString()
        acks = []
        call = channel.stream_stream("/evalstream.v1.Runs/StreamLoss")(
            iter([good, corrupt]), timeout=10
        )
        with pytest.raises(grpc.RpcError) as stream:
            for ack in call:
                acks.append(runs_pb2.LossAck.FromString(ack))
        assert stream.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [(field, description)] = _violations(stream.value)
        assert field == "requests[1]"
        assert "evalstream.v1.LossChunk" in description
        # What was acked before stands, and the server keeps serving.
        assert [a.sequence for a in acks] == [1] and acks[0].accepted
        curves = runs_pb2_grpc.RunsStub(channel).GetCurves(runs_pb2.GetCurvesRequest(run_id=run.id))
        assert list(curves.series[0].steps) == [1]

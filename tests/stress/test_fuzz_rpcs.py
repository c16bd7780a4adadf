"""Hypothesis fuzzing of every RPC of evalstream.v1.Scoring and evalstream.v1.Runs.

The methods are taken from the service descriptors, so a new RPC is fuzzed
without touching this file. Each RPC gets two kinds of input:

- **messages**: arbitrary instances of the request type, generated recursively
  from its descriptor (integers at their extremes, NaN/+-inf/huge/subnormal
  floats, huge and odd unicode strings, repeated fields from empty to tens of
  thousands long, nested messages, unknown enum numbers, map entries), with
  real ids (a run with loss points, checkpoints and specimens) mixed in so that
  inputs get past the first lookup;
- **raw bytes**: what a client library would never send, written on the wire
  through a generic call with no serializer: random bytes, invalid UTF-8 in
  every (nested) string field, truncated messages, well-formed unknown fields,
  unknown groups nested past protobuf's recursion limit.

Streams send 1-3 messages. Every answer must be a deliberate one: never
UNKNOWN, never INTERNAL, never a hang (DEADLINE_EXCEEDED), and health must
answer SERVING after every example. The short form (CI) is derandomized: every
run tries the same examples (only the seeded run's id differs); the long form is
a random search from the run's printed seed (see conftest.py).

A request that does not parse as the method's message type (random bytes,
invalid UTF-8 in a proto3 string field, truncation, nesting past the recursion
limit) is refused by the server's `RequestDecoding` interceptor with
INVALID_ARGUMENT and a field violation naming the message (``request`` or
``requests[i]``): grpc.aio alone would answer UNKNOWN with the decoder's text.
`PRE_HANDLER` is what the synchronous grpcio server answered instead (INTERNAL
"Exception deserializing request!"); it is still tallied apart and allowed only
for raw byte inputs, in case a grpcio version answers before any interceptor
runs. Every other answer is the handler's; INVALID_ARGUMENT and OUT_OF_RANGE
must carry google.rpc.BadRequest field violations.
"""

from __future__ import annotations

import hashlib
import math
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from google.protobuf import descriptor as _descriptor
from google.protobuf import message_factory
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st

from ..conftest import TINY_BERT_LAYER
from .conftest import StressServer, StressSettings, open_server, record

pytestmark = pytest.mark.stress

FD = _descriptor.FieldDescriptor
SERVICES = (
    scoring_pb2.DESCRIPTOR.services_by_name["Scoring"],
    runs_pb2.DESCRIPTOR.services_by_name["Runs"],
)
METHODS = [m for service in SERVICES for m in service.methods]
PRE_HANDLER = "Exception deserializing request!"
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}
TIMEOUT = 30.0
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 512 * 1024 * 1024)]

# ------------------------------------------------------------------ values

INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOAT_EXTREMES = [
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    5e-324,  # smallest subnormal
    -5e-324,
    2.2250738585072014e-308,  # smallest normal
    sys.float_info.max,
    -sys.float_info.max,
    1e300,
    -1e300,
    0.5,
    1.0,
    1.0000000000000002,
    -1.0,
]
ODD_TEXT = [
    "",
    " ",
    "\x00",
    "\x00" * 64,
    "\t\n\r",
    "\u202e" + "evil",  # right-to-left override
    "e\u0301" * 50,  # combining marks
    "\U0010ffff",
    "\ufeff",
    "\U0001f600" * 100,
    "NaN",
    "-inf",
    "../../etc/passwd",
    "'; DROP TABLE runs; --",
    "%s%n%x",
    "a" * 129,
    "a" * 257,
]


@dataclass
class Pool:
    """Strings and numbers that mean something to this server, mixed into the fuzz."""

    strings: list[str] = field(
        default_factory=lambda: [
            "p",
            "fuzz",
            "train",
            "validation",
            "loss",
            "learning_rate",
            "bleu",
            "rouge",
            "meteor",
            "bertscore",
            "13a",
            "intl",
            "zh",
            "char",
            "none",
            "exp",
            "floor",
            "add-k",
            "label",
            "img-1",
            "bbox_f1@0.5",
            "batch_size",
            "dataset_size",
        ]
    )
    ints: list[int] = field(default_factory=lambda: [0, 1, 2, 100, 1000, 2000])


def huge_text() -> st.SearchStrategy[str]:
    return st.sampled_from(
        ["x" * 10_001, "é" * 70_000, "\U0001f600" * 20_000, "word " * 50_000, "a" * 1_000_000]
    )


def scalar(fd: FD, pool: Pool, *, huge: bool = False) -> st.SearchStrategy[object]:
    """Values of one scalar field; `huge` lets strings be up to a million characters."""
    t = fd.type
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        extremes = [lo, hi, lo + 1, hi - 1, 0, 1, -1 if lo < 0 else 2, 2**31, 2**53 + 1]
        extremes = [v for v in extremes if lo <= v <= hi]
        return st.one_of(
            st.sampled_from(extremes),
            st.sampled_from([v for v in pool.ints if lo <= v <= hi]),
            st.integers(lo, hi),
            st.integers(-3, 1000).filter(lambda v: lo <= v <= hi),
        )
    if t == FD.TYPE_DOUBLE:
        return st.one_of(st.sampled_from(FLOAT_EXTREMES), st.floats(), st.floats(0, 1))
    if t == FD.TYPE_FLOAT:
        return st.one_of(
            st.sampled_from([v for v in FLOAT_EXTREMES if abs(v) < 3e38 or math.isinf(v)]),
            st.floats(width=32),
        )
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_STRING:
        return st.one_of(
            st.sampled_from(pool.strings),
            st.sampled_from(ODD_TEXT),
            st.text(max_size=40),
            st.integers(0, 30).flatmap(
                lambda k: huge_text() if k == 0 and huge else st.text(max_size=8)
            ),
        )
    if t == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FD.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, 5, 99, 2**31 - 1, -(2**31)]))
    raise AssertionError(f"unhandled field type {t} of {fd.full_name}")


def repeated(
    elem: st.SearchStrategy[object],
    *,
    message: bool,
    depth: int,
    small_elem: st.SearchStrategy[object] | None = None,
) -> st.SearchStrategy:
    """Mostly short lists; now and then one value repeated hundreds to 200,000 times.

    Sizes shrink with depth (and huge strings are never repeated) so that one
    example stays within tens of megabytes: the product of nested repeats would
    otherwise reach gigabytes on the client before anything is sent.
    """
    if message:
        big = [50, 400] if depth == 0 else []
    else:
        big = [1000, 20_000, 200_000] if depth == 0 else [200]

    def pick(k: int) -> st.SearchStrategy:
        if k == 0 and big:
            many = small_elem if small_elem is not None else elem
            return st.tuples(many, st.sampled_from(big)).map(lambda t: [t[0]] * t[1])
        return st.lists(elem, max_size=6)

    return st.integers(0, 12).flatmap(pick)


def messages(desc: _descriptor.Descriptor, pool: Pool, depth: int = 0) -> st.SearchStrategy:
    """An arbitrary instance of `desc`, any subset of its fields set."""
    cls = message_factory.GetMessageClass(desc)
    optional: dict[str, st.SearchStrategy] = {}
    for fd in desc.fields:
        is_map = fd.type == FD.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry
        if fd.type == FD.TYPE_MESSAGE and not is_map:
            if depth >= 4:
                continue
            elem = st.deferred(lambda fd=fd: messages(fd.message_type, pool, depth + 1))
        elif is_map:
            key_fd = fd.message_type.fields_by_name["key"]
            value_fd = fd.message_type.fields_by_name["value"]
            value = (
                messages(value_fd.message_type, pool, depth + 1)
                if value_fd.type == FD.TYPE_MESSAGE
                else scalar(value_fd, pool)
            )
            optional[fd.name] = st.dictionaries(scalar(key_fd, pool), value, max_size=6)
            continue
        else:
            elem = scalar(fd, pool, huge=depth == 0)
        if fd.is_repeated:
            optional[fd.name] = repeated(
                elem,
                message=fd.type == FD.TYPE_MESSAGE,
                depth=depth,
                small_elem=None if fd.type == FD.TYPE_MESSAGE else scalar(fd, pool),
            )
        else:
            optional[fd.name] = elem

    def build(values: dict[str, object]) -> object:
        msg = cls()
        for name, value in values.items():
            fd = desc.fields_by_name[name]
            if fd.type == FD.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
                target = getattr(msg, name)
                for k, v in value.items():  # type: ignore[attr-defined]
                    if fd.message_type.fields_by_name["value"].type == FD.TYPE_MESSAGE:
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif fd.is_repeated:
                getattr(msg, name).extend(value)  # type: ignore[arg-type]
            elif fd.type == FD.TYPE_MESSAGE:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries({}, optional=optional).map(build)  # type: ignore[arg-type]


def wire(desc: _descriptor.Descriptor, pool: Pool) -> st.SearchStrategy[bytes]:
    """`messages(desc)`, serialized with map entries in key order.

    upb's own map order differs from process to process, so a plain
    SerializeToString() would send the same example as different bytes in two runs.
    """
    return messages(desc, pool).map(lambda m: m.SerializeToString(deterministic=True))


# ------------------------------------------------------------------ raw bytes


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint((number << 3) | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\x80", b"\xc0\xaf"]


def invalid_utf8(desc: _descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[bytes]:
    """A message holding invalid UTF-8 in one of its string fields, at any depth."""
    options: list[st.SearchStrategy[bytes]] = []
    for fd in desc.fields:
        if fd.type == FD.TYPE_STRING:
            options.append(
                st.sampled_from(BAD_UTF8).map(lambda bad, n=fd.number: length_delimited(n, bad))
            )
        elif fd.type == FD.TYPE_MESSAGE and depth < 4:
            sub = fd.message_type
            options.append(
                st.deferred(lambda sub=sub: invalid_utf8(sub, depth + 1)).map(
                    lambda inner, n=fd.number: length_delimited(n, inner)
                )
            )
    if not options:
        return st.just(b"")
    return st.one_of(options)


def raw_inputs(desc: _descriptor.Descriptor, pool: Pool) -> st.SearchStrategy[bytes]:
    """Bytes a well-behaved client never sends."""
    valid = wire(desc, pool)
    unknown_field = st.tuples(
        st.integers(1000, 536_870_911), st.sampled_from([0, 1, 2, 5]), st.binary(max_size=16)
    ).map(
        lambda t: (
            tag(t[0], t[1])
            + {
                0: varint(len(t[2])),
                1: struct.pack("<d", math.nan),
                2: varint(len(t[2])) + t[2],
                5: b"\x00\x00\x80\x7f",
            }[t[1]]
        )
    )
    group_bomb = st.integers(90, 2000).map(lambda n: tag(999, 3) * n + tag(999, 4) * n)
    return st.one_of(
        st.binary(max_size=512),
        st.tuples(valid, invalid_utf8(desc)).map(lambda t: t[0] + t[1]),
        st.tuples(valid, unknown_field).map(lambda t: t[0] + t[1]),
        valid.filter(lambda b: len(b) > 1).flatmap(
            lambda b: st.integers(1, len(b) - 1).map(lambda k: b[:k])
        ),
        group_bomb,
        st.just(tag(1, 2) + varint(2**40)),  # a length far past the end
    )


# ------------------------------------------------------------------ calls


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    violations: int


def _violations(error: grpc.RpcError) -> int:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return len(bad.field_violations)
    return 0


def call(
    channel: grpc.Channel, method: _descriptor.MethodDescriptor, requests: list[bytes]
) -> Outcome:
    """One RPC with raw request bytes; reads the whole answer (a server stream: its first)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    kw = {"request_serializer": None, "response_deserializer": None}
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path, **kw)(iter(requests), timeout=TIMEOUT):
                pass
        elif method.client_streaming:
            channel.stream_unary(path, **kw)(iter(requests), timeout=TIMEOUT)
        elif method.server_streaming:
            responses = channel.unary_stream(path, **kw)(requests[0], timeout=TIMEOUT)
            try:
                next(responses, None)  # the first answer shows the handler accepted it
            finally:
                responses.cancel()  # WatchVerdict runs until the run ends
        else:
            channel.unary_unary(path, **kw)(requests[0], timeout=TIMEOUT)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        if (
            code == grpc.StatusCode.CANCELLED
            and method.server_streaming
            and not method.client_streaming
        ):
            return Outcome(grpc.StatusCode.OK, "first message, then cancelled", 0)
        return Outcome(code, error.details() or "", _violations(error))  # type: ignore[attr-defined]
    return Outcome(grpc.StatusCode.OK, "", 0)


def seed(target: str) -> Pool:
    """A run with loss points, checkpoint metrics and specimens; its id joins the pool."""
    pool = Pool()
    with grpc.insecure_channel(target) as channel:
        runs = runs_pb2_grpc.RunsStub(channel)
        run = runs.CreateRun(
            runs_pb2.CreateRunRequest(
                project="p",
                name="fuzz",
                hyperparameters={
                    "learning_rate": runs_pb2.HyperValue(float_value=3e-4),
                    "batch_size": runs_pb2.HyperValue(int_value=32),
                    "dataset_size": runs_pb2.HyperValue(int_value=1000),
                },
            ),
            timeout=10,
        )
        chunk = runs_pb2.LossChunk(
            sequence=1,
            run_id=run.id,
            split=common_pb2.SPLIT_TRAIN,
            series="loss",
            steps=list(range(0, 2000, 10)),
            values=[1.0 / (1 + s) for s in range(0, 2000, 10)],
        )
        list(runs.StreamLoss(iter([chunk]), timeout=10))
        runs.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id=run.id, split=common_pb2.SPLIT_VALIDATION, step=1000, metrics={"bleu": 0.3}
            ),
            timeout=10,
        )
        ref = common_pb2.CheckpointRef(run_id=run.id, split=common_pb2.SPLIT_VALIDATION, step=1000)
        box = scoring_pb2.Box(x1=1, y1=1, x2=5, y2=5, label="label", confidence=0.9)
        batch = scoring_pb2.BoxBatch(
            images=[
                scoring_pb2.ImageBoxes(image_id="img-1", predictions=[box], ground_truth=[box])
            ],
            checkpoint=ref,
        )
        list(scoring_pb2_grpc.ScoringStub(channel).ScoreBoxes(iter([batch]), timeout=10))
    pool.strings[:0] = [run.id, run.id, run.id]
    return pool


def _masked(request: bytes, run_id: bytes) -> bytes:
    """`request` with the seeded run's id, random in each run, replaced by a constant.

    Also where a truncated message ends inside the id: ids share only their
    2-character prefix, so 3 or more of its characters at the end are that id's.
    """
    masked = request.replace(run_id, b"RUN")
    for k in range(len(run_id) - 1, 2, -1):
        if masked.endswith(run_id[:k]):
            return masked[:-k] + b"RUN"
    return masked


def _healthy(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
@pytest.mark.parametrize("kind", ["messages", "raw"])
def test_fuzz_rpc_never_answers_internal_or_unknown(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stress: StressSettings,
    method: _descriptor.MethodDescriptor,
    kind: str,
) -> None:
    overrides: dict[str, object] = {"bertscore_model": "none"}
    if method.containing_service.name == "Scoring":
        # Text scoring with BERTScore on (the tiny random BERT): the batcher is fuzzed too.
        overrides = {
            "bertscore_model": str(request.getfixturevalue("tiny_bert_dir")),
            "bertscore_layer": TINY_BERT_LAYER,
        }
    with open_server(tmp_path, overrides, request.node.name) as server:
        _fuzz(server, stress, method, kind)


def _fuzz(
    stress_server: StressServer,
    stress: StressSettings,
    method: _descriptor.MethodDescriptor,
    kind: str,
) -> None:
    pool = seed(stress_server.target)
    desc = method.input_type
    one = wire(desc, pool)
    if kind == "raw":
        one = raw_inputs(desc, pool)
        # A stream mixes well-formed messages with the hostile one.
        one_or_valid = st.one_of(one, wire(desc, pool))
    else:
        one_or_valid = one
    count = 1 if not method.client_streaming else 3
    inputs = st.tuples(one, st.lists(one_or_valid, max_size=count - 1)).map(lambda t: [t[0], *t[1]])
    codes: Counter[str] = Counter()
    bad: list[str] = []
    bare: list[str] = []
    channel = grpc.insecure_channel(stress_server.target, options=CHANNEL_OPTIONS)
    # A digest of the inputs tried, the seeded run's (random) id left out: two
    # short-form runs that print the same digest tried the same examples.
    tried = hashlib.sha256()
    run_id = pool.strings[0].encode()

    @stress.hypothesis(max_examples=stress.fuzz_examples)
    @given(inputs)
    def check(requests: list[bytes]) -> None:
        for one_request in requests:
            tried.update(b"%d:" % len(one_request) + _masked(one_request, run_id))
        outcome = call(channel, method, requests)
        pre_handler = outcome.code == grpc.StatusCode.INTERNAL and outcome.details == PRE_HANDLER
        label = "INTERNAL(pre-handler deserialization)" if pre_handler else outcome.code.name
        codes[label] += 1
        failure = ""
        if outcome.code in FORBIDDEN and not (pre_handler and kind == "raw"):
            failure = f"{outcome.code.name}: {outcome.details!r} for {requests[0][:200]!r}"
            bad.append(failure)
        if (
            outcome.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)
            and not outcome.violations
        ):
            bare.append(f"{outcome.code.name} without field violations: {outcome.details!r}")
        assert _healthy(channel), "health stopped answering SERVING"
        assert not failure, failure

    started = time.monotonic()
    try:
        check()
    finally:
        channel.close()
        elapsed = time.monotonic() - started
        name = f"{method.containing_service.name}.{method.name}[{kind}]"
        record(
            "fuzz",
            f"{name}: {sum(codes.values())} examples (digest {tried.hexdigest()[:12]}) "
            f"in {elapsed:.1f} s; codes {dict(codes)}"
            + (f"; {len(bare)} without field violations, e.g. {bare[0]}" if bare else ""),
        )
    assert not bare, bare[:5]


def test_fuzz_created_runs_stay_readable(stress_server, stress: StressSettings) -> None:
    """Whatever CreateRun accepts, every later read of that run answers deliberately.

    A run stores its hyperparameters and verdict thresholds; a value accepted at
    creation but refused later would break every read of the run (and a project's
    comparison) for good.
    """
    pool = seed(stress_server.target)
    runs_desc = runs_pb2.DESCRIPTOR.services_by_name["Runs"]
    follow_ups = [runs_desc.methods_by_name[n] for n in ("GetRun", "GetVerdict", "WatchVerdict")]
    compare = runs_desc.methods_by_name["CompareRuns"]
    codes: Counter[str] = Counter()
    channel = grpc.insecure_channel(stress_server.target, options=CHANNEL_OPTIONS)

    @stress.hypothesis(max_examples=max(stress.fuzz_examples // 4, 50))
    @given(messages(runs_pb2.CreateRunRequest.DESCRIPTOR, pool))
    def check(request: runs_pb2.CreateRunRequest) -> None:
        codes["examples"] += 1
        project = f"created-{codes['examples']}"  # compared below, alone: examples stay apart
        request.project = project
        try:
            run = runs_pb2_grpc.RunsStub(channel).CreateRun(request, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            codes[f"CreateRun {exc.code().name}"] += 1  # type: ignore[attr-defined]
            assert exc.code() not in FORBIDDEN, exc.details()  # type: ignore[attr-defined]
            return
        codes["CreateRun OK"] += 1
        failures = []
        calls = [(m, runs_pb2.GetRunRequest(run_id=run.id)) for m in follow_ups[:1]]
        calls += [
            (m, message_factory.GetMessageClass(m.input_type)(run_id=run.id))
            for m in follow_ups[1:]
        ]
        calls += [
            (compare, runs_pb2.CompareRunsRequest(run_ids=[run.id])),
            (compare, runs_pb2.CompareRunsRequest(project=project)),
        ]
        for method, follow in calls:
            outcome = call(channel, method, [follow.SerializeToString()])
            codes[f"{method.name} {outcome.code.name}"] += 1
            if outcome.code in FORBIDDEN:
                failures.append(f"{method.name}: {outcome.code.name} {outcome.details!r}")
        assert not failures, f"after CreateRun({request}): {failures}"

    try:
        check()
    finally:
        channel.close()
        record("fuzz created runs", f"{sum(codes.values())} calls; codes {dict(codes)}")

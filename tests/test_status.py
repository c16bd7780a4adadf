"""Refusals: BadRequest details are capped, a lone violation keeps its whole list."""

from __future__ import annotations

import grpc
from evalstream_server.errors import FieldViolation
from evalstream_server.status import MAX_FIELD, rich_status
from google.rpc import error_details_pb2, status_pb2


def _descriptions(status: grpc.Status) -> list[str]:
    (_key, raw), *_ = status.trailing_metadata
    detail = error_details_pb2.BadRequest()
    status_pb2.Status.FromString(raw).details[0].Unpack(detail)
    return [v.description for v in detail.field_violations]


def test_rich_status_lone_violation_keeps_a_long_description() -> None:
    listing = "series: " + ", ".join(f"validation/metric_{i}" for i in range(40))
    status = rich_status(
        grpc.StatusCode.INVALID_ARGUMENT, "bad", [FieldViolation("config.monitor", listing)]
    )
    assert len(listing) > MAX_FIELD and _descriptions(status) == [listing]


def test_rich_status_many_violations_are_capped_each() -> None:
    many = [FieldViolation(f"items[{i}]", "x" * 500) for i in range(100)]
    got = _descriptions(rich_status(grpc.StatusCode.INVALID_ARGUMENT, "bad", many))
    assert len(got) == 100 and all(len(d) == MAX_FIELD and d.endswith("...(cut)") for d in got)

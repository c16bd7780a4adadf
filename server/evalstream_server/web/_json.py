"""Protobuf answers to JSON values for the HTTP API: the one place JSON meets the contract.

Follows the proto3 JSON mapping where it serves a browser and departs where it does
not: field names as in the .proto (snake_case); 64-bit integers as JSON numbers (steps
and counts stay far below 2**53); enums as their short lower-case names (``SPLIT_TRAIN``
-> ``"train"``); timestamps as RFC 3339 strings; unset optional fields as ``null``. JSON
has no NaN: non-finite doubles are the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, as in the proto3 JSON mapping (``Number(v)`` in JavaScript reads them).
"""

from __future__ import annotations

import base64
import functools
import math
import re
from typing import Any

from google.protobuf import descriptor, timestamp_pb2
from google.protobuf.message import Message

__all__ = ["enum_name", "message_to_json", "number_to_json"]

_FD = descriptor.FieldDescriptor
_INTEGERS = {
    _FD.TYPE_INT32,
    _FD.TYPE_INT64,
    _FD.TYPE_UINT32,
    _FD.TYPE_UINT64,
    _FD.TYPE_SINT32,
    _FD.TYPE_SINT64,
    _FD.TYPE_FIXED32,
    _FD.TYPE_FIXED64,
    _FD.TYPE_SFIXED32,
    _FD.TYPE_SFIXED64,
}


def number_to_json(value: float) -> float | str:
    """A double as JSON: itself when finite, else ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.

    Example:
        >>> number_to_json(0.5), number_to_json(float("nan")), number_to_json(float("-inf"))
        (0.5, 'NaN', '-Infinity')
    """
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


@functools.lru_cache(maxsize=64)
def _prefix(enum: descriptor.EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def enum_name(enum: descriptor.EnumDescriptor, number: int) -> str | int:
    """The short lower-case name of an enum value (its number when the value is unknown).

    Example:
        >>> from evalstream.v1 import common_pb2, runs_pb2
        >>> enum_name(common_pb2.Split.DESCRIPTOR, common_pb2.SPLIT_VALIDATION)
        'validation'
        >>> enum_name(runs_pb2.RunStatus.DESCRIPTOR, runs_pb2.RUN_STATUS_RUNNING)
        'running'
    """
    value = enum.values_by_number.get(number)
    if value is None:
        return number
    return value.name.removeprefix(_prefix(enum)).lower()


def _scalar(field: descriptor.FieldDescriptor, value: Any) -> Any:
    if field.type == _FD.TYPE_MESSAGE:
        return message_to_json(value)
    if field.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        return number_to_json(value)
    if field.type == _FD.TYPE_ENUM:
        return enum_name(field.enum_type, value)
    if field.type == _FD.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type in _INTEGERS:
        return int(value)
    return value


def message_to_json(message: Message) -> Any:
    """A message as plain JSON values (see the module docstring for the mapping).

    Example:
        >>> from evalstream.v1 import runs_pb2
        >>> s = runs_pb2.Series(name="loss", steps=[1, 2], values=[0.5, float("nan")])
        >>> message_to_json(s)["values"], message_to_json(s)["split"]
        ([0.5, 'NaN'], 'unspecified')
    """
    if isinstance(message, timestamp_pb2.Timestamp):
        return message.ToJsonString() if message.seconds or message.nanos else None
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(k): _scalar(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_scalar(field, v) for v in value]
        elif field.containing_oneof is not None and not field.containing_oneof.name.startswith("_"):
            if message.HasField(field.name):  # a real oneof: only the member set
                out[field.name] = _scalar(field, value)
        elif field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _scalar(field, value)
    return out

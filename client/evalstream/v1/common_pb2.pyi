from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Split(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_UNSPECIFIED: _ClassVar[Split]
    SPLIT_TRAIN: _ClassVar[Split]
    SPLIT_VALIDATION: _ClassVar[Split]
    SPLIT_TEST: _ClassVar[Split]
SPLIT_UNSPECIFIED: Split
SPLIT_TRAIN: Split
SPLIT_VALIDATION: Split
SPLIT_TEST: Split

class Figure(_message.Message):
    __slots__ = ("value", "band", "undefined_reason")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    UNDEFINED_REASON_FIELD_NUMBER: _ClassVar[int]
    value: float
    band: str
    undefined_reason: str
    def __init__(self, value: _Optional[float] = ..., band: _Optional[str] = ..., undefined_reason: _Optional[str] = ...) -> None: ...

class CheckpointRef(_message.Message):
    __slots__ = ("run_id", "split", "step")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    split: Split
    step: int
    def __init__(self, run_id: _Optional[str] = ..., split: _Optional[_Union[Split, str]] = ..., step: _Optional[int] = ...) -> None: ...

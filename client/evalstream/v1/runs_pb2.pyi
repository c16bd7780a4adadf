import datetime

from evalstream.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_PHRASE_GROUNDING: _ClassVar[Task]
    TASK_VQA: _ClassVar[Task]
    TASK_OTHER: _ClassVar[Task]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_FINISHED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_KILLED: _ClassVar[RunStatus]

class AlertFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_FORMAT_UNSPECIFIED: _ClassVar[AlertFormat]
    ALERT_FORMAT_JSON: _ClassVar[AlertFormat]
    ALERT_FORMAT_SLACK: _ClassVar[AlertFormat]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_POINTS: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSONL: _ClassVar[ExportFormat]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_INSUFFICIENT_DATA: _ClassVar[RunState]
    RUN_STATE_HEALTHY: _ClassVar[RunState]
    RUN_STATE_UNDERFITTING: _ClassVar[RunState]
    RUN_STATE_OVERFITTING: _ClassVar[RunState]
    RUN_STATE_NOT_LEARNING: _ClassVar[RunState]
    RUN_STATE_UNSTABLE: _ClassVar[RunState]
    RUN_STATE_DIVERGED: _ClassVar[RunState]

class CheckpointGrade(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECKPOINT_GRADE_UNSPECIFIED: _ClassVar[CheckpointGrade]
    CHECKPOINT_GRADE_HEALTHY: _ClassVar[CheckpointGrade]
    CHECKPOINT_GRADE_OVERFITTING: _ClassVar[CheckpointGrade]
    CHECKPOINT_GRADE_SEVERE_OVERFITTING: _ClassVar[CheckpointGrade]
TASK_UNSPECIFIED: Task
TASK_PHRASE_GROUNDING: Task
TASK_VQA: Task
TASK_OTHER: Task
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_FINISHED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_KILLED: RunStatus
ALERT_FORMAT_UNSPECIFIED: AlertFormat
ALERT_FORMAT_JSON: AlertFormat
ALERT_FORMAT_SLACK: AlertFormat
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_POINTS: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_JSONL: ExportFormat
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_INSUFFICIENT_DATA: RunState
RUN_STATE_HEALTHY: RunState
RUN_STATE_UNDERFITTING: RunState
RUN_STATE_OVERFITTING: RunState
RUN_STATE_NOT_LEARNING: RunState
RUN_STATE_UNSTABLE: RunState
RUN_STATE_DIVERGED: RunState
CHECKPOINT_GRADE_UNSPECIFIED: CheckpointGrade
CHECKPOINT_GRADE_HEALTHY: CheckpointGrade
CHECKPOINT_GRADE_OVERFITTING: CheckpointGrade
CHECKPOINT_GRADE_SEVERE_OVERFITTING: CheckpointGrade

class HyperValue(_message.Message):
    __slots__ = ("float_value", "int_value", "string_value", "bool_value")
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    float_value: float
    int_value: int
    string_value: str
    bool_value: bool
    def __init__(self, float_value: _Optional[float] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "project", "name", "model", "task", "status", "hyperparameters", "derived", "created_at", "updated_at", "summary", "alert_webhook_count")
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    class DerivedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DERIVED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ALERT_WEBHOOK_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project: str
    name: str
    model: str
    task: Task
    status: RunStatus
    hyperparameters: _containers.MessageMap[str, HyperValue]
    derived: _containers.MessageMap[str, HyperValue]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    summary: _containers.MessageMap[str, HyperValue]
    alert_webhook_count: int
    def __init__(self, id: _Optional[str] = ..., project: _Optional[str] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., hyperparameters: _Optional[_Mapping[str, HyperValue]] = ..., derived: _Optional[_Mapping[str, HyperValue]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., summary: _Optional[_Mapping[str, HyperValue]] = ..., alert_webhook_count: _Optional[int] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("project", "name", "model", "task", "hyperparameters", "verdict_config", "alert_webhooks")
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ALERT_WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    model: str
    task: Task
    hyperparameters: _containers.MessageMap[str, HyperValue]
    verdict_config: VerdictConfig
    alert_webhooks: _containers.RepeatedCompositeFieldContainer[AlertWebhook]
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., hyperparameters: _Optional[_Mapping[str, HyperValue]] = ..., verdict_config: _Optional[_Union[VerdictConfig, _Mapping]] = ..., alert_webhooks: _Optional[_Iterable[_Union[AlertWebhook, _Mapping]]] = ...) -> None: ...

class AlertWebhook(_message.Message):
    __slots__ = ("url", "format")
    URL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    url: str
    format: AlertFormat
    def __init__(self, url: _Optional[str] = ..., format: _Optional[_Union[AlertFormat, str]] = ...) -> None: ...

class SavedCheckpoint(_message.Message):
    __slots__ = ("step", "path")
    STEP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    step: int
    path: str
    def __init__(self, step: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class UpdateRunRequest(_message.Message):
    __slots__ = ("run_id", "summary", "saved_checkpoints", "hyperparameters")
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SAVED_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    summary: _containers.MessageMap[str, HyperValue]
    saved_checkpoints: _containers.RepeatedCompositeFieldContainer[SavedCheckpoint]
    hyperparameters: _containers.MessageMap[str, HyperValue]
    def __init__(self, run_id: _Optional[str] = ..., summary: _Optional[_Mapping[str, HyperValue]] = ..., saved_checkpoints: _Optional[_Iterable[_Union[SavedCheckpoint, _Mapping]]] = ..., hyperparameters: _Optional[_Mapping[str, HyperValue]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id", "project", "name")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    project: str
    name: str
    def __init__(self, run_id: _Optional[str] = ..., project: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class HyperFilter(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: HyperValue
    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("project", "statuses", "model", "hyperparameters", "page_size", "page_token", "name")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    project: str
    statuses: _containers.RepeatedScalarFieldContainer[RunStatus]
    model: str
    hyperparameters: _containers.RepeatedCompositeFieldContainer[HyperFilter]
    page_size: int
    page_token: str
    name: str
    def __init__(self, project: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[RunStatus, str]]] = ..., model: _Optional[str] = ..., hyperparameters: _Optional[_Iterable[_Union[HyperFilter, _Mapping]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SetRunStatusRequest(_message.Message):
    __slots__ = ("run_id", "status")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: RunStatus
    def __init__(self, run_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LossChunk(_message.Message):
    __slots__ = ("sequence", "run_id", "split", "series", "steps", "values", "wall_times")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    WALL_TIMES_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    run_id: str
    split: _common_pb2.Split
    series: str
    steps: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    wall_times: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, sequence: _Optional[int] = ..., run_id: _Optional[str] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., series: _Optional[str] = ..., steps: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., wall_times: _Optional[_Iterable[float]] = ...) -> None: ...

class LossAck(_message.Message):
    __slots__ = ("sequence", "accepted", "stored", "duplicates", "reason", "field")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    accepted: bool
    stored: int
    duplicates: int
    reason: str
    field: str
    def __init__(self, sequence: _Optional[int] = ..., accepted: _Optional[bool] = ..., stored: _Optional[int] = ..., duplicates: _Optional[int] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class LogCheckpointRequest(_message.Message):
    __slots__ = ("run_id", "split", "step", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    split: _common_pb2.Split
    step: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, run_id: _Optional[str] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class LogCheckpointResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    def __init__(self, stored: _Optional[int] = ...) -> None: ...

class GetCurvesRequest(_message.Message):
    __slots__ = ("run_id", "splits", "series", "max_points", "start_step", "end_step", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    START_STEP_FIELD_NUMBER: _ClassVar[int]
    END_STEP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    splits: _containers.RepeatedScalarFieldContainer[_common_pb2.Split]
    series: _containers.RepeatedScalarFieldContainer[str]
    max_points: int
    start_step: int
    end_step: int
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., splits: _Optional[_Iterable[_Union[_common_pb2.Split, str]]] = ..., series: _Optional[_Iterable[str]] = ..., max_points: _Optional[int] = ..., start_step: _Optional[int] = ..., end_step: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Series(_message.Message):
    __slots__ = ("split", "name", "steps", "values", "wall_times", "total_points")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    WALL_TIMES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_POINTS_FIELD_NUMBER: _ClassVar[int]
    split: _common_pb2.Split
    name: str
    steps: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    wall_times: _containers.RepeatedScalarFieldContainer[float]
    total_points: int
    def __init__(self, split: _Optional[_Union[_common_pb2.Split, str]] = ..., name: _Optional[str] = ..., steps: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., wall_times: _Optional[_Iterable[float]] = ..., total_points: _Optional[int] = ...) -> None: ...

class GetCurvesResponse(_message.Message):
    __slots__ = ("series", "checkpoint_metrics", "next_page_token")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_METRICS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[Series]
    checkpoint_metrics: _containers.RepeatedCompositeFieldContainer[Series]
    next_page_token: str
    def __init__(self, series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., checkpoint_metrics: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportCurvesRequest(_message.Message):
    __slots__ = ("run_id", "splits", "series", "start_step", "end_step", "format")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    START_STEP_FIELD_NUMBER: _ClassVar[int]
    END_STEP_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    splits: _containers.RepeatedScalarFieldContainer[_common_pb2.Split]
    series: _containers.RepeatedScalarFieldContainer[str]
    start_step: int
    end_step: int
    format: ExportFormat
    def __init__(self, run_id: _Optional[str] = ..., splits: _Optional[_Iterable[_Union[_common_pb2.Split, str]]] = ..., series: _Optional[_Iterable[str]] = ..., start_step: _Optional[int] = ..., end_step: _Optional[int] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class ExportCurvesResponse(_message.Message):
    __slots__ = ("estimated_points", "points", "series", "text")
    ESTIMATED_POINTS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    estimated_points: int
    points: int
    series: _containers.RepeatedCompositeFieldContainer[Series]
    text: bytes
    def __init__(self, estimated_points: _Optional[int] = ..., points: _Optional[int] = ..., series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., text: _Optional[bytes] = ...) -> None: ...

class VerdictConfig(_message.Message):
    __slots__ = ("monitor", "mode", "min_delta", "patience", "warmup_steps", "not_learning_rel_decrease", "spike_sigma", "overfit_gap", "severe_overfit_gap")
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    NOT_LEARNING_REL_DECREASE_FIELD_NUMBER: _ClassVar[int]
    SPIKE_SIGMA_FIELD_NUMBER: _ClassVar[int]
    OVERFIT_GAP_FIELD_NUMBER: _ClassVar[int]
    SEVERE_OVERFIT_GAP_FIELD_NUMBER: _ClassVar[int]
    monitor: str
    mode: str
    min_delta: float
    patience: int
    warmup_steps: int
    not_learning_rel_decrease: float
    spike_sigma: float
    overfit_gap: float
    severe_overfit_gap: float
    def __init__(self, monitor: _Optional[str] = ..., mode: _Optional[str] = ..., min_delta: _Optional[float] = ..., patience: _Optional[int] = ..., warmup_steps: _Optional[int] = ..., not_learning_rel_decrease: _Optional[float] = ..., spike_sigma: _Optional[float] = ..., overfit_gap: _Optional[float] = ..., severe_overfit_gap: _Optional[float] = ...) -> None: ...

class GetVerdictRequest(_message.Message):
    __slots__ = ("run_id", "config")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    config: VerdictConfig
    def __init__(self, run_id: _Optional[str] = ..., config: _Optional[_Union[VerdictConfig, _Mapping]] = ...) -> None: ...

class WatchVerdictRequest(_message.Message):
    __slots__ = ("run_id", "config")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    config: VerdictConfig
    def __init__(self, run_id: _Optional[str] = ..., config: _Optional[_Union[VerdictConfig, _Mapping]] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("train_relative_decrease", "train_recent_slope", "validation_recent_slope", "gap", "gap_trend", "spike_steps", "best_validation_step", "first_nonfinite_step")
    TRAIN_RELATIVE_DECREASE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_RECENT_SLOPE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_RECENT_SLOPE_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    GAP_TREND_FIELD_NUMBER: _ClassVar[int]
    SPIKE_STEPS_FIELD_NUMBER: _ClassVar[int]
    BEST_VALIDATION_STEP_FIELD_NUMBER: _ClassVar[int]
    FIRST_NONFINITE_STEP_FIELD_NUMBER: _ClassVar[int]
    train_relative_decrease: float
    train_recent_slope: float
    validation_recent_slope: float
    gap: float
    gap_trend: float
    spike_steps: _containers.RepeatedScalarFieldContainer[int]
    best_validation_step: int
    first_nonfinite_step: int
    def __init__(self, train_relative_decrease: _Optional[float] = ..., train_recent_slope: _Optional[float] = ..., validation_recent_slope: _Optional[float] = ..., gap: _Optional[float] = ..., gap_trend: _Optional[float] = ..., spike_steps: _Optional[_Iterable[int]] = ..., best_validation_step: _Optional[int] = ..., first_nonfinite_step: _Optional[int] = ...) -> None: ...

class Advice(_message.Message):
    __slots__ = ("action", "text")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    action: str
    text: str
    def __init__(self, action: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class CheckpointVerdict(_message.Message):
    __slots__ = ("step", "metric", "train_value", "validation_value", "gap", "grade", "path")
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TRAIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_VALUE_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    step: int
    metric: str
    train_value: float
    validation_value: float
    gap: float
    grade: CheckpointGrade
    path: str
    def __init__(self, step: _Optional[int] = ..., metric: _Optional[str] = ..., train_value: _Optional[float] = ..., validation_value: _Optional[float] = ..., gap: _Optional[float] = ..., grade: _Optional[_Union[CheckpointGrade, str]] = ..., path: _Optional[str] = ...) -> None: ...

class EarlyStopping(_message.Message):
    __slots__ = ("monitor", "mode", "best_step", "best_value", "evaluations_since_best", "steps_since_best", "should_stop", "best_checkpoint_path")
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BEST_STEP_FIELD_NUMBER: _ClassVar[int]
    BEST_VALUE_FIELD_NUMBER: _ClassVar[int]
    EVALUATIONS_SINCE_BEST_FIELD_NUMBER: _ClassVar[int]
    STEPS_SINCE_BEST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    BEST_CHECKPOINT_PATH_FIELD_NUMBER: _ClassVar[int]
    monitor: str
    mode: str
    best_step: int
    best_value: float
    evaluations_since_best: int
    steps_since_best: int
    should_stop: bool
    best_checkpoint_path: str
    def __init__(self, monitor: _Optional[str] = ..., mode: _Optional[str] = ..., best_step: _Optional[int] = ..., best_value: _Optional[float] = ..., evaluations_since_best: _Optional[int] = ..., steps_since_best: _Optional[int] = ..., should_stop: _Optional[bool] = ..., best_checkpoint_path: _Optional[str] = ...) -> None: ...

class LossContext(_message.Message):
    __slots__ = ("initial_loss", "final_loss", "initial_band", "final_band", "caveat")
    INITIAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BAND_FIELD_NUMBER: _ClassVar[int]
    FINAL_BAND_FIELD_NUMBER: _ClassVar[int]
    CAVEAT_FIELD_NUMBER: _ClassVar[int]
    initial_loss: float
    final_loss: float
    initial_band: str
    final_band: str
    caveat: str
    def __init__(self, initial_loss: _Optional[float] = ..., final_loss: _Optional[float] = ..., initial_band: _Optional[str] = ..., final_band: _Optional[str] = ..., caveat: _Optional[str] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("run_id", "state", "severity", "summary", "evidence", "advice", "checkpoints", "early_stopping", "loss_context", "as_of_step")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    LOSS_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: RunState
    severity: str
    summary: str
    evidence: Evidence
    advice: _containers.RepeatedCompositeFieldContainer[Advice]
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointVerdict]
    early_stopping: EarlyStopping
    loss_context: LossContext
    as_of_step: int
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., severity: _Optional[str] = ..., summary: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., advice: _Optional[_Iterable[_Union[Advice, _Mapping]]] = ..., checkpoints: _Optional[_Iterable[_Union[CheckpointVerdict, _Mapping]]] = ..., early_stopping: _Optional[_Union[EarlyStopping, _Mapping]] = ..., loss_context: _Optional[_Union[LossContext, _Mapping]] = ..., as_of_step: _Optional[int] = ...) -> None: ...

class CompareRunsRequest(_message.Message):
    __slots__ = ("run_ids", "project", "statuses", "model", "hyperparameters", "baseline_run_id")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    project: str
    statuses: _containers.RepeatedScalarFieldContainer[RunStatus]
    model: str
    hyperparameters: _containers.RepeatedCompositeFieldContainer[HyperFilter]
    baseline_run_id: str
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ..., project: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[RunStatus, str]]] = ..., model: _Optional[str] = ..., hyperparameters: _Optional[_Iterable[_Union[HyperFilter, _Mapping]]] = ..., baseline_run_id: _Optional[str] = ...) -> None: ...

class ComparisonRow(_message.Message):
    __slots__ = ("run_id", "run_name", "model", "hyperparameters", "final_train_loss", "best_train_loss", "final_validation_loss", "best_validation_loss", "best_metrics", "deltas", "state")
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HyperValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HyperValue, _Mapping]] = ...) -> None: ...
    class BestMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class DeltasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    BEST_TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    FINAL_VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    BEST_VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    BEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    DELTAS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    run_name: str
    model: str
    hyperparameters: _containers.MessageMap[str, HyperValue]
    final_train_loss: float
    best_train_loss: float
    final_validation_loss: float
    best_validation_loss: float
    best_metrics: _containers.ScalarMap[str, float]
    deltas: _containers.ScalarMap[str, float]
    state: RunState
    def __init__(self, run_id: _Optional[str] = ..., run_name: _Optional[str] = ..., model: _Optional[str] = ..., hyperparameters: _Optional[_Mapping[str, HyperValue]] = ..., final_train_loss: _Optional[float] = ..., best_train_loss: _Optional[float] = ..., final_validation_loss: _Optional[float] = ..., best_validation_loss: _Optional[float] = ..., best_metrics: _Optional[_Mapping[str, float]] = ..., deltas: _Optional[_Mapping[str, float]] = ..., state: _Optional[_Union[RunState, str]] = ...) -> None: ...

class PairChange(_message.Message):
    __slots__ = ("run_a", "run_b", "changed", "warning")
    RUN_A_FIELD_NUMBER: _ClassVar[int]
    RUN_B_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    run_a: str
    run_b: str
    changed: _containers.RepeatedScalarFieldContainer[str]
    warning: str
    def __init__(self, run_a: _Optional[str] = ..., run_b: _Optional[str] = ..., changed: _Optional[_Iterable[str]] = ..., warning: _Optional[str] = ...) -> None: ...

class BestRun(_message.Message):
    __slots__ = ("metric", "run_id", "value")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    run_id: str
    value: float
    def __init__(self, metric: _Optional[str] = ..., run_id: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class CompareRunsResponse(_message.Message):
    __slots__ = ("rows", "differing", "pairs", "best", "baseline_run_id", "incomparable")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIFFERING_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INCOMPARABLE_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ComparisonRow]
    differing: _containers.RepeatedScalarFieldContainer[str]
    pairs: _containers.RepeatedCompositeFieldContainer[PairChange]
    best: _containers.RepeatedCompositeFieldContainer[BestRun]
    baseline_run_id: str
    incomparable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rows: _Optional[_Iterable[_Union[ComparisonRow, _Mapping]]] = ..., differing: _Optional[_Iterable[str]] = ..., pairs: _Optional[_Iterable[_Union[PairChange, _Mapping]]] = ..., best: _Optional[_Iterable[_Union[BestRun, _Mapping]]] = ..., baseline_run_id: _Optional[str] = ..., incomparable: _Optional[_Iterable[str]] = ...) -> None: ...

class ListEvaluationStepsRequest(_message.Message):
    __slots__ = ("run_id", "split")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    split: _common_pb2.Split
    def __init__(self, run_id: _Optional[str] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ...) -> None: ...

class EvaluationStep(_message.Message):
    __slots__ = ("split", "step", "specimens", "metrics", "flag_counts", "actions")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FlagCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SPECIMENS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FLAG_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    split: _common_pb2.Split
    step: int
    specimens: int
    metrics: _containers.ScalarMap[str, float]
    flag_counts: _containers.ScalarMap[str, int]
    actions: _containers.RepeatedCompositeFieldContainer[FlagActions]
    def __init__(self, split: _Optional[_Union[_common_pb2.Split, str]] = ..., step: _Optional[int] = ..., specimens: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., flag_counts: _Optional[_Mapping[str, int]] = ..., actions: _Optional[_Iterable[_Union[FlagActions, _Mapping]]] = ...) -> None: ...

class FlagActions(_message.Message):
    __slots__ = ("flag", "count", "advice")
    FLAG_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    flag: str
    count: int
    advice: _containers.RepeatedCompositeFieldContainer[Advice]
    def __init__(self, flag: _Optional[str] = ..., count: _Optional[int] = ..., advice: _Optional[_Iterable[_Union[Advice, _Mapping]]] = ...) -> None: ...

class ListEvaluationStepsResponse(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[EvaluationStep]
    def __init__(self, steps: _Optional[_Iterable[_Union[EvaluationStep, _Mapping]]] = ...) -> None: ...

class GetSpecimensRequest(_message.Message):
    __slots__ = ("run_id", "split", "step", "page_size", "page_token", "flag")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    split: _common_pb2.Split
    step: int
    page_size: int
    page_token: str
    flag: str
    def __init__(self, run_id: _Optional[str] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., step: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., flag: _Optional[str] = ...) -> None: ...

class Specimen(_message.Message):
    __slots__ = ("specimen_id", "prediction_text", "reference_texts", "predicted_boxes", "ground_truth_boxes", "scores", "flags", "image_uri", "width", "height", "question")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SPECIMEN_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_TEXT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TEXTS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_BOXES_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_BOXES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    specimen_id: str
    prediction_text: str
    reference_texts: _containers.RepeatedScalarFieldContainer[str]
    predicted_boxes: _containers.RepeatedCompositeFieldContainer[SpecimenBox]
    ground_truth_boxes: _containers.RepeatedCompositeFieldContainer[SpecimenBox]
    scores: _containers.ScalarMap[str, float]
    flags: _containers.RepeatedScalarFieldContainer[str]
    image_uri: str
    width: int
    height: int
    question: str
    def __init__(self, specimen_id: _Optional[str] = ..., prediction_text: _Optional[str] = ..., reference_texts: _Optional[_Iterable[str]] = ..., predicted_boxes: _Optional[_Iterable[_Union[SpecimenBox, _Mapping]]] = ..., ground_truth_boxes: _Optional[_Iterable[_Union[SpecimenBox, _Mapping]]] = ..., scores: _Optional[_Mapping[str, float]] = ..., flags: _Optional[_Iterable[str]] = ..., image_uri: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., question: _Optional[str] = ...) -> None: ...

class SpecimenBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "label", "confidence")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    confidence: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class GetSpecimensResponse(_message.Message):
    __slots__ = ("specimens", "next_page_token")
    SPECIMENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    specimens: _containers.RepeatedCompositeFieldContainer[Specimen]
    next_page_token: str
    def __init__(self, specimens: _Optional[_Iterable[_Union[Specimen, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("name", "runs", "running", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    runs: int
    running: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., runs: _Optional[int] = ..., running: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects", "next_page_token")
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    next_page_token: str
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetSpecimenHistoryRequest(_message.Message):
    __slots__ = ("run_id", "split", "specimen_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    split: _common_pb2.Split
    specimen_id: str
    def __init__(self, run_id: _Optional[str] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., specimen_id: _Optional[str] = ...) -> None: ...

class SpecimenAtStep(_message.Message):
    __slots__ = ("step", "specimen")
    STEP_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_FIELD_NUMBER: _ClassVar[int]
    step: int
    specimen: Specimen
    def __init__(self, step: _Optional[int] = ..., specimen: _Optional[_Union[Specimen, _Mapping]] = ...) -> None: ...

class GetSpecimenHistoryResponse(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[SpecimenAtStep]
    def __init__(self, steps: _Optional[_Iterable[_Union[SpecimenAtStep, _Mapping]]] = ...) -> None: ...

class CompareSpecimensRequest(_message.Message):
    __slots__ = ("run_ids", "split", "specimen_id", "step", "best")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    split: _common_pb2.Split
    specimen_id: str
    step: int
    best: bool
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., specimen_id: _Optional[str] = ..., step: _Optional[int] = ..., best: _Optional[bool] = ...) -> None: ...

class RunSpecimen(_message.Message):
    __slots__ = ("run_id", "run_name", "step", "present", "specimen", "note")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    run_name: str
    step: int
    present: bool
    specimen: Specimen
    note: str
    def __init__(self, run_id: _Optional[str] = ..., run_name: _Optional[str] = ..., step: _Optional[int] = ..., present: _Optional[bool] = ..., specimen: _Optional[_Union[Specimen, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class CompareSpecimensResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunSpecimen]
    def __init__(self, runs: _Optional[_Iterable[_Union[RunSpecimen, _Mapping]]] = ...) -> None: ...

import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from modelbox import modelbox_pb2 as _modelbox_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Axis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AXIS_STEP: _ClassVar[Axis]
    AXIS_WALLCLOCK: _ClassVar[Axis]
AXIS_STEP: Axis
AXIS_WALLCLOCK: Axis

class SeriesRef(_message.Message):
    __slots__ = ("parent_id", "key")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    key: str
    def __init__(self, parent_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class FloatColumns(_message.Message):
    __slots__ = ("key", "step", "wallclock_ns", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_NS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: _containers.RepeatedScalarFieldContainer[int]
    step: _containers.RepeatedScalarFieldContainer[int]
    wallclock_ns: _containers.RepeatedScalarFieldContainer[int]
    value: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, key: _Optional[_Iterable[int]] = ..., step: _Optional[_Iterable[int]] = ..., wallclock_ns: _Optional[_Iterable[int]] = ..., value: _Optional[_Iterable[float]] = ...) -> None: ...

class StringPoint(_message.Message):
    __slots__ = ("key", "step", "wallclock_ns", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_NS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: int
    step: int
    wallclock_ns: int
    value: str
    def __init__(self, key: _Optional[int] = ..., step: _Optional[int] = ..., wallclock_ns: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...

class BytesPoint(_message.Message):
    __slots__ = ("key", "step", "wallclock_ns", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_NS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: int
    step: int
    wallclock_ns: int
    value: bytes
    def __init__(self, key: _Optional[int] = ..., step: _Optional[int] = ..., wallclock_ns: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class ParentEvent(_message.Message):
    __slots__ = ("parent_id", "event")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    event: _modelbox_pb2.Event
    def __init__(self, parent_id: _Optional[str] = ..., event: _Optional[_Union[_modelbox_pb2.Event, _Mapping]] = ...) -> None: ...

class MetadataUpdate(_message.Message):
    __slots__ = ("parent_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    metadata: _containers.MessageMap[str, _struct_pb2.Value]
    def __init__(self, parent_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, _struct_pb2.Value]] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("batch_id", "series", "points", "string_points", "bytes_points", "events", "metadata")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    STRING_POINTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_POINTS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    series: _containers.RepeatedCompositeFieldContainer[SeriesRef]
    points: FloatColumns
    string_points: _containers.RepeatedCompositeFieldContainer[StringPoint]
    bytes_points: _containers.RepeatedCompositeFieldContainer[BytesPoint]
    events: _containers.RepeatedCompositeFieldContainer[ParentEvent]
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataUpdate]
    def __init__(self, batch_id: _Optional[int] = ..., series: _Optional[_Iterable[_Union[SeriesRef, _Mapping]]] = ..., points: _Optional[_Union[FloatColumns, _Mapping]] = ..., string_points: _Optional[_Iterable[_Union[StringPoint, _Mapping]]] = ..., bytes_points: _Optional[_Iterable[_Union[BytesPoint, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[ParentEvent, _Mapping]]] = ..., metadata: _Optional[_Iterable[_Union[MetadataUpdate, _Mapping]]] = ...) -> None: ...

class LogAck(_message.Message):
    __slots__ = ("batch_id", "sequence", "points")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    sequence: int
    points: int
    def __init__(self, batch_id: _Optional[int] = ..., sequence: _Optional[int] = ..., points: _Optional[int] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("experiment_id", "pid")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    pid: int
    def __init__(self, experiment_id: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("attached_at",)
    ATTACHED_AT_FIELD_NUMBER: _ClassVar[int]
    attached_at: _timestamp_pb2.Timestamp
    def __init__(self, attached_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DetachRequest(_message.Message):
    __slots__ = ("experiment_id", "pid")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    pid: int
    def __init__(self, experiment_id: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class DetachResponse(_message.Message):
    __slots__ = ("detached_at",)
    DETACHED_AT_FIELD_NUMBER: _ClassVar[int]
    detached_at: _timestamp_pb2.Timestamp
    def __init__(self, detached_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueryMetricsRequest(_message.Message):
    __slots__ = ("parent_id", "keys", "to", "axis", "max_points")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    to: int
    axis: Axis
    max_points: int
    def __init__(self, parent_id: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., to: _Optional[int] = ..., axis: _Optional[_Union[Axis, str]] = ..., max_points: _Optional[int] = ..., **kwargs) -> None: ...

class SeriesColumns(_message.Message):
    __slots__ = ("key", "step", "wallclock", "value", "string_values", "bytes_values")
    class StringValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class BytesValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: bytes
        def __init__(self, key: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUES_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUES_FIELD_NUMBER: _ClassVar[int]
    key: str
    step: _containers.RepeatedScalarFieldContainer[int]
    wallclock: _containers.RepeatedScalarFieldContainer[int]
    value: _containers.RepeatedScalarFieldContainer[float]
    string_values: _containers.ScalarMap[int, str]
    bytes_values: _containers.ScalarMap[int, bytes]
    def __init__(self, key: _Optional[str] = ..., step: _Optional[_Iterable[int]] = ..., wallclock: _Optional[_Iterable[int]] = ..., value: _Optional[_Iterable[float]] = ..., string_values: _Optional[_Mapping[int, str]] = ..., bytes_values: _Optional[_Mapping[int, bytes]] = ...) -> None: ...

class QueryMetricsResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[SeriesColumns]
    def __init__(self, series: _Optional[_Iterable[_Union[SeriesColumns, _Mapping]]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version", "uptime_seconds", "database", "last_sequence", "pending_writes", "upstreams")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PENDING_WRITES_FIELD_NUMBER: _ClassVar[int]
    UPSTREAMS_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    uptime_seconds: float
    database: str
    last_sequence: int
    pending_writes: int
    upstreams: _containers.RepeatedCompositeFieldContainer[UpstreamStatus]
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., database: _Optional[str] = ..., last_sequence: _Optional[int] = ..., pending_writes: _Optional[int] = ..., upstreams: _Optional[_Iterable[_Union[UpstreamStatus, _Mapping]]] = ...) -> None: ...

class UpstreamStatus(_message.Message):
    __slots__ = ("target", "connected", "acknowledged_seq", "records_behind", "seconds_behind", "last_error", "quarantined", "skipped_records")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_BEHIND_FIELD_NUMBER: _ClassVar[int]
    SECONDS_BEHIND_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    target: str
    connected: bool
    acknowledged_seq: int
    records_behind: int
    seconds_behind: float
    last_error: str
    quarantined: int
    skipped_records: int
    def __init__(self, target: _Optional[str] = ..., connected: _Optional[bool] = ..., acknowledged_seq: _Optional[int] = ..., records_behind: _Optional[int] = ..., seconds_behind: _Optional[float] = ..., last_error: _Optional[str] = ..., quarantined: _Optional[int] = ..., skipped_records: _Optional[int] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments",)
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[_modelbox_pb2.Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[_modelbox_pb2.Experiment, _Mapping]]] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Reading(_message.Message):
    __slots__ = ("name", "labels", "value")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    value: float
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ...) -> None: ...

class TrainerSnapshot(_message.Message):
    __slots__ = ("experiment_id", "experiment_name", "pid", "readings", "processes", "points_logged")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    POINTS_LOGGED_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    experiment_name: str
    pid: int
    readings: _containers.RepeatedCompositeFieldContainer[Reading]
    processes: int
    points_logged: int
    def __init__(self, experiment_id: _Optional[str] = ..., experiment_name: _Optional[str] = ..., pid: _Optional[int] = ..., readings: _Optional[_Iterable[_Union[Reading, _Mapping]]] = ..., processes: _Optional[int] = ..., points_logged: _Optional[int] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("wallclock", "sample_interval_seconds", "host_name", "readings", "trainers", "counted_at")
    WALLCLOCK_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    TRAINERS_FIELD_NUMBER: _ClassVar[int]
    COUNTED_AT_FIELD_NUMBER: _ClassVar[int]
    wallclock: int
    sample_interval_seconds: float
    host_name: str
    readings: _containers.RepeatedCompositeFieldContainer[Reading]
    trainers: _containers.RepeatedCompositeFieldContainer[TrainerSnapshot]
    counted_at: int
    def __init__(self, wallclock: _Optional[int] = ..., sample_interval_seconds: _Optional[float] = ..., host_name: _Optional[str] = ..., readings: _Optional[_Iterable[_Union[Reading, _Mapping]]] = ..., trainers: _Optional[_Iterable[_Union[TrainerSnapshot, _Mapping]]] = ..., counted_at: _Optional[int] = ...) -> None: ...

class QueryStepCostsRequest(_message.Message):
    __slots__ = ("experiment_id", "key")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    key: str
    def __init__(self, experiment_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class StepCost(_message.Message):
    __slots__ = ("step", "start", "end", "energy_joules", "gpu_utilization", "throttled", "gpu_memory_peak_bytes", "iowait", "cpu")
    STEP_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ENERGY_JOULES_FIELD_NUMBER: _ClassVar[int]
    GPU_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    IOWAIT_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    step: int
    start: int
    end: int
    energy_joules: float
    gpu_utilization: float
    throttled: float
    gpu_memory_peak_bytes: float
    iowait: float
    cpu: float
    def __init__(self, step: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., energy_joules: _Optional[float] = ..., gpu_utilization: _Optional[float] = ..., throttled: _Optional[float] = ..., gpu_memory_peak_bytes: _Optional[float] = ..., iowait: _Optional[float] = ..., cpu: _Optional[float] = ...) -> None: ...

class QueryStepCostsResponse(_message.Message):
    __slots__ = ("key", "steps", "interpolated", "joules_per_step", "steps_per_kilowatt_hour", "throttled_share")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATED_FIELD_NUMBER: _ClassVar[int]
    JOULES_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_KILOWATT_HOUR_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_SHARE_FIELD_NUMBER: _ClassVar[int]
    key: str
    steps: _containers.RepeatedCompositeFieldContainer[StepCost]
    interpolated: _containers.RepeatedScalarFieldContainer[str]
    joules_per_step: float
    steps_per_kilowatt_hour: float
    throttled_share: float
    def __init__(self, key: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[StepCost, _Mapping]]] = ..., interpolated: _Optional[_Iterable[str]] = ..., joules_per_step: _Optional[float] = ..., steps_per_kilowatt_hour: _Optional[float] = ..., throttled_share: _Optional[float] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ForwardRequest(_message.Message):
    __slots__ = ("hello", "batch", "chunk")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    hello: ForwardHello
    batch: ForwardBatch
    chunk: FileChunk
    def __init__(self, hello: _Optional[_Union[ForwardHello, _Mapping]] = ..., batch: _Optional[_Union[ForwardBatch, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("welcome", "ack")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    welcome: ForwardWelcome
    ack: ForwardAck
    def __init__(self, welcome: _Optional[_Union[ForwardWelcome, _Mapping]] = ..., ack: _Optional[_Union[ForwardAck, _Mapping]] = ...) -> None: ...

class ForwardHello(_message.Message):
    __slots__ = ("agent_id", "record_version", "host_name", "machine_id", "labels", "agent_version", "first_seq")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    MACHINE_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    record_version: int
    host_name: str
    machine_id: str
    labels: _containers.ScalarMap[str, str]
    agent_version: str
    first_seq: int
    def __init__(self, agent_id: _Optional[str] = ..., record_version: _Optional[int] = ..., host_name: _Optional[str] = ..., machine_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., agent_version: _Optional[str] = ..., first_seq: _Optional[int] = ...) -> None: ...

class ForwardWelcome(_message.Message):
    __slots__ = ("cursor", "collector_version")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    collector_version: str
    def __init__(self, cursor: _Optional[int] = ..., collector_version: _Optional[str] = ...) -> None: ...

class ForwardBatch(_message.Message):
    __slots__ = ("batch_id", "after_seq", "through_seq", "records", "agent_last_seq", "agent_lag_seconds")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    AGENT_LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    after_seq: int
    through_seq: int
    records: _containers.RepeatedCompositeFieldContainer[ForwardRecord]
    agent_last_seq: int
    agent_lag_seconds: float
    def __init__(self, batch_id: _Optional[int] = ..., after_seq: _Optional[int] = ..., through_seq: _Optional[int] = ..., records: _Optional[_Iterable[_Union[ForwardRecord, _Mapping]]] = ..., agent_last_seq: _Optional[int] = ..., agent_lag_seconds: _Optional[float] = ...) -> None: ...

class ForwardAck(_message.Message):
    __slots__ = ("batch_id", "through_seq", "refused")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    through_seq: int
    refused: _containers.RepeatedCompositeFieldContainer[RefusedRecord]
    def __init__(self, batch_id: _Optional[int] = ..., through_seq: _Optional[int] = ..., refused: _Optional[_Iterable[_Union[RefusedRecord, _Mapping]]] = ...) -> None: ...

class RefusedRecord(_message.Message):
    __slots__ = ("seq", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reason: str
    def __init__(self, seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ForwardRecord(_message.Message):
    __slots__ = ("seq", "experiment", "metadata", "metric_block", "event", "file", "attachment", "model", "model_version", "checkpoint", "skipped")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METRIC_BLOCK_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    experiment: ExperimentRecord
    metadata: MetadataRecord
    metric_block: MetricBlockRecord
    event: EventRecord
    file: FileRecord
    attachment: AttachmentRecord
    model: ModelRecord
    model_version: ModelVersionRecord
    checkpoint: CheckpointRecord
    skipped: SkippedRange
    def __init__(self, seq: _Optional[int] = ..., experiment: _Optional[_Union[ExperimentRecord, _Mapping]] = ..., metadata: _Optional[_Union[MetadataRecord, _Mapping]] = ..., metric_block: _Optional[_Union[MetricBlockRecord, _Mapping]] = ..., event: _Optional[_Union[EventRecord, _Mapping]] = ..., file: _Optional[_Union[FileRecord, _Mapping]] = ..., attachment: _Optional[_Union[AttachmentRecord, _Mapping]] = ..., model: _Optional[_Union[ModelRecord, _Mapping]] = ..., model_version: _Optional[_Union[ModelVersionRecord, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointRecord, _Mapping]] = ..., skipped: _Optional[_Union[SkippedRange, _Mapping]] = ...) -> None: ...

class ExperimentRecord(_message.Message):
    __slots__ = ("id", "name", "namespace", "owner", "framework", "task", "external_id", "created_ns", "updated_ns")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    namespace: str
    owner: str
    framework: int
    task: str
    external_id: str
    created_ns: int
    updated_ns: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., owner: _Optional[str] = ..., framework: _Optional[int] = ..., task: _Optional[str] = ..., external_id: _Optional[str] = ..., created_ns: _Optional[int] = ..., updated_ns: _Optional[int] = ...) -> None: ...

class MetadataRecord(_message.Message):
    __slots__ = ("parent_id", "key", "value_json", "updated_ns")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    key: str
    value_json: str
    updated_ns: int
    def __init__(self, parent_id: _Optional[str] = ..., key: _Optional[str] = ..., value_json: _Optional[str] = ..., updated_ns: _Optional[int] = ...) -> None: ...

class MetricBlockRecord(_message.Message):
    __slots__ = ("parent_id", "key", "count", "step_min", "step_max", "wallclock_min", "wallclock_max", "data")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STEP_MIN_FIELD_NUMBER: _ClassVar[int]
    STEP_MAX_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_MIN_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_MAX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    key: str
    count: int
    step_min: int
    step_max: int
    wallclock_min: int
    wallclock_max: int
    data: bytes
    def __init__(self, parent_id: _Optional[str] = ..., key: _Optional[str] = ..., count: _Optional[int] = ..., step_min: _Optional[int] = ..., step_max: _Optional[int] = ..., wallclock_min: _Optional[int] = ..., wallclock_max: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class EventRecord(_message.Message):
    __slots__ = ("parent_id", "name", "source", "wallclock_ns", "metadata_json", "created_ns")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WALLCLOCK_NS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    name: str
    source: str
    wallclock_ns: int
    metadata_json: str
    created_ns: int
    def __init__(self, parent_id: _Optional[str] = ..., name: _Optional[str] = ..., source: _Optional[str] = ..., wallclock_ns: _Optional[int] = ..., metadata_json: _Optional[str] = ..., created_ns: _Optional[int] = ...) -> None: ...

class FileRecord(_message.Message):
    __slots__ = ("id", "parent_id", "file_type", "checksum", "path", "blob", "size", "created_ns", "updated_ns")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    id: str
    parent_id: str
    file_type: int
    checksum: str
    path: str
    blob: str
    size: int
    created_ns: int
    updated_ns: int
    def __init__(self, id: _Optional[str] = ..., parent_id: _Optional[str] = ..., file_type: _Optional[int] = ..., checksum: _Optional[str] = ..., path: _Optional[str] = ..., blob: _Optional[str] = ..., size: _Optional[int] = ..., created_ns: _Optional[int] = ..., updated_ns: _Optional[int] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("blob", "offset", "data", "size")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    blob: str
    offset: int
    data: bytes
    size: int
    def __init__(self, blob: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...

class AttachmentRecord(_message.Message):
    __slots__ = ("experiment_id", "pid", "attached_ns", "detached_ns")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_NS_FIELD_NUMBER: _ClassVar[int]
    DETACHED_NS_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    pid: int
    attached_ns: int
    detached_ns: int
    def __init__(self, experiment_id: _Optional[str] = ..., pid: _Optional[int] = ..., attached_ns: _Optional[int] = ..., detached_ns: _Optional[int] = ...) -> None: ...

class ModelRecord(_message.Message):
    __slots__ = ("id", "name", "owner", "namespace", "description", "task", "created_ns", "updated_ns")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    owner: str
    namespace: str
    description: str
    task: str
    created_ns: int
    updated_ns: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., namespace: _Optional[str] = ..., description: _Optional[str] = ..., task: _Optional[str] = ..., created_ns: _Optional[int] = ..., updated_ns: _Optional[int] = ...) -> None: ...

class ModelVersionRecord(_message.Message):
    __slots__ = ("id", "model_id", "name", "version", "description", "framework", "unique_tags_json", "created_ns", "updated_ns")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_TAGS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    id: str
    model_id: str
    name: str
    version: str
    description: str
    framework: int
    unique_tags_json: str
    created_ns: int
    updated_ns: int
    def __init__(self, id: _Optional[str] = ..., model_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., framework: _Optional[int] = ..., unique_tags_json: _Optional[str] = ..., created_ns: _Optional[int] = ..., updated_ns: _Optional[int] = ...) -> None: ...

class CheckpointRecord(_message.Message):
    __slots__ = ("id", "experiment_id", "epoch", "metrics_json", "created_ns", "updated_ns")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    id: str
    experiment_id: str
    epoch: int
    metrics_json: str
    created_ns: int
    updated_ns: int
    def __init__(self, id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., epoch: _Optional[int] = ..., metrics_json: _Optional[str] = ..., created_ns: _Optional[int] = ..., updated_ns: _Optional[int] = ...) -> None: ...

class SkippedRange(_message.Message):
    __slots__ = ("from_seq", "through_seq", "records", "reason")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    through_seq: int
    records: int
    reason: str
    def __init__(self, from_seq: _Optional[int] = ..., through_seq: _Optional[int] = ..., records: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

"""The values the SDK hands to and takes from trainers: plain dataclasses and enums, no gRPC."""

from __future__ import annotations

import enum
import mimetypes
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, NamedTuple, Optional, Union


class MLFramework(enum.IntEnum):
    """The framework an experiment trains with (ModelBox's enum, same numbers)."""

    UNKNOWN = 0
    PYTORCH = 1
    KERAS = 2


class FileType(enum.IntEnum):
    """What an artifact holds (ModelBox's enum, same numbers)."""

    UNDEFINED = 0
    MODEL = 1
    CHECKPOINT = 2
    TEXT = 3
    IMAGE = 4
    AUDIO = 5
    VIDEO = 6


@dataclass(frozen=True)
class EventSource:
    """Who raised an event: the trainer, a data loader, a scheduler…"""

    name: str


@dataclass
class Event:
    """Something that happened at one moment of an experiment.

    ``wallclock_time`` is nanoseconds since the Unix epoch (an ``int``) or a ``datetime``;
    ``None`` means the time of the ``log_event`` call. Read back, it is always an ``int``.
    """

    name: str
    source: EventSource = field(default_factory=lambda: EventSource(name=""))
    wallclock_time: Optional[Union[int, datetime]] = None
    metadata: Dict[str, Any] = field(default_factory=dict)


class MetricValue(NamedTuple):
    """One point of a series: a float, or the str or bytes a text or binary tensor logged."""

    step: int
    wallclock_time: int
    value: Union[float, str, bytes]


@dataclass(frozen=True)
class MetadataUpdate:
    """What ``update_metadata`` did: keys written and the agent's time of the write.

    ``queued`` is true when the agent could not be reached and the update waits in the buffer
    (it is sent with the metrics once the agent is back); ``updated_at`` is then ``None``.
    """

    num_keys_written: int
    updated_at: Optional[datetime]
    queued: bool = False


@dataclass(frozen=True)
class Artifact:
    """A file of an experiment: uploaded into the agent's store, or tracked where it lies."""

    id: str
    parent: str
    path: str
    checksum: str
    file_type: FileType
    created_at: Optional[datetime] = None

    @property
    def mime_type(self) -> str:
        """Inferred from the path's extension; ``application/octet-stream`` when unknown."""
        return guess_mime_type(self.path)


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment as the agent describes it."""

    id: str
    name: str
    namespace: str
    owner: str
    framework: MLFramework
    external_id: str
    created_at: Optional[datetime]
    updated_at: Optional[datetime]


# Extensions mimetypes does not know, as ML files are commonly named.
_EXTRA_TYPES = {
    ".pt": "application/x-pytorch",
    ".pth": "application/x-pytorch",
    ".ckpt": "application/x-checkpoint",
    ".safetensors": "application/x-safetensors",
    ".onnx": "application/x-onnx",
    ".h5": "application/x-hdf5",
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
    ".parquet": "application/x-parquet",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".md": "text/markdown",
}


def guess_mime_type(path: str) -> str:
    lower = path.lower()
    for extension, mime in _EXTRA_TYPES.items():
        if lower.endswith(extension):
            return mime
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


def guess_file_type(path: str) -> FileType:
    """The FileType a path's extension suggests (a checkpoint by its name or extension)."""
    mime = guess_mime_type(path)
    lower = path.lower()
    if lower.endswith(".ckpt") or "checkpoint" in lower.rsplit("/", 1)[-1]:
        return FileType.CHECKPOINT
    if mime in ("application/x-pytorch", "application/x-safetensors", "application/x-onnx", "application/x-hdf5"):
        return FileType.MODEL
    for prefix, kind in (("image/", FileType.IMAGE), ("audio/", FileType.AUDIO), ("video/", FileType.VIDEO)):
        if mime.startswith(prefix):
            return kind
    if mime.startswith("text/") or mime in ("application/json", "application/yaml", "application/x-yaml"):
        return FileType.TEXT
    return FileType.UNDEFINED

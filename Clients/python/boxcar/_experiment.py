"""``Experiment``: what a trainer logs into, and reads back."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import grpc

from ._errors import BoxcarError, error_from_rpc
from ._proto.boxcar.v1 import agent_pb2
from ._proto.modelbox import modelbox_pb2
from ._batches import EventRecord, MetadataRecord, Points
from ._types import (
    Artifact,
    Event,
    EventSource,
    ExperimentInfo,
    FileType,
    MetadataUpdate,
    MetricValue,
    guess_file_type,
)
from ._values import (
    from_struct,
    from_timestamp,
    from_timestamp_ns,
    metric_value,
    nanoseconds,
    timestamp,
    to_struct,
)

if TYPE_CHECKING:
    from ._client import Boxcar
    import pandas

log = logging.getLogger("boxcar")

CHUNK_BYTES = 1 << 20  # upload and download frames

_FAST_VALUE_TYPES = (float, int)
_STEP_END = 2**64
_WALL_MIN, _WALL_MAX = -(2**63), 2**63 - 1


class Experiment:
    """One experiment: log into it, read it back. Made by ``Boxcar.new_experiment`` (or found by
    ``Boxcar.experiment``); a context manager that finishes it on exit."""

    def __init__(self, client: Boxcar, info: ExperimentInfo, attached: bool):
        self._client = client
        self.info = info
        self._attached = attached

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def namespace(self) -> str:
        return self.info.namespace

    def __repr__(self) -> str:
        return f"Experiment(id={self.id!r}, name={self.name!r}, namespace={self.namespace!r})"

    # MARK: logging (never waits for the agent)

    def log_metrics(self, metrics: Dict[str, Any], step: int, wallclock: Union[int, datetime, None] = None) -> None:
        """Buffers one point per key at ``step``. Values: int and float (numpy and torch scalars
        too) are stored as doubles, str as a text tensor, bytes as a bytes tensor. ``wallclock``
        is nanoseconds since the epoch or a datetime, the time of the call by default."""
        wall = time.time_ns() if wallclock is None else wallclock
        if type(step) is not int or not 0 <= step < _STEP_END:
            _bad_step(step)
        if type(wall) is not int:
            wall = nanoseconds(wall, 0)
        if not _WALL_MIN <= wall <= _WALL_MAX:
            raise ValueError(f"wallclock must be nanoseconds since the epoch within int64, not {wall}")
        for key, value in metrics.items():
            if type(value) not in _FAST_VALUE_TYPES or type(key) is not str:
                values = _converted(metrics)
                break
        else:
            # Ints become floats in the shipper's columns; the copy keeps later changes of the
            # caller's dict out of what was logged.
            values = {key: value if type(value) is float else float(value) for key, value in metrics.items()}
        if values:
            self._client._enqueue(Points(self.id, step, wall, values))

    def log_event(self, event: Event) -> None:
        """Buffers one event (its ``wallclock_time`` defaults to the time of the call)."""
        proto = agent_pb2.ParentEvent(
            parent_id=self.id,
            event=modelbox_pb2.Event(
                name=event.name,
                source=modelbox_pb2.EventSource(name=event.source.name if event.source else ""),
                wallclock_time=timestamp(nanoseconds(event.wallclock_time, time.time_ns())),
                metadata=modelbox_pb2.Metadata(metadata=to_struct(event.metadata or {}).fields),
            ),
        )
        self._client._enqueue(EventRecord(proto))

    def update_metadata(self, key: str, value: Any) -> MetadataUpdate:
        """Sets one metadata key (values keep their JSON types; ints come back as ints).

        Written at once; with the agent away (and ``strict`` off) the update is buffered and sent
        with the metrics when it is back (``queued`` in the result)."""
        struct = to_struct({key: value})
        try:
            response = self._client._call(
                self._client._modelbox.UpdateMetadata,
                modelbox_pb2.UpdateMetadataRequest(parent_id=self.id, metadata=modelbox_pb2.Metadata(metadata=struct.fields)),
            )
        except BoxcarError as error:
            if self._client.strict or error.code != "UNAVAILABLE":
                raise
            self._client._warn_unreachable(error)
            self._client._enqueue(MetadataRecord(agent_pb2.MetadataUpdate(parent_id=self.id, metadata=struct.fields)))
            return MetadataUpdate(num_keys_written=1, updated_at=None, queued=True)
        return MetadataUpdate(num_keys_written=response.num_keys_written, updated_at=from_timestamp(response.updated_at))

    def flush(self, timeout: Optional[float] = None) -> bool:
        """``Boxcar.flush``: waits until what was logged is acknowledged."""
        return self._client.flush(timeout)

    def finish(self) -> None:
        """Flushes, and detaches this process from the experiment."""
        self._client.flush(self._client.exit_timeout)
        if self._attached:
            self._attached = False
            try:
                self._client._call(self._client._agent.Detach, agent_pb2.DetachRequest(experiment_id=self.id, pid=os.getpid()))
            except BoxcarError as error:
                if self._client.strict:
                    raise
                log.warning("boxcar: could not detach from %s: %s", self.id, error)

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    # MARK: artifacts

    def upload_artifact(self, paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> List[str]:
        """Uploads each file into the agent's store, with its SHA-256 (the agent checks it) and a
        file type from its extension; returns the artifact ids, in order."""
        ids = []
        for path in _paths(paths):
            ids.append(self._upload(Path(path)))
        return ids

    def _upload(self, path: Path) -> str:
        digest = _sha256(path)
        metadata = modelbox_pb2.FileMetadata(
            parent_id=self.id, path=str(path), checksum=digest, file_type=int(guess_file_type(str(path))),
        )

        def frames() -> Iterator[modelbox_pb2.UploadFileRequest]:
            yield modelbox_pb2.UploadFileRequest(metadata=metadata)
            with open(path, "rb") as file:
                while True:
                    chunk = file.read(CHUNK_BYTES)
                    if not chunk:
                        return
                    yield modelbox_pb2.UploadFileRequest(chunks=chunk)

        try:
            return self._client._modelbox.UploadFile(frames()).file_id
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def track_artifacts(self, paths: Union[str, Sequence[str]]) -> int:
        """Records each path (a local file or directory, a URL) without copying it. Local files
        get their SHA-256; directories and paths this process cannot read (s3://…) none."""
        files = []
        for path in _paths(paths):
            text = str(path)
            local = Path(text)
            checksum = _sha256(local) if "://" not in text and local.is_file() and os.access(local, os.R_OK) else ""
            files.append(modelbox_pb2.FileMetadata(
                parent_id=self.id, path=text, checksum=checksum, file_type=int(guess_file_type(text))))
        response = self._client._call(self._client._modelbox.TrackArtifacts, modelbox_pb2.TrackArtifactsRequest(files=files))
        return response.num_files_tracked

    def artifacts(self) -> List[Artifact]:
        """Every artifact of the experiment, uploaded or tracked."""
        response = self._client._call(self._client._modelbox.ListArtifacts, modelbox_pb2.ListArtifactsRequest(parent_id=self.id))
        return [
            Artifact(id=item.id, parent=item.parent_id, path=item.path, checksum=item.checksum,
                     file_type=FileType(item.file_type) if item.file_type in FileType._value2member_map_ else FileType.UNDEFINED,
                     created_at=from_timestamp(item.created_at))
            for item in response.files
        ]

    def download_artifact(self, artifact_id: str, path: Union[str, os.PathLike]) -> Path:
        """Writes an uploaded artifact's bytes to ``path`` (whole or not at all); returns it."""
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        try:
            with open(partial, "wb") as file:
                for frame in self._client._modelbox.DownloadFile(
                        modelbox_pb2.DownloadFileRequest(file_id=artifact_id), timeout=None):
                    if frame.WhichOneof("stream_frame") == "chunks":
                        file.write(frame.chunks)
            os.replace(partial, target)
        except grpc.RpcError as error:
            partial.unlink(missing_ok=True)
            raise error_from_rpc(error) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    # MARK: reading back (after a flush, so that what this process logged is there)

    def metrics(self, keys: Optional[Iterable[str]] = None) -> Dict[str, List[MetricValue]]:
        """Every series of the experiment (or those of ``keys``): key → points in step order.
        Includes the machine's series (``system/…``) for the windows a trainer was attached."""
        self._client.flush(self._client.timeout)
        request = agent_pb2.QueryMetricsRequest(parent_id=self.id, keys=list(keys or []))
        response = self._client._call(self._client._agent.QueryMetrics, request)
        out: Dict[str, List[MetricValue]] = {}
        for series in response.series:
            strings, blobs = series.string_values, series.bytes_values
            points = []
            for index, (step, wall, value) in enumerate(zip(series.step, series.wallclock, series.value)):
                if index in strings:
                    value = strings[index]
                elif index in blobs:
                    value = blobs[index]
                points.append(MetricValue(step, wall, value))
            out[series.key] = points
        return out

    def metrics_frame(self, keys: Optional[Iterable[str]] = None, *, system: bool = False) -> "pandas.DataFrame":
        """The experiment's metrics as a pandas DataFrame, a row a point: ``key``, ``step``,
        ``wallclock`` (UTC, from the nanoseconds the SDK logs) and ``value`` (float, or the
        string or bytes logged). The run's own series, or those of ``keys``; ``system=True`` adds
        the machine's series of the windows a trainer was attached (``system/…``, whose steps are
        the sampler's milliseconds). A column per key, by step:
        ``frame.pivot_table(index="step", columns="key", values="value")``.

        Needs pandas (``pip install 'boxcar[pandas]'``); without it, ImportError says so."""
        try:
            import numpy  # pandas needs it
            import pandas
        except ImportError:
            raise ImportError("Experiment.metrics_frame() needs pandas, which is not installed: pip install pandas (or 'boxcar[pandas]')") from None
        self._client.flush(self._client.timeout)
        request = agent_pb2.QueryMetricsRequest(parent_id=self.id, keys=list(keys or []))
        response = self._client._call(self._client._agent.QueryMetrics, request)
        frames = []
        for series in response.series:
            if not system and not keys and series.key.startswith("system/"):
                continue
            values = list(series.value)
            for index, text in series.string_values.items():
                values[index] = text
            for index, blob in series.bytes_values.items():
                values[index] = blob
            frames.append(pandas.DataFrame({
                "key": pandas.Series([series.key] * len(values), dtype="string"),
                "step": pandas.Series(numpy.array(series.step, dtype=numpy.uint64)),
                "wallclock": pandas.to_datetime(pandas.Series(numpy.array(series.wallclock, dtype=numpy.int64)), unit="ns", utc=True),
                "value": pandas.Series(values, dtype="float64" if not series.string_values and not series.bytes_values else "object"),
            }))
        if not frames:
            return pandas.DataFrame({
                "key": pandas.Series([], dtype="string"), "step": pandas.Series([], dtype="uint64"),
                "wallclock": pandas.Series([], dtype="datetime64[ns, UTC]"), "value": pandas.Series([], dtype="float64"),
            })
        return pandas.concat(frames, ignore_index=True)

    def events(self) -> List[Event]:
        """Every event of the experiment, in time order."""
        self._client.flush(self._client.timeout)
        response = self._client._call(self._client._modelbox.ListEvents, modelbox_pb2.ListEventsRequest(parent_id=self.id))
        return [
            Event(name=item.name, source=EventSource(name=item.source.name),
                  wallclock_time=from_timestamp_ns(item.wallclock_time), metadata=from_struct(item.metadata.metadata))
            for item in response.events
        ]

    def metadata(self) -> Dict[str, Any]:
        """The experiment's metadata, with JSON types (integral numbers as int)."""
        self._client.flush(self._client.timeout)
        response = self._client._call(self._client._modelbox.ListMetadata, modelbox_pb2.ListMetadataRequest(parent_id=self.id))
        return from_struct(response.metadata)


def _converted(metrics: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"metric keys must be str, not {type(key).__name__}")
        out[key] = metric_value(value)
    return out


def _bad_step(step: Any) -> None:
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, not {type(step).__name__}")
    raise ValueError(f"step must be from 0 to 2**64 - 1, not {step}")


def _paths(paths: Any) -> List[Any]:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()

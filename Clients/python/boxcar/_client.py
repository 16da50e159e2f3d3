"""``Boxcar``, the connection to the agent, and ``Experiment``, what a trainer logs into."""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import os
import threading
import time
import warnings
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import grpc

from ._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
from ._proto.modelbox import modelbox_pb2, modelbox_pb2_grpc
from ._shipper import EVENT, METADATA, METRICS, Shipper, status
from ._types import (
    Artifact,
    Event,
    EventSource,
    ExperimentInfo,
    FileType,
    MetadataUpdate,
    MetricValue,
    MLFramework,
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

log = logging.getLogger("boxcar")

CHUNK_BYTES = 1 << 20  # upload and download frames
MAX_MESSAGE_BYTES = 64 << 20  # the agent's limit on one message

_FAST_VALUE_TYPES = (float, int)


class BoxcarError(Exception):
    """A call the agent refused or could not answer; ``code`` is the gRPC status code name."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


def default_target() -> str:
    """``$BOXCAR_SOCKET``, else the agent's default socket: ``$XDG_RUNTIME_DIR/boxcar/agent.sock``,
    else ``/tmp/boxcar-<uid>/agent.sock``."""
    configured = os.environ.get("BOXCAR_SOCKET")
    if configured:
        return configured
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return f"{runtime}/boxcar/agent.sock"
    return f"/tmp/boxcar-{os.getuid()}/agent.sock"


def grpc_target(target: str) -> str:
    """A socket path (absolute or ./relative) becomes ``unix://PATH``; ``host:port`` and URIs
    with a scheme are used as given."""
    if "://" in target or target.startswith("unix:"):
        return target
    if target.startswith("/") or target.startswith("."):
        return "unix://" + os.path.abspath(target)
    return target


_live_clients: "weakref.WeakSet[Boxcar]" = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for client in list(_live_clients):
        client.close()


class Boxcar:
    """The trainer's connection to a Boxcar agent.

    ``Boxcar()`` uses ``$BOXCAR_SOCKET`` or the agent's default socket; ``Boxcar("localhost:8085")``
    TCP; ``Boxcar("/path/agent.sock")`` a socket. Metrics and events are buffered and shipped by a
    background thread: ``log_metrics`` and ``log_event`` never wait for the agent. ``max_buffered``
    bounds the buffer in points and events; when it is full, ``on_full="block"`` (the default) makes
    the logging call wait for room, ``on_full="drop"`` drops the new records and counts them in
    ``dropped``. An agent that is down gets a warning and the SDK reconnects with backoff;
    ``strict=True`` raises ``BoxcarError`` instead. Interpreter exit flushes (at most
    ``exit_timeout`` seconds). ``token`` (or ``$BOXCAR_TOKEN``) is sent as a bearer token on every
    call, for an agent that listens beyond loopback.
    """

    def __init__(
        self,
        target: Optional[str] = None,
        *,
        strict: bool = False,
        max_buffered: int = 1_000_000,
        on_full: str = "block",
        timeout: float = 10.0,
        exit_timeout: float = 10.0,
        token: Optional[str] = None,
    ):
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full must be 'block' or 'drop', not {on_full!r}")
        if max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        self.target = grpc_target(target or default_target())
        # The bearer token of an agent listening with --allow-remote (or $BOXCAR_TOKEN).
        self._token = token or os.environ.get("BOXCAR_TOKEN") or None
        self.strict = strict
        self.timeout = timeout
        self.exit_timeout = exit_timeout
        self._lock = threading.Lock()
        self._channel: Optional[grpc.Channel] = None
        self._unreachable_warned = False
        # Experiments made while the agent was away: created (and attached) before the next stream.
        self._to_create: Dict[str, Tuple[modelbox_pb2.CreateExperimentRequest, bool]] = {}
        self._closed = False
        self._shipper = Shipper(
            connect=self._log_channel,
            before_stream=self._create_missed,
            max_buffered=max_buffered,
            block_when_full=on_full == "block",
        )
        _live_clients.add(self)

    # MARK: connections

    def _open_channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        if self._token is None:
            return channel
        return _with_token(channel, self._token)

    def _stubs(self):
        with self._lock:
            if self._channel is None:
                self._channel = self._open_channel()
            return modelbox_pb2_grpc.ModelStoreStub(self._channel), agent_pb2_grpc.AgentStub(self._channel)

    def _log_channel(self) -> grpc.Channel:
        # Its own channel, so that a broken stream does not share a connection's fate with the
        # caller's unary calls; the readiness wait makes a down agent fail here, not mid-stream.
        channel = self._open_channel()
        try:
            grpc.channel_ready_future(channel).result(timeout=self.timeout)
        except BaseException:
            channel.close()
            raise
        return channel

    @property
    def _modelbox(self) -> modelbox_pb2_grpc.ModelStoreStub:
        return self._stubs()[0]

    @property
    def _agent(self) -> agent_pb2_grpc.AgentStub:
        return self._stubs()[1]

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise _error(error) from None

    # MARK: experiments

    def new_experiment(
        self,
        name: str,
        owner: str = "",
        namespace: str = "",
        external_id: str = "",
        framework: MLFramework = MLFramework.UNKNOWN,
        task: str = "",
        metadata: Optional[Dict[str, Any]] = None,
        attach: bool = True,
    ) -> "Experiment":
        """Creates the experiment (or finds it: the id is derived from name and namespace) and
        attaches this process, so the agent records the machine and the process tree against it.

        With the agent away (and ``strict`` off) the id is derived here, a warning is logged, and
        the experiment is created and attached as soon as the agent is back, before its metrics.
        """
        request = modelbox_pb2.CreateExperimentRequest(
            name=name, owner=owner, namespace=namespace, framework=int(framework),
            task=task, external_id=external_id,
            metadata=modelbox_pb2.Metadata(metadata=to_struct(metadata or {}).fields),
        )
        info = ExperimentInfo(
            id=experiment_id(name, namespace), name=name, namespace=namespace, owner=owner,
            framework=MLFramework(framework), external_id=external_id, created_at=None, updated_at=None,
        )
        try:
            response = self._call(self._modelbox.CreateExperiment, request)
            info = dataclasses.replace(info, id=response.experiment_id, created_at=from_timestamp(response.created_at),
                            updated_at=from_timestamp(response.updated_at))
            if attach:
                self._call(self._agent.Attach, agent_pb2.AttachRequest(experiment_id=info.id, pid=os.getpid()))
        except BoxcarError as error:
            if self.strict or error.code != "UNAVAILABLE":
                raise
            self._warn_unreachable(error)
            with self._lock:
                self._to_create[info.id] = (request, attach)
        return Experiment(self, info, attached=attach)

    def _create_missed(self) -> None:
        with self._lock:
            missed = list(self._to_create.items())
        for experiment, (request, attach) in missed:
            try:
                self._call(self._modelbox.CreateExperiment, request)
                if attach:
                    self._call(self._agent.Attach, agent_pb2.AttachRequest(experiment_id=experiment, pid=os.getpid()))
            except BoxcarError as error:
                if error.code == "UNAVAILABLE":
                    raise  # still away: tried again with the next connection
                # Refused for good (bad input): its batches will be refused in turn, and counted.
                log.warning("boxcar: the agent refused experiment %s made while it was away: %s", experiment, error)
                self._shipper.error = self._shipper.error or error
            with self._lock:
                self._to_create.pop(experiment, None)

    def experiment(self, experiment_id: str) -> "Experiment":
        """An experiment that exists, by id (``BoxcarError`` NOT_FOUND otherwise)."""
        response = self._call(self._modelbox.GetExperiment, modelbox_pb2.GetExperimentRequest(id=experiment_id))
        return Experiment(self, _info(response.experiment), attached=False)

    def experiments(self, namespace: Optional[str] = None) -> List["Experiment"]:
        """The experiments of one namespace, or of every namespace when ``namespace`` is None."""
        request = agent_pb2.ListExperimentsRequest()
        if namespace is not None:
            request.namespace = namespace
        response = self._call(self._agent.ListExperiments, request)
        return [Experiment(self, _info(item), attached=False) for item in response.experiments]

    # MARK: the buffer

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every metric and event logged before the call is acknowledged by the agent
        (committed to its database). False when ``timeout`` passed first; with ``strict``, a
        timeout or a refused batch raises ``BoxcarError``."""
        done = self._shipper.flush(timeout)
        if self.strict:
            self._raise_background_error()
            if not done:
                raise BoxcarError(f"flush timed out with {self._shipper.pending} records not acknowledged", "DEADLINE_EXCEEDED")
        return done

    @property
    def dropped(self) -> int:
        """Records dropped because the buffer was full (``on_full="drop"``)."""
        return self._shipper.dropped

    @property
    def refused(self) -> int:
        """Records of batches the agent refused as bad input."""
        return self._shipper.refused

    @property
    def pending(self) -> int:
        """Records logged and not acknowledged yet."""
        return self._shipper.pending

    def close(self) -> None:
        """Flushes (at most ``exit_timeout`` seconds) and closes the connections."""
        if self._closed:
            return
        self._closed = True
        if not self._shipper.close(self.exit_timeout):
            log.warning("boxcar: %d records were not acknowledged before closing", self._shipper.pending)
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
        _live_clients.discard(self)

    def __enter__(self) -> "Boxcar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _enqueue(self, item: tuple) -> None:
        if self.strict:
            self._raise_background_error()
        self._shipper.put(item)

    def _raise_background_error(self) -> None:
        error = self._shipper.error
        if error is not None:
            self._shipper.error = None
            if isinstance(error, BoxcarError):
                raise error
            if isinstance(error, grpc.RpcError):
                raise _error(error)
            raise BoxcarError(str(error), "UNAVAILABLE")

    def _warn_unreachable(self, error: BaseException) -> None:
        if not self._unreachable_warned:
            self._unreachable_warned = True
            warnings.warn(f"boxcar: the agent at {self.target} is not reachable ({error}); "
                          "logging into the buffer and retrying", RuntimeWarning, stacklevel=3)


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
            self._client._enqueue((METRICS, self.id, step, wall, values))

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
        self._client._enqueue((EVENT, proto))

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
            self._client._enqueue((METADATA, agent_pb2.MetadataUpdate(parent_id=self.id, metadata=struct.fields)))
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
            raise _error(error) from None

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
            raise _error(error) from None
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


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def _with_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    return grpc.intercept_channel(channel, _TokenInterceptor(token))


def experiment_id(name: str, namespace: str) -> str:
    """The id ModelBox (and Boxcar) give an experiment: SHA-1 of name then namespace."""
    return hashlib.sha1((name + namespace).encode("utf-8")).hexdigest()


def _info(item: modelbox_pb2.Experiment) -> ExperimentInfo:
    framework = MLFramework(item.framework) if item.framework in MLFramework._value2member_map_ else MLFramework.UNKNOWN
    return ExperimentInfo(
        id=item.id, name=item.name, namespace=item.namespace, owner=item.owner, framework=framework,
        external_id=item.external_id, created_at=from_timestamp(item.created_at), updated_at=from_timestamp(item.updated_at),
    )


def _converted(metrics: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"metric keys must be str, not {type(key).__name__}")
        out[key] = metric_value(value)
    return out


_STEP_END = 2**64
_WALL_MIN, _WALL_MAX = -(2**63), 2**63 - 1


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


def _error(error: grpc.RpcError) -> BoxcarError:
    code, details = status(error)
    name = code.name if code is not None else "UNKNOWN"
    return BoxcarError(f"{name}: {details}", name)

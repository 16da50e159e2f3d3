"""``Boxcar``: the trainer's connection to the agent, and the buffer its logging goes through."""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import os
import threading
import warnings
import weakref
from typing import Any, Dict, List, Optional, Tuple

import grpc

from ._channel import check_socket, default_target, grpc_target, with_token
from ._errors import BoxcarError, error_from_rpc
from ._experiment import Experiment
from ._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
from ._proto.modelbox import modelbox_pb2, modelbox_pb2_grpc
from ._batches import Item
from ._shipper import Refused, Shipper
from ._types import ExperimentInfo, MLFramework
from ._values import from_timestamp, to_struct

log = logging.getLogger("boxcar")

MAX_MESSAGE_BYTES = 64 << 20  # the agent's limit on one message


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
        check_socket(self.target)
        channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        if self._token is None:
            return channel
        return with_token(channel, self._token)

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
            raise error_from_rpc(error) from None

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

    def _enqueue(self, item: Item) -> None:
        if self.strict:
            self._raise_background_error()
        self._shipper.put(item)

    def _raise_background_error(self) -> None:
        error = self._shipper.error
        if error is not None:
            self._shipper.error = None
            if isinstance(error, BoxcarError):
                raise error
            if isinstance(error, Refused):
                raise error.error
            if isinstance(error, grpc.RpcError):
                raise error_from_rpc(error)
            raise BoxcarError(str(error), "UNAVAILABLE")

    def _warn_unreachable(self, error: BaseException) -> None:
        if not self._unreachable_warned:
            self._unreachable_warned = True
            warnings.warn(f"boxcar: the agent at {self.target} is not reachable ({error}); "
                          "logging into the buffer and retrying", RuntimeWarning, stacklevel=3)


def experiment_id(name: str, namespace: str) -> str:
    """The id ModelBox (and Boxcar) give an experiment: SHA-1 of name then namespace."""
    return hashlib.sha1((name + namespace).encode("utf-8")).hexdigest()


def _info(item: modelbox_pb2.Experiment) -> ExperimentInfo:
    framework = MLFramework(item.framework) if item.framework in MLFramework._value2member_map_ else MLFramework.UNKNOWN
    return ExperimentInfo(
        id=item.id, name=item.name, namespace=item.namespace, owner=item.owner, framework=framework,
        external_id=item.external_id, created_at=from_timestamp(item.created_at), updated_at=from_timestamp(item.updated_at),
    )

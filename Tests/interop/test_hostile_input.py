"""Malformed and hostile requests against one agent: each gets its documented status, the agent
stays up, and nothing of a refused request is stored (a snapshot of everything readable is the
same before and after). Then the attacks that are not one request: 100,000 distinct keys,
garbage bytes on the socket, 1,000 streams that send nothing."""

from __future__ import annotations

import hashlib
import math
import os
import socket as sockets
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from conftest import Agent, running_agent
from postgres import wait_for
from boxcar._proto.boxcar.v1 import agent_pb2 as ag
from boxcar._proto.boxcar.v1 import agent_pb2_grpc
from boxcar._proto.modelbox import modelbox_pb2 as mb
from boxcar._proto.modelbox import modelbox_pb2_grpc

MAX_UPLOAD = 1 << 20  # the agent below runs with --max-upload-bytes 1 MiB
OPTIONS = [("grpc.max_send_message_length", 100 << 20), ("grpc.max_receive_message_length", 100 << 20)]


class Target:
    def __init__(self, agent: Agent):
        self.agent = agent
        self.channel = grpc.insecure_channel(agent.target, options=OPTIONS)
        self.ms = modelbox_pb2_grpc.ModelStoreStub(self.channel)
        self.ag = agent_pb2_grpc.AgentStub(self.channel)
        self.parent = self.ms.CreateExperiment(mb.CreateExperimentRequest(name="hostile", namespace="h")).experiment_id
        self.ms.LogMetrics(mb.LogMetricsRequest(parent_id=self.parent, key="loss", value=mb.MetricsValue(step=1, f_val=0.5)))
        self.model = self.ms.CreateModel(mb.CreateModelRequest(name="m", namespace="h")).id

    def raw(self, method: str):
        return self.channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)

    def snapshot(self) -> tuple:
        """Everything a client can read of the store, and the files under artifacts/."""
        experiments = sorted(e.id for e in self.ag.ListExperiments(ag.ListExperimentsRequest()).experiments)
        metrics = sorted((m.key, len(m.values)) for m in self.ms.GetMetrics(mb.GetMetricsRequest(parent_id=self.parent)).metrics)
        metadata = sorted(self.ms.ListMetadata(mb.ListMetadataRequest(parent_id=self.parent)).metadata.keys())
        events = len(self.ms.ListEvents(mb.ListEventsRequest(parent_id=self.parent)).events)
        artifacts = len(self.ms.ListArtifacts(mb.ListArtifactsRequest(parent_id=self.parent)).files)
        models = len(self.ms.ListModels(mb.ListModelsRequest(namespace="h")).models)
        files = sorted(str(p) for p in self.agent.artifacts.rglob("*") if p.is_file())
        return experiments, metrics, metadata, events, artifacts, models, files


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile")
    with running_agent(directory, "--max-upload-bytes", str(MAX_UPLOAD), "--sample-interval", "0") as agent:
        yield Target(agent)


def value(number: float) -> struct_pb2.Value:
    return struct_pb2.Value(number_value=number)


def nested(depth: int) -> struct_pb2.Value:
    current = struct_pb2.Value(string_value="leaf")
    for _ in range(depth):
        wrapper = struct_pb2.Value()
        wrapper.list_value.values.append(current)
        current = wrapper
    return current


def metadata(**values) -> mb.Metadata:
    return mb.Metadata(metadata=values)


def log_batch(t: Target, **columns) -> list:
    batch = ag.LogBatch(batch_id=1, series=columns.pop("series", [ag.SeriesRef(parent_id=t.parent, key="k")]),
                        points=ag.FloatColumns(**columns))
    return list(t.ag.Log(iter([batch]), timeout=60))


def upload(t: Target, frames: list):
    return t.ms.UploadFile(iter(frames), timeout=60)


def file_frame(path: str, parent: str, checksum: str = "") -> mb.UploadFileRequest:
    return mb.UploadFileRequest(metadata=mb.FileMetadata(parent_id=parent, path=path, checksum=checksum))


LONG = "n" * 300
CASES = [
    # ModelStore: experiments
    ("create experiment: empty request", lambda t: t.ms.CreateExperiment(mb.CreateExperimentRequest()), "INVALID_ARGUMENT"),
    ("create experiment: 300-byte name", lambda t: t.ms.CreateExperiment(mb.CreateExperimentRequest(name=LONG)), "INVALID_ARGUMENT"),
    ("create experiment: control character", lambda t: t.ms.CreateExperiment(mb.CreateExperimentRequest(name="a\x01b")), "INVALID_ARGUMENT"),
    ("create experiment: 300-byte namespace", lambda t: t.ms.CreateExperiment(mb.CreateExperimentRequest(name="x", namespace=LONG)), "INVALID_ARGUMENT"),
    ("create experiment: 300-byte owner", lambda t: t.ms.CreateExperiment(mb.CreateExperimentRequest(name="x", owner=LONG)), "INVALID_ARGUMENT"),
    ("create experiment: invalid UTF-8 name", lambda t: t.raw("/modelbox.ModelStore/CreateExperiment")(b"\x0a\x02\xff\xfe"), "INVALID_ARGUMENT"),
    ("create experiment: garbage bytes", lambda t: t.raw("/modelbox.ModelStore/CreateExperiment")(os.urandom(64) + b"\xff\xff"), "INVALID_ARGUMENT"),
    ("create experiment: NaN in metadata", lambda t: t.ms.CreateExperiment(mb.CreateExperimentRequest(name="x", metadata=metadata(a=value(math.nan)))), "INVALID_ARGUMENT"),
    ("get experiment: unknown", lambda t: t.ms.GetExperiment(mb.GetExperimentRequest(id="0" * 40)), "NOT_FOUND"),
    ("get experiment: its id with a trailing NUL", lambda t: t.ms.GetExperiment(mb.GetExperimentRequest(id=t.parent + "\0")), "NOT_FOUND"),
    ("list experiments: 300-byte namespace", lambda t: t.ag.ListExperiments(ag.ListExperimentsRequest(namespace=LONG)), "INVALID_ARGUMENT"),
    # metadata
    ("update metadata: unknown parent", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id="nope", metadata=metadata(a=value(1)))), "NOT_FOUND"),
    ("update metadata: 10 MB value", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id=t.parent, metadata=metadata(a=struct_pb2.Value(string_value="x" * (10 << 20))))), "INVALID_ARGUMENT"),
    ("update metadata: empty key", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id=t.parent, metadata=mb.Metadata(metadata={"": value(1)}))), "INVALID_ARGUMENT"),
    ("update metadata: 300-byte key", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id=t.parent, metadata=mb.Metadata(metadata={LONG: value(1)}))), "INVALID_ARGUMENT"),
    ("update metadata: nested 40 deep", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id=t.parent, metadata=metadata(a=nested(40)))), "INVALID_ARGUMENT"),
    ("update metadata: infinity", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id=t.parent, metadata=metadata(a=value(math.inf)))), "INVALID_ARGUMENT"),
    ("update metadata: under the agent's host parent", lambda t: t.ms.UpdateMetadata(mb.UpdateMetadataRequest(parent_id="host", metadata=metadata(a=value(1)))), "INVALID_ARGUMENT"),
    ("list metadata: unknown parent", lambda t: t.ms.ListMetadata(mb.ListMetadataRequest(parent_id="nope")), "NOT_FOUND"),
    # metrics
    ("log metrics: unknown parent", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id="nope", key="k", value=mb.MetricsValue(f_val=1))), "NOT_FOUND"),
    ("log metrics: under the agent's host parent", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id="host", key="k", value=mb.MetricsValue(f_val=1))), "INVALID_ARGUMENT"),
    ("log metrics: no value", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id=t.parent, key="k")), "INVALID_ARGUMENT"),
    ("log metrics: empty key", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id=t.parent, key="", value=mb.MetricsValue(f_val=1))), "INVALID_ARGUMENT"),
    ("log metrics: 300-byte key", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id=t.parent, key=LONG, value=mb.MetricsValue(f_val=1))), "INVALID_ARGUMENT"),
    ("log metrics: key with a newline", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id=t.parent, key="a\nb", value=mb.MetricsValue(f_val=1))), "INVALID_ARGUMENT"),
    ("log metrics: 2 MiB text value", lambda t: t.ms.LogMetrics(mb.LogMetricsRequest(parent_id=t.parent, key="k", value=mb.MetricsValue(s_tensor="x" * (2 << 20)))), "INVALID_ARGUMENT"),
    ("get metrics: unknown parent", lambda t: t.ms.GetMetrics(mb.GetMetricsRequest(parent_id="nope")), "NOT_FOUND"),
    # events
    ("log event: unknown parent", lambda t: t.ms.LogEvent(mb.LogEventRequest(parent_id="nope", event=mb.Event(name="e"))), "NOT_FOUND"),
    ("log event: under the agent's host parent", lambda t: t.ms.LogEvent(mb.LogEventRequest(parent_id="host", event=mb.Event(name="e"))), "INVALID_ARGUMENT"),
    ("log event: no event", lambda t: t.ms.LogEvent(mb.LogEventRequest(parent_id=t.parent)), "INVALID_ARGUMENT"),
    ("log event: 300-byte name", lambda t: t.ms.LogEvent(mb.LogEventRequest(parent_id=t.parent, event=mb.Event(name=LONG))), "INVALID_ARGUMENT"),
    ("log event: NaN in metadata", lambda t: t.ms.LogEvent(mb.LogEventRequest(parent_id=t.parent, event=mb.Event(name="e", metadata=metadata(a=value(math.nan))))), "INVALID_ARGUMENT"),
    # artifacts
    ("track: unknown parent", lambda t: t.ms.TrackArtifacts(mb.TrackArtifactsRequest(files=[mb.FileMetadata(parent_id="nope", path="a")])), "NOT_FOUND"),
    ("track: NUL in path", lambda t: t.ms.TrackArtifacts(mb.TrackArtifactsRequest(files=[mb.FileMetadata(parent_id=t.parent, path="a\0b")])), "INVALID_ARGUMENT"),
    ("track: 5000-byte path", lambda t: t.ms.TrackArtifacts(mb.TrackArtifactsRequest(files=[mb.FileMetadata(parent_id=t.parent, path="p" * 5000)])), "INVALID_ARGUMENT"),
    ("track: 10,001 files", lambda t: t.ms.TrackArtifacts(mb.TrackArtifactsRequest(files=[mb.FileMetadata(parent_id=t.parent, path=f"f{i}") for i in range(10_001)])), "INVALID_ARGUMENT"),
    ("upload: no metadata frame", lambda t: upload(t, [mb.UploadFileRequest(chunks=b"abc")]), "INVALID_ARGUMENT"),
    ("upload: over the size limit", lambda t: upload(t, [file_frame("big.bin", t.parent)] + [mb.UploadFileRequest(chunks=b"\0" * (1 << 19))] * 3), "RESOURCE_EXHAUSTED"),
    ("upload: wrong SHA-256", lambda t: upload(t, [file_frame("x.bin", t.parent, hashlib.sha256(b"other").hexdigest()), mb.UploadFileRequest(chunks=b"data")]), "INVALID_ARGUMENT"),
    ("upload: unknown parent", lambda t: upload(t, [file_frame("x.bin", "nope"), mb.UploadFileRequest(chunks=b"data")]), "NOT_FOUND"),
    ("upload: two metadata frames", lambda t: upload(t, [file_frame("x.bin", t.parent), file_frame("y.bin", t.parent)]), "INVALID_ARGUMENT"),
    ("download: unknown file", lambda t: list(t.ms.DownloadFile(mb.DownloadFileRequest(file_id="nope"), timeout=10)), "NOT_FOUND"),
    # checkpoints and models
    ("create checkpoint: unknown experiment", lambda t: t.ms.CreateCheckpoint(mb.CreateCheckpointRequest(experiment_id="nope", epoch=1)), "NOT_FOUND"),
    ("create checkpoint: NaN metric", lambda t: t.ms.CreateCheckpoint(mb.CreateCheckpointRequest(experiment_id=t.parent, epoch=1, metrics={"loss": math.nan})), "INVALID_ARGUMENT"),
    ("create model: empty name", lambda t: t.ms.CreateModel(mb.CreateModelRequest()), "INVALID_ARGUMENT"),
    ("create model version: unknown model", lambda t: t.ms.CreateModelVersion(mb.CreateModelVersionRequest(model="nope", version="1")), "NOT_FOUND"),
    ("create model version: 1,001 unique tags", lambda t: t.ms.CreateModelVersion(mb.CreateModelVersionRequest(model=t.model, version="tags", unique_tags=[f"t{i}" for i in range(1_001)])), "INVALID_ARGUMENT"),
    ("watch namespace: 300-byte namespace", lambda t: list(t.ms.WatchNamespace(mb.WatchNamespaceRequest(namespace=LONG), timeout=10)), "INVALID_ARGUMENT"),
    # boxcar.v1.Agent
    ("Log: columns of different lengths", lambda t: log_batch(t, key=[0, 0], step=[1], wallclock_ns=[1, 1], value=[1.0, 2.0]), "INVALID_ARGUMENT"),
    ("Log: point names a series the batch lacks", lambda t: log_batch(t, key=[7], step=[1], wallclock_ns=[1], value=[1.0]), "INVALID_ARGUMENT"),
    ("Log: 200,001 points", lambda t: log_batch(t, key=[0] * 200_001, step=list(range(200_001)), wallclock_ns=[1] * 200_001, value=[1.0] * 200_001), "INVALID_ARGUMENT"),
    ("Log: 10,001 series", lambda t: log_batch(t, series=[ag.SeriesRef(parent_id=t.parent, key=f"s{i}") for i in range(10_001)], key=[0], step=[1], wallclock_ns=[1], value=[1.0]), "INVALID_ARGUMENT"),
    ("Log: unknown parent", lambda t: log_batch(t, series=[ag.SeriesRef(parent_id="nope", key="k")], key=[0], step=[1], wallclock_ns=[1], value=[1.0]), "NOT_FOUND"),
    ("Log: no points, to an unknown parent", lambda t: log_batch(t, series=[ag.SeriesRef(parent_id="nope", key="k")]), "NOT_FOUND"),
    ("Log: under the agent's host parent", lambda t: log_batch(t, series=[ag.SeriesRef(parent_id="host", key="k")], key=[0], step=[1], wallclock_ns=[1], value=[1.0]), "INVALID_ARGUMENT"),
    ("Log: empty series key", lambda t: log_batch(t, series=[ag.SeriesRef(parent_id=t.parent, key="")], key=[0], step=[1], wallclock_ns=[1], value=[1.0]), "INVALID_ARGUMENT"),
    ("Attach: pid 0", lambda t: t.ag.Attach(ag.AttachRequest(experiment_id=t.parent, pid=0)), "INVALID_ARGUMENT"),
    ("Attach: unknown experiment", lambda t: t.ag.Attach(ag.AttachRequest(experiment_id="nope", pid=os.getpid())), "NOT_FOUND"),
    ("QueryMetrics: unknown parent", lambda t: t.ag.QueryMetrics(ag.QueryMetricsRequest(parent_id="nope")), "NOT_FOUND"),
    ("QueryMetrics: an axis that is neither", lambda t: t.ag.QueryMetrics(ag.QueryMetricsRequest(parent_id=t.parent, axis=7)), "INVALID_ARGUMENT"),
    ("QueryMetrics: to before from", lambda t: t.ag.QueryMetrics(ag.QueryMetricsRequest(parent_id=t.parent, **{"from": 10, "to": 5})), "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize("call,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_hostile_request_gets_its_status_and_stores_nothing(target, call, expected):
    before = target.snapshot()
    with pytest.raises(grpc.RpcError) as refused:
        call(target)
    assert refused.value.code().name == expected, refused.value.details()
    assert refused.value.details(), "every refusal says why"
    assert target.snapshot() == before
    target.ms.GetClusterMembers(mb.GetClusterMembersRequest(), timeout=10)  # still up


def test_values_at_the_edges_are_stored_as_sent(target):
    # A diverged loss is data: NaN and infinities are stored and come back; so does the largest step.
    for step, number in [(2, math.nan), (3, math.inf), (2**64 - 1, -math.inf)]:
        target.ms.LogMetrics(mb.LogMetricsRequest(parent_id=target.parent, key="edge", value=mb.MetricsValue(step=step, f_val=number)))
    [series] = target.ag.QueryMetrics(ag.QueryMetricsRequest(parent_id=target.parent, keys=["edge"])).series
    assert list(series.step) == [2, 3, 2**64 - 1]
    assert math.isnan(series.value[0]) and series.value[1] == math.inf and series.value[2] == -math.inf


def test_an_upload_cut_off_midway_stores_nothing(target):
    before = target.snapshot()

    def frames():
        yield file_frame("cut.bin", target.parent)
        yield mb.UploadFileRequest(chunks=os.urandom(100_000))
        time.sleep(0.3)  # the agent has begun writing the file
        raise RuntimeError("the client dies mid-upload")  # grpc cancels the call

    with pytest.raises(grpc.RpcError) as cut:
        target.ms.UploadFile(frames(), timeout=30)
    assert cut.value.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED)
    # No record, no file (nor a temporary one) under artifacts/, once the handler has seen the
    # reset and unwound.
    wait_for(lambda: target.snapshot() == before, 30, "the cut-off upload's partial file to go")
    time.sleep(0.3)  # and nothing comes back late
    assert target.snapshot() == before


def test_a_path_climbing_out_is_recorded_as_sent_and_stored_inside(target, tmp_path):
    sneaky = "../../../../../../tmp/" + f"boxcar-escape-{os.getpid()}"
    data = os.urandom(1000)
    file_id = upload(target, [file_frame(sneaky, target.parent, hashlib.sha256(data).hexdigest()), mb.UploadFileRequest(chunks=data)]).file_id
    listed = {f.id: f.path for f in target.ms.ListArtifacts(mb.ListArtifactsRequest(parent_id=target.parent)).files}
    assert listed[file_id] == sneaky
    assert not Path(f"/tmp/boxcar-escape-{os.getpid()}").exists()
    stored = [p for p in target.agent.artifacts.rglob("*") if p.is_file()]
    assert any(p.read_bytes() == data for p in stored)
    assert all(p.resolve().is_relative_to(target.agent.artifacts.resolve()) for p in stored)


def test_a_hundred_thousand_keys_meet_the_cardinality_limit(target):
    parent = target.ms.CreateExperiment(mb.CreateExperimentRequest(name="many-keys", namespace="h")).experiment_id
    accepted, refusal = 0, None
    for first in range(0, 100_000, 10_000):
        series = [ag.SeriesRef(parent_id=parent, key=f"key/{index}") for index in range(first, first + 10_000)]
        batch = ag.LogBatch(batch_id=first // 10_000, series=series, points=ag.FloatColumns(
            key=list(range(10_000)), step=[1] * 10_000, wallclock_ns=[1] * 10_000, value=[1.0] * 10_000))
        try:
            list(target.ag.Log(iter([batch]), timeout=120))
            accepted += 10_000
        except grpc.RpcError as error:
            refusal = error
    assert accepted == 50_000
    assert refusal is not None and refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "50000 series" in refusal.details()
    assert ("boxcar-reason", "limit") in refusal.trailing_metadata()  # never worth retrying
    keys = target.ag.QueryMetrics(ag.QueryMetricsRequest(parent_id=parent, keys=["key/0", "key/49999", "key/50000"])).series
    assert sorted(s.key for s in keys) == ["key/0", "key/49999"]  # the refused batches stored nothing


def test_garbage_bytes_on_the_socket_leave_the_agent_up(target):
    for payload in [os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(2048), b""]:
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as raw:
            raw.settimeout(5)
            raw.connect(str(target.agent.socket))
            raw.sendall(payload)
            try:
                raw.recv(1024)
            except (TimeoutError, ConnectionError):
                pass
    target.ms.GetClusterMembers(mb.GetClusterMembersRequest(), timeout=10)


def test_a_thousand_silent_streams_leave_the_agent_serving(target):
    channels = [grpc.insecure_channel(target.agent.target) for _ in range(10)]
    silent = threading.Event()

    def nothing():
        silent.wait()
        return
        yield  # a request iterator that sends nothing until released

    calls = []
    for index in range(1_000):
        stub = agent_pb2_grpc.AgentStub(channels[index % len(channels)])
        calls.append(stub.Log(nothing()))
    time.sleep(1.0)
    started = time.monotonic()
    target.ms.GetClusterMembers(mb.GetClusterMembersRequest(), timeout=10)
    target.ms.LogMetrics(mb.LogMetricsRequest(parent_id=target.parent, key="while-silent", value=mb.MetricsValue(step=1, f_val=1)), timeout=10)
    # A Log stream too: silent streams hold no share of the ingest budget.
    batch = ag.LogBatch(batch_id=1, series=[ag.SeriesRef(parent_id=target.parent, key="while-silent")],
                        points=ag.FloatColumns(key=[0], step=[2], wallclock_ns=[1], value=[1.0]))
    assert [ack.batch_id for ack in target.ag.Log(iter([batch]), timeout=10)] == [1]
    assert time.monotonic() - started < 5
    silent.set()
    for call in calls:
        call.cancel()
    for channel in channels:
        channel.close()
    target.ms.GetClusterMembers(mb.GetClusterMembersRequest(), timeout=10)

"""Cross-language tests: a real Boxcar agent, driven the way an existing ModelBox client drives it —
plain grpcio and the generated `modelbox` stubs over the agent's unix socket.

Each test asserts the behaviour that ../../../shared/api/modelbox-wire.md (the ModelBox wire
contract) requires. Run: `python3 -m pytest Tests/interop -q` from the repository root.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from boxcar._proto.modelbox import modelbox_pb2 as mb

NAMESPACE = "interop"
CHUNK = 64 * 1024
UNKNOWN_ID = "0123456789abcdef0123456789abcdef01234567"


# MARK: Helpers


def struct(values: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def metadata(values: dict) -> mb.Metadata:
    return mb.Metadata(metadata=dict(struct(values).fields))


def modelbox_id(name: str, namespace: str) -> str:
    """How ModelBox derives an experiment id."""
    return hashlib.sha1(name.encode() + namespace.encode()).hexdigest()


def create_experiment(stub, name="mnist", namespace=NAMESPACE, meta=None) -> str:
    response = stub.CreateExperiment(
        mb.CreateExperimentRequest(
            name=name,
            owner="ada@example.com",
            namespace=namespace,
            framework=mb.PYTORCH,
            task="classification",
            metadata=metadata(meta or {}),
            external_id="run-42",
        )
    )
    return response.experiment_id


def upload_frames(parent_id: str, path: str, data: bytes, checksum: str):
    """The frames the ModelBox client sends: metadata first, then the bytes in chunks."""
    yield mb.UploadFileRequest(
        metadata=mb.FileMetadata(parent_id=parent_id, file_type=mb.MODEL, checksum=checksum, path=path)
    )
    for start in range(0, len(data), CHUNK):
        yield mb.UploadFileRequest(chunks=data[start : start + CHUNK])


def upload(stub, parent_id: str, path: str, data: bytes, checksum: str | None = None) -> str:
    checksum = hashlib.md5(data).hexdigest() if checksum is None else checksum
    return stub.UploadFile(upload_frames(parent_id, path, data, checksum)).file_id


def download(stub, file_id: str) -> tuple[list[mb.DownloadFileResponse], bytes]:
    frames = list(stub.DownloadFile(mb.DownloadFileRequest(file_id=file_id), timeout=30))
    data = b"".join(frame.chunks for frame in frames[1:])
    return frames, data


def refused(code: grpc.StatusCode, call, *args, **kwargs) -> grpc.RpcError:
    """Makes the call (draining a response stream) and asserts it fails with `code` and a message."""
    with pytest.raises(grpc.RpcError) as raised:
        result = call(*args, timeout=30, **kwargs)
        if hasattr(result, "__next__"):  # a response stream: its status comes at the end
            list(result)
    error = raised.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
    assert error.details(), f"{code} carries no message"
    return error


def files_under(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*") if path.is_file()}


def by_key(response: mb.GetMetricsResponse) -> dict[str, list[mb.MetricsValue]]:
    keys = [series.key for series in response.metrics]
    assert len(keys) == len(set(keys)), f"one Metrics entry per key, got keys {keys}"
    return {series.key: list(series.values) for series in response.metrics}


def timestamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


# MARK: 1. The documented flow


def test_create_experiment_twice_returns_the_modelbox_id(stub):
    name, namespace = "mnist-baseline", "team-vision"
    request = mb.CreateExperimentRequest(
        name=name,
        owner="ada@example.com",
        namespace=namespace,
        framework=mb.PYTORCH,
        task="classification",
        metadata=metadata({"lr": 0.001}),
        external_id="run-42",
    )

    first = stub.CreateExperiment(request)
    second = stub.CreateExperiment(request)

    assert first.experiment_id == modelbox_id(name, namespace)
    assert second.experiment_id == first.experiment_id
    assert (first.experiment_exists, second.experiment_exists) == (False, True)
    assert first.HasField("created_at") and first.HasField("updated_at")

    experiment = stub.GetExperiment(mb.GetExperimentRequest(id=first.experiment_id)).experiment
    assert experiment.id == first.experiment_id
    assert (experiment.name, experiment.namespace, experiment.owner) == (name, namespace, "ada@example.com")
    assert experiment.framework == mb.PYTORCH
    assert experiment.external_id == "run-42"
    assert experiment.HasField("created_at") and experiment.HasField("updated_at")

    listed = stub.ListExperiments(mb.ListExperimentsRequest(namespace=namespace)).experiments
    assert [e.id for e in listed] == [first.experiment_id]
    assert list(stub.ListExperiments(mb.ListExperimentsRequest(namespace="elsewhere")).experiments) == []


def test_metadata_comes_back_exactly_as_sent(stub):
    experiment_id = create_experiment(stub, meta={"lr": 0.001, "optimizer": "sgd"})
    nested = {
        "optimizer": "adam",  # overwrites the value sent with CreateExperiment
        "layers": [
            {"kind": "conv", "filters": 32, "activation": None, "trainable": True},
            {"kind": "dense", "units": 10, "dropout": 0.25, "tags": ["head", 7, False, None]},
        ],
        "schedule": {"warmup": {"steps": 500, "factor": -1.5e-3}, "cosine": True},
        "note": "ünïcødé ✓",
        "empty_list": [],
        "empty_struct": {},
        "nothing": None,
    }

    response = stub.UpdateMetadata(
        mb.UpdateMetadataRequest(parent_id=experiment_id, metadata=metadata(nested))
    )
    assert response.num_keys_written == len(nested)
    assert response.HasField("updated_at")

    listed = stub.ListMetadata(mb.ListMetadataRequest(parent_id=experiment_id))
    expected = {"lr": 0.001, **nested}
    assert dict(listed.metadata) == dict(struct(expected).fields)
    assert json_format.MessageToDict(listed)["metadata"] == expected


def test_metrics_keep_every_value_ordered_by_step_wallclock_arrival(stub):
    experiment_id = create_experiment(stub)
    now = int(time.time())  # the ModelBox client sends Unix seconds

    def log(key, step, wallclock, **value):
        stub.LogMetrics(
            mb.LogMetricsRequest(
                parent_id=experiment_id,
                key=key,
                value=mb.MetricsValue(step=step, wallclock_time=wallclock, **value),
            )
        )

    # Sent out of order; step 2 is logged three times, twice with the same wallclock.
    log("loss", 2, now + 10, f_val=0.5)
    log("loss", 1, now + 11, f_val=1.0)
    log("loss", 2, now + 9, f_val=0.75)
    log("loss", 2, now + 10, f_val=0.25)
    log("loss", 3, now + 12, f_val=0.125)
    log("sample", 1, now, s_tensor="[[1, 2], [3, 4]]")
    log("raw", 4, now, b_tensor=b"\x00\x01\xfe\xff")

    metrics = by_key(stub.GetMetrics(mb.GetMetricsRequest(parent_id=experiment_id)))

    assert sorted(metrics) == ["loss", "raw", "sample"]
    assert metrics["loss"] == [
        mb.MetricsValue(step=1, wallclock_time=now + 11, f_val=1.0),
        mb.MetricsValue(step=2, wallclock_time=now + 9, f_val=0.75),
        mb.MetricsValue(step=2, wallclock_time=now + 10, f_val=0.5),
        mb.MetricsValue(step=2, wallclock_time=now + 10, f_val=0.25),
        mb.MetricsValue(step=3, wallclock_time=now + 12, f_val=0.125),
    ]
    assert metrics["sample"] == [mb.MetricsValue(step=1, wallclock_time=now, s_tensor="[[1, 2], [3, 4]]")]
    assert metrics["raw"] == [mb.MetricsValue(step=4, wallclock_time=now, b_tensor=b"\x00\x01\xfe\xff")]


def test_events_come_back_oldest_first_and_filter_by_since(stub):
    experiment_id = create_experiment(stub)
    now = int(time.time())
    started = mb.Event(
        name="training-started",
        source=mb.EventSource(name="trainer"),
        wallclock_time=timestamp(now - 60, 123_456_789),
        metadata=metadata({"gpus": 8, "resumed": False}),
    )
    finished = mb.Event(
        name="training-finished",
        source=mb.EventSource(name="trainer"),
        wallclock_time=timestamp(now, 500_000_000),
        metadata=metadata({"best": {"epoch": 9, "acc": 0.97}}),
    )

    for event in (started, finished):
        response = stub.LogEvent(mb.LogEventRequest(parent_id=experiment_id, event=event))
        assert response.HasField("created_at")

    everything = stub.ListEvents(mb.ListEventsRequest(parent_id=experiment_id)).events
    assert list(everything) == [started, finished]

    since_zero = stub.ListEvents(mb.ListEventsRequest(parent_id=experiment_id, since=timestamp(0))).events
    assert list(since_zero) == [started, finished]

    at_finish = stub.ListEvents(
        mb.ListEventsRequest(parent_id=experiment_id, since=finished.wallclock_time)
    ).events
    assert list(at_finish) == [finished]

    after_all = stub.ListEvents(
        mb.ListEventsRequest(parent_id=experiment_id, since=timestamp(now + 1))
    ).events
    assert list(after_all) == []


def test_uploaded_and_tracked_files_list_once_and_download_byte_identical(stub):
    experiment_id = create_experiment(stub)
    data = os.urandom(300_000)
    md5 = hashlib.md5(data).hexdigest()

    file_id = upload(stub, experiment_id, "checkpoints/model.pt", data, md5)
    assert file_id

    tracked = stub.TrackArtifacts(
        mb.TrackArtifactsRequest(
            files=[
                mb.FileMetadata(
                    parent_id=experiment_id,
                    file_type=mb.TEXT,
                    checksum="d41d8cd98f00b204e9800998ecf8427e",
                    path="/mnt/shared/runs/42/train.log",
                )
            ]
        )
    )
    assert tracked.num_files_tracked == 1

    files = list(stub.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment_id)).files)
    assert sorted(f.path for f in files) == ["/mnt/shared/runs/42/train.log", "checkpoints/model.pt"]
    uploaded = next(f for f in files if f.path == "checkpoints/model.pt")
    track = next(f for f in files if f.path == "/mnt/shared/runs/42/train.log")
    assert (uploaded.id, uploaded.parent_id, uploaded.checksum, uploaded.file_type) == (
        file_id, experiment_id, md5, mb.MODEL
    )
    assert track.id and track.id != file_id
    assert (track.parent_id, track.checksum, track.file_type) == (
        experiment_id, "d41d8cd98f00b204e9800998ecf8427e", mb.TEXT
    )

    frames, downloaded = download(stub, file_id)
    assert frames[0].WhichOneof("stream_frame") == "metadata", "the first DownloadFile frame must be metadata"
    assert frames[0].metadata.id == file_id
    assert frames[0].metadata.checksum == md5
    assert frames[0].metadata.path == "checkpoints/model.pt"
    assert all(frame.WhichOneof("stream_frame") == "chunks" for frame in frames[1:])
    assert downloaded == data


# MARK: 2. Bad input


@pytest.mark.parametrize(
    "call, request_for",
    [
        (
            "LogMetrics",
            lambda parent: mb.LogMetricsRequest(
                parent_id=parent, key="loss", value=mb.MetricsValue(step=1, wallclock_time=1, f_val=1.0)
            ),
        ),
        (
            "UpdateMetadata",
            lambda parent: mb.UpdateMetadataRequest(parent_id=parent, metadata=metadata({"a": 1})),
        ),
        ("LogEvent", lambda parent: mb.LogEventRequest(parent_id=parent, event=mb.Event(name="oops"))),
        ("GetMetrics", lambda parent: mb.GetMetricsRequest(parent_id=parent)),
        ("ListMetadata", lambda parent: mb.ListMetadataRequest(parent_id=parent)),
    ],
)
def test_unknown_parent_is_not_found(agent, call, request_for):
    refused(grpc.StatusCode.NOT_FOUND, getattr(agent.stub, call), request_for(UNKNOWN_ID))
    # Nothing was created implicitly under that id.
    refused(grpc.StatusCode.NOT_FOUND, agent.stub.ListMetadata, mb.ListMetadataRequest(parent_id=UNKNOWN_ID))


def test_log_metrics_without_a_value_is_invalid_and_stores_nothing(stub):
    experiment_id = create_experiment(stub)
    refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        stub.LogMetrics,
        mb.LogMetricsRequest(
            parent_id=experiment_id, key="loss", value=mb.MetricsValue(step=1, wallclock_time=1)
        ),
    )
    assert list(stub.GetMetrics(mb.GetMetricsRequest(parent_id=experiment_id)).metrics) == []


def test_get_unknown_experiment_is_not_found(stub):
    refused(grpc.StatusCode.NOT_FOUND, stub.GetExperiment, mb.GetExperimentRequest(id=UNKNOWN_ID))


def test_upload_starting_with_chunks_is_invalid(agent):
    experiment_id = create_experiment(agent.stub)
    before = files_under(agent.artifacts)
    frames = iter([mb.UploadFileRequest(chunks=b"hello"), mb.UploadFileRequest(chunks=b"world")])

    refused(grpc.StatusCode.INVALID_ARGUMENT, agent.stub.UploadFile, frames)

    assert list(agent.stub.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment_id)).files) == []
    assert files_under(agent.artifacts) == before


def test_upload_with_wrong_md5_is_refused_and_leaves_nothing(agent):
    stub = agent.stub
    experiment_id = create_experiment(stub)
    kept = os.urandom(1000)
    upload(stub, experiment_id, "kept.bin", kept)
    artifacts_before = list(stub.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment_id)).files)
    files_before = files_under(agent.artifacts)

    data = os.urandom(300_000)
    wrong_md5 = hashlib.md5(data + b"!").hexdigest()
    refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        stub.UploadFile,
        upload_frames(experiment_id, "corrupt.bin", data, wrong_md5),
    )

    artifacts_after = list(stub.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment_id)).files)
    assert artifacts_after == artifacts_before
    assert files_under(agent.artifacts) == files_before, "the refused upload left bytes under artifacts/"


def test_download_of_a_tracked_file_is_failed_precondition(stub):
    experiment_id = create_experiment(stub)
    stub.TrackArtifacts(
        mb.TrackArtifactsRequest(
            files=[mb.FileMetadata(parent_id=experiment_id, path="s3://bucket/model.pt")]
        )
    )
    (tracked,) = stub.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment_id)).files

    refused(
        grpc.StatusCode.FAILED_PRECONDITION, stub.DownloadFile, mb.DownloadFileRequest(file_id=tracked.id)
    )


def test_download_of_an_unknown_file_is_not_found(stub):
    refused(grpc.StatusCode.NOT_FOUND, stub.DownloadFile, mb.DownloadFileRequest(file_id=UNKNOWN_ID))


def test_over_long_experiment_name_is_invalid_and_creates_nothing(stub):
    refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        stub.CreateExperiment,
        mb.CreateExperimentRequest(name="x" * 300, namespace=NAMESPACE),
    )
    assert list(stub.ListExperiments(mb.ListExperimentsRequest(namespace=NAMESPACE)).experiments) == []


# MARK: 3. Checkpoints, models, the cluster


def test_checkpoints_by_experiment_and_epoch(stub):
    experiment_id = create_experiment(stub)
    files = [mb.FileMetadata(file_type=mb.CHECKPOINT, checksum="abc123", path="ckpt/epoch-5.pt")]

    created = stub.CreateCheckpoint(
        mb.CreateCheckpointRequest(
            experiment_id=experiment_id,
            epoch=5,
            files=files,
            metrics={"loss": 0.5, "acc": 0.875},
            metadata=metadata({"note": "halfway"}),
        )
    )
    later = stub.CreateCheckpoint(
        mb.CreateCheckpointRequest(experiment_id=experiment_id, epoch=10, metrics={"loss": 0.25})
    )
    assert created.checkpoint_id and later.checkpoint_id and created.checkpoint_id != later.checkpoint_id

    checkpoint = stub.GetCheckpoint(mb.GetCheckpointRequest(experiment_id=experiment_id, epoch=5)).checkpoint
    assert checkpoint.id == created.checkpoint_id
    assert (checkpoint.experiment_id, checkpoint.epoch) == (experiment_id, 5)
    assert dict(checkpoint.metrics) == {"loss": 0.5, "acc": 0.875}
    assert [(f.path, f.checksum, f.file_type) for f in checkpoint.files] == [
        ("ckpt/epoch-5.pt", "abc123", mb.CHECKPOINT)
    ]

    listed = stub.ListCheckpoints(mb.ListCheckpointsRequest(experiment_id=experiment_id)).checkpoints
    assert sorted((c.epoch, c.id) for c in listed) == [(5, created.checkpoint_id), (10, later.checkpoint_id)]


def test_models_and_their_latest_version(stub):
    created = stub.CreateModel(
        mb.CreateModelRequest(
            name="resnet",
            owner="ada@example.com",
            namespace=NAMESPACE,
            task="classification",
            description="ResNet-50 on ImageNet",
            metadata=metadata({"params": 25_600_000}),
        )
    )
    assert created.id
    stub.CreateModel(mb.CreateModelRequest(name="other", namespace="elsewhere"))

    (model,) = stub.ListModels(mb.ListModelsRequest(namespace=NAMESPACE)).models
    assert (model.id, model.name, model.owner, model.namespace, model.task, model.description) == (
        created.id, "resnet", "ada@example.com", NAMESPACE, "classification", "ResNet-50 on ImageNet"
    )

    first = stub.CreateModelVersion(
        mb.CreateModelVersionRequest(model=created.id, name="resnet", version="1", framework=mb.PYTORCH)
    )
    second = stub.CreateModelVersion(
        mb.CreateModelVersionRequest(
            model=created.id,
            name="resnet",
            version="2",
            description="fine-tuned",
            framework=mb.PYTORCH,
            unique_tags=["prod"],
        )
    )
    assert first.model_version and second.model_version and first.model_version != second.model_version

    latest = stub.ListModelVersions(mb.ListModelVersionsRequest(model=created.id)).models
    assert (latest.id, latest.model_id, latest.version) == (second.model_version, created.id, "2")
    assert latest.description == "fine-tuned"
    assert latest.framework == mb.PYTORCH
    assert list(latest.unique_tags) == ["prod"]


def test_cluster_has_the_agent_as_its_one_member(stub):
    (member,) = stub.GetClusterMembers(mb.GetClusterMembersRequest()).members
    assert member.id


# MARK: 4. Restart


def test_everything_reads_back_after_a_restart(agent):
    experiment_id = create_experiment(agent.stub)
    agent.stub.UpdateMetadata(
        mb.UpdateMetadataRequest(
            parent_id=experiment_id, metadata=metadata({"cfg": {"layers": [1, 2, {"x": None}]}})
        )
    )
    for step in range(3):
        agent.stub.LogMetrics(
            mb.LogMetricsRequest(
                parent_id=experiment_id,
                key="loss",
                value=mb.MetricsValue(step=step, wallclock_time=1_700_000_000 + step, f_val=1.0 / (step + 1)),
            )
        )
    event = mb.Event(
        name="epoch-end",
        source=mb.EventSource(name="trainer"),
        wallclock_time=timestamp(1_700_000_000, 7),
        metadata=metadata({"epoch": 3}),
    )
    agent.stub.LogEvent(mb.LogEventRequest(parent_id=experiment_id, event=event))
    data = os.urandom(200_000)
    file_id = upload(agent.stub, experiment_id, "model.bin", data)

    def snapshot(stub):
        return (
            stub.GetExperiment(mb.GetExperimentRequest(id=experiment_id)),
            stub.GetMetrics(mb.GetMetricsRequest(parent_id=experiment_id)),
            stub.ListMetadata(mb.ListMetadataRequest(parent_id=experiment_id)),
            stub.ListEvents(mb.ListEventsRequest(parent_id=experiment_id)),
            stub.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment_id)),
        )

    before = snapshot(agent.stub)
    agent.restart()  # SIGTERM (exit 0, socket removed), then a new agent on the same db and socket
    after = snapshot(agent.stub)

    assert after == before
    assert list(after[3].events) == [event]
    assert [v.f_val for v in after[1].metrics[0].values] == [1.0, 0.5, pytest.approx(1 / 3)]
    frames, downloaded = download(agent.stub, file_id)
    assert frames[0].metadata.checksum == hashlib.md5(data).hexdigest()
    assert downloaded == data


# MARK: 5. WatchNamespace


def test_watch_namespace_replays_the_past_then_streams_live_changes(stub):
    namespace = "watched"
    before_id = create_experiment(stub, name="before-watch", namespace=namespace)

    stream = stub.WatchNamespace(mb.WatchNamespaceRequest(namespace=namespace, since=0), timeout=30)
    try:
        past = next(stream)
        assert past.event == mb.OBJECT_CREATED
        assert past.payload.struct_value.fields["id"].string_value == before_id

        create_experiment(stub, name="other-namespace", namespace="not-watched")
        during_id = create_experiment(stub, name="during-watch", namespace=namespace)

        live = next(stream)
        assert live.event == mb.OBJECT_CREATED
        assert live.payload.struct_value.fields["id"].string_value == during_id
    finally:
        stream.cancel()

    with pytest.raises(grpc.RpcError) as raised:
        next(stream)
    assert raised.value.code() == grpc.StatusCode.CANCELLED

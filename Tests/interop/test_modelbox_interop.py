"""Cross-language tests: a real Boxcar agent, driven the way an existing ModelBox client drives it —
plain grpcio and the generated `modelbox` stubs over the agent's unix socket.

Each test asserts the behaviour that ../../../shared/api/modelbox-wire.md (the ModelBox wire
contract) requires. Run: `python3 -m pytest Tests/interop -q` from the repository root.
"""

from __future__ import annotations

import hashlib
import os
import time

import grpc
import pytest
from google.protobuf import json_format

from boxcar._proto.modelbox import modelbox_pb2 as mb
from modelbox_calls import (
    NAMESPACE,
    UNKNOWN_ID,
    struct,
    metadata,
    modelbox_id,
    create_experiment,
    upload_frames,
    upload,
    download,
    refused,
    files_under,
    by_key,
    timestamp,
)


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

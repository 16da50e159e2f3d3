"""The ModelBox wire contract, continued (test_modelbox_interop.py has the documented flow and bad
input): checkpoints, models, the cluster, a restart and WatchNamespace."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from boxcar._proto.modelbox import modelbox_pb2 as mb
from modelbox_calls import (
    NAMESPACE,
    metadata,
    create_experiment,
    upload,
    download,
    timestamp,
)


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

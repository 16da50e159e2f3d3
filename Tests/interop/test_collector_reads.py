"""The collector's read API: what a fleet's agents forwarded, read as one agent is read (the
published `modelbox.ModelStore` calls, `boxcar.v1.Agent` QueryMetrics and ListExperiments, the
CLI), across every machine; and the collector on TCP with TLS and named tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from conftest import agent_binary, running_agent
from postgres import Collector, free_port, wait_for, wait_until_forwarded

from boxcar import Boxcar, Event, EventSource
from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
from boxcar._proto.modelbox import modelbox_pb2 as mb
from boxcar._proto.modelbox import modelbox_pb2_grpc as mb_grpc

HOSTS = ("node-a", "node-b")
STEPS = 100


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(agent_binary()), *args], capture_output=True, text=True, timeout=60)


def machine_keys(stub, experiment_id: str) -> list[str]:
    metrics = stub.GetMetrics(mb.GetMetricsRequest(parent_id=experiment_id), timeout=10).metrics
    return [m.key for m in metrics if m.key.startswith("system/")]


def log_one_node(agent, index: int, tmp_path: Path) -> dict:
    """One node's part of a shared run: its own steps (the first node the even ones, the second the
    odd ones, so that the collector must sort across nodes), an event, and (on the first node) metadata,
    an upload, a checkpoint and a model; held open until the machine's series of the trainer's
    window reached the agent."""
    known: dict = {}
    with Boxcar(agent.target) as mbox:
        run = mbox.new_experiment(name="one-run", owner="fleet@example.org", namespace="fleet")
        for step in range(index, 2 * STEPS, 2):
            run.log_metrics({"loss": float(step)}, step=step)
        # The second node's event happened first.
        run.log_event(Event(name=f"up-{HOSTS[index]}", source=EventSource(name="trainer"),
                            wallclock_time=1_700_000_000_000 - index, metadata={"node": index}))
        if index == 0:
            run.update_metadata("hyperparams", {"lr": 0.001})
            blob = os.urandom(1024 * 1024 + 7)
            artifact = tmp_path / "weights.pt"
            artifact.write_bytes(blob)
            run.upload_artifact([str(artifact)])
            known["sha256"] = hashlib.sha256(blob).hexdigest()
        assert mbox.flush(timeout=30)
        known["id"] = run.id
        wait_for(lambda: machine_keys(agent.stub, run.id), 30, "a machine sample inside the trainer's window")
    if index == 0:
        agent.stub.CreateCheckpoint(mb.CreateCheckpointRequest(experiment_id=known["id"], epoch=3,
                                                               metrics={"acc": 0.5}), timeout=10)
        model = agent.stub.CreateModel(mb.CreateModelRequest(name="resnet", owner="fleet@example.org",
                                                             namespace="fleet", task="vision"), timeout=10)
        for version in ("1", "2"):
            agent.stub.CreateModelVersion(mb.CreateModelVersionRequest(
                model=model.id, name=f"v{version}", version=version, unique_tags=[f"tag-{version}"]), timeout=10)
        known["model"] = model.id
    wait_until_forwarded(agent)
    return known


def test_the_collector_reads_the_fleet_as_one_agent(database, tmp_path):
    collector = Collector(tmp_path / "c", database)
    collector.start()
    try:
        known = []
        for index, host in enumerate(HOSTS):
            directory = tmp_path / host
            directory.mkdir()
            with running_agent(directory, "--upstream", collector.target, "--sample-interval", "0.2",
                               "--label", f"host={host}") as agent:
                known.append(log_one_node(agent, index, tmp_path))
        experiment = known[0]["id"]
        assert known[1]["id"] == experiment, "one run on two nodes is one experiment"

        with grpc.insecure_channel(collector.target) as channel:
            store = mb_grpc.ModelStoreStub(channel)
            agent_api = agent_pb2_grpc.AgentStub(channel)
            listed = store.ListExperiments(mb.ListExperimentsRequest(namespace="fleet"), timeout=10).experiments
            assert [(e.id, e.name) for e in listed] == [(experiment, "one-run")]
            assert store.GetExperiment(mb.GetExperimentRequest(id=experiment), timeout=10).experiment.owner == \
                "fleet@example.org"

            # Every node's points of the run, as one series; each machine's series with its host.
            metrics = {m.key: m.values for m in store.GetMetrics(
                mb.GetMetricsRequest(parent_id=experiment), timeout=10).metrics}
            assert [v.step for v in metrics["loss"]] == list(range(2 * STEPS))
            assert [v.f_val for v in metrics["loss"]] == [float(step) for step in range(2 * STEPS)]
            machine = [key for key in metrics if key.startswith("system/")]
            for host in HOSTS:
                assert any(f'host="{host}"' in key for key in machine), f"no series of {host}: {machine}"
            for key in machine:
                names = re.findall(r'[{,]([a-z_.]+)="', key)
                assert "host" in names and names == sorted(names), key
            queried = agent_api.QueryMetrics(agent_pb2.QueryMetricsRequest(
                parent_id=experiment, keys=["loss"], **{"from": 50}, to=149), timeout=10)
            assert [(s.key, list(s.step)) for s in queried.series] == [("loss", list(range(50, 150)))]
            # A machine's series asked for by its labelled key.
            queried = agent_api.QueryMetrics(agent_pb2.QueryMetricsRequest(parent_id=experiment, keys=[machine[0]]),
                                             timeout=10)
            assert [s.key for s in queried.series] == [machine[0]] and len(queried.series[0].step) > 0
            assert [e.id for e in agent_api.ListExperiments(agent_pb2.ListExperimentsRequest(), timeout=10)
                    .experiments] == [experiment]

            events = store.ListEvents(mb.ListEventsRequest(parent_id=experiment), timeout=10).events
            assert [e.name for e in events] == ["up-node-b", "up-node-a"]
            metadata = store.ListMetadata(mb.ListMetadataRequest(parent_id=experiment), timeout=10).metadata
            assert metadata["hyperparams"].struct_value.fields["lr"].number_value == 0.001

            # The uploaded bytes come back from the collector's own artifacts directory.
            files = store.ListArtifacts(mb.ListArtifactsRequest(parent_id=experiment), timeout=10).files
            assert [f.path for f in files] == [str(tmp_path / "weights.pt")]
            downloaded = b"".join(c.chunks for c in store.DownloadFile(
                mb.DownloadFileRequest(file_id=files[0].id), timeout=30))
            assert hashlib.sha256(downloaded).hexdigest() == known[0]["sha256"]

            checkpoints = store.ListCheckpoints(mb.ListCheckpointsRequest(experiment_id=experiment),
                                                timeout=10).checkpoints
            assert [(c.epoch, dict(c.metrics)) for c in checkpoints] == [(3, {"acc": 0.5})]
            models = store.ListModels(mb.ListModelsRequest(namespace="fleet"), timeout=10).models
            assert [m.name for m in models] == ["resnet"]
            version = store.ListModelVersions(mb.ListModelVersionsRequest(model=known[0]["model"]), timeout=10).models
            assert (version.name, list(version.unique_tags)) == ("v2", ["tag-2"])

            # Unknown ids are refused as by an agent; writes are refused: records come by forwarding.
            with pytest.raises(grpc.RpcError) as refused:
                store.GetMetrics(mb.GetMetricsRequest(parent_id="no-such-run"), timeout=10)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as refused:
                store.CreateExperiment(mb.CreateExperimentRequest(name="sneaky", namespace="fleet"), timeout=10)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "forward" in refused.value.details()
            # An upload is refused before any of its bytes is kept.
            blobs_before = sorted(p for p in collector.artifacts.rglob("*") if p.is_file())
            with pytest.raises(grpc.RpcError) as refused:
                store.UploadFile(iter([
                    mb.UploadFileRequest(metadata=mb.FileMetadata(parent_id=experiment, path="big.bin")),
                    mb.UploadFileRequest(chunks=os.urandom(1 << 20))]), timeout=30)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert sorted(p for p in collector.artifacts.rglob("*") if p.is_file()) == blobs_before
            # Changes reach the collector by forwarding, which a watch would not see: refused.
            with pytest.raises(grpc.RpcError) as refused:
                next(iter(store.WatchNamespace(mb.WatchNamespaceRequest(namespace="fleet"), timeout=10)))
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert database.scalar("SELECT count(*) FROM boxcar.experiments") == 1

        # The CLI reads the collector as it reads an agent.
        listed = cli("experiments", "--socket", str(collector.socket), "--namespace", "fleet", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [e["id"] for e in json.loads(listed.stdout)] == [experiment]
        loss = cli("metrics", experiment, "--key", "loss", "--socket", str(collector.socket), "--json")
        assert loss.returncode == 0, loss.stderr
        assert len(json.loads(loss.stdout)) == 2 * STEPS
    finally:
        collector.stop()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, trusted as its own authority."""
    certificate, key = directory / "collector.pem", directory / "collector.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True)
    return certificate, key


def secret(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_tls_and_named_tokens_from_agent_to_collector_to_reader(database, tmp_path):
    certificate, key = make_certificate(tmp_path)
    tokens = secret(tmp_path / "tokens", "node-1 agent agent-s3cret\ngrafana read read-s3cret\n")
    port = free_port()
    collector = Collector(tmp_path / "c", database, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(certificate),
                          "--tls-key", str(key), "--token-file", str(tokens))
    collector.start()
    try:
        directory = tmp_path / "agent"
        directory.mkdir()
        agent_token = secret(tmp_path / "agent-token", "agent-s3cret\n")
        with running_agent(directory, "--upstream", f"127.0.0.1:{port}", "--upstream-ca", str(certificate),
                           "--upstream-token-file", str(agent_token)) as agent:
            with Boxcar(agent.target) as mbox:
                run = mbox.new_experiment(name="over-tls", namespace="secure", attach=False)
                run.log_metrics({"loss": 0.25}, step=1)
                assert mbox.flush(timeout=30)
            wait_until_forwarded(agent)
        assert database.scalar("SELECT count(*) FROM public.boxcar_points WHERE key = 'loss'") == 1

        read_token = secret(tmp_path / "read-token", "read-s3cret\n")
        target = ["--target", f"127.0.0.1:{port}", "--ca", str(certificate)]
        listed = cli("experiments", *target, "--token-file", str(read_token), "--json")
        assert listed.returncode == 0, listed.stderr
        assert [e["name"] for e in json.loads(listed.stdout)] == ["over-tls"]
        points = cli("metrics", run.id, *target, "--token-file", str(read_token), "--json")
        assert points.returncode == 0, points.stderr
        assert [p["value"] for p in json.loads(points.stdout)] == [0.25]

        # No token, a wrong one, or plaintext to a TLS port: a clear refusal, not data.
        unauthenticated = cli("experiments", *target)
        assert unauthenticated.returncode != 0 and "token" in unauthenticated.stderr
        wrong = cli("experiments", *target, "--token-file", str(secret(tmp_path / "wrong", "nope\n")))
        assert wrong.returncode != 0 and "token" in wrong.stderr
        plaintext = cli("experiments", "--target", f"127.0.0.1:{port}", "--token-file", str(read_token))
        assert plaintext.returncode != 0 and plaintext.stdout == ""
        # A token is never sent in the clear to another machine.
        remote = cli("experiments", "--target", "192.0.2.1:7070", "--token-file", str(read_token))
        assert remote.returncode != 0 and "--ca" in remote.stderr
    finally:
        collector.stop()

"""The Python SDK (Clients/python, package ``boxcar``) against a real agent from this checkout."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace

import grpc
import pytest

from conftest import REPO_ROOT, wait_for_tree_series

from boxcar import Boxcar, BoxcarError, Event, EventSource, FileType, MetricValue, MLFramework, experiment_id
from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc


def own_metrics(experiment) -> dict:
    return {key: points for key, points in experiment.metrics().items() if not key.startswith("system/")}


def test_the_documented_flow_reads_back_whole(agent, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("model.pt").write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several upload frames
    Path("config.json").write_text('{"layers": 3}')
    monkeypatch.setenv("BOXCAR_SOCKET", str(agent.socket))
    with Boxcar() as mbox:
        experiment = mbox.new_experiment(name="yolo-v4", owner="foo@bar.com", namespace="cv",
                                         external_id="ext1", framework=MLFramework.PYTORCH)
        assert experiment.id == experiment_id("yolo-v4", "cv")
        result = experiment.update_metadata(key="hyperparams", value={"fc_layers": 3, "lr": 0.0002})
        assert result.updated_at is not None and not result.queued
        experiment.log_metrics(metrics={"loss": 2.4, "accu": 97.6}, step=10, wallclock=12345)
        experiment.log_event(Event(name="checkpoint_started", source=EventSource(name="trainer"),
                                   wallclock_time=12000, metadata={"chk_size": 2345}))
        experiment.log_event(Event(name="checkpoint_finish", source=EventSource(name="trainer"),
                                   wallclock_time=12500, metadata={"write_speed": 2000}))
        ids = experiment.upload_artifact(["model.pt", "config.json"])
        assert len(ids) == 2
        assert experiment.track_artifacts(["/mnt/datasets/imagenet", "s3://bucket/data.tar"]) == 2

        artifacts = {a.path: a for a in experiment.artifacts()}
        assert set(artifacts) == {"model.pt", "config.json", "/mnt/datasets/imagenet", "s3://bucket/data.tar"}
        assert artifacts["model.pt"].checksum == hashlib.sha256(Path("model.pt").read_bytes()).hexdigest()
        assert artifacts["model.pt"].mime_type == "application/x-pytorch"
        assert artifacts["model.pt"].file_type == FileType.MODEL
        assert artifacts["config.json"].mime_type == "application/json"
        assert artifacts["s3://bucket/data.tar"].checksum == ""  # cannot be read from here
        assert artifacts["/mnt/datasets/imagenet"].checksum == ""
        assert all(a.parent == experiment.id for a in artifacts.values())
        assert artifacts["model.pt"].id == ids[0]

        copy = experiment.download_artifact(ids[0], tmp_path / "copy.pt")
        assert copy.read_bytes() == Path("model.pt").read_bytes()

        assert own_metrics(experiment) == {
            "loss": [MetricValue(10, 12345, 2.4)],
            "accu": [MetricValue(10, 12345, 97.6)],
        }
        events = experiment.events()
        assert [(e.name, e.source.name, e.wallclock_time, e.metadata) for e in events] == [
            ("checkpoint_started", "trainer", 12000, {"chk_size": 2345}),
            ("checkpoint_finish", "trainer", 12500, {"write_speed": 2000}),
        ]
        metadata = experiment.metadata()
        assert metadata == {"hyperparams": {"fc_layers": 3, "lr": 0.0002}}
        assert type(metadata["hyperparams"]["fc_layers"]) is int
        assert type(metadata["hyperparams"]["lr"]) is float

        assert [e.id for e in mbox.experiments("cv")] == [experiment.id]
        assert experiment.id in [e.id for e in mbox.experiments()]
        found = mbox.experiment(experiment.id)
        assert (found.name, found.namespace, found.info.owner, found.info.external_id, found.info.framework) == (
            "yolo-v4", "cv", "foo@bar.com", "ext1", MLFramework.PYTORCH)
        with pytest.raises(BoxcarError) as missing:
            mbox.experiment("0" * 40)
        assert (missing.value.code, missing.value.reason) == ("NOT_FOUND", "not-found")
        experiment.finish()


def test_values_keep_their_types(agent):
    import numpy  # in requirements-dev.txt
    with Boxcar(str(agent.socket)) as mbox:
        experiment = mbox.new_experiment(name="types", namespace="t", attach=False)
        experiment.log_metrics({"int": 3, "float": 0.25, "np32": numpy.float32(1.5), "np64": numpy.int64(7),
                                "zero_d": numpy.array(2.5), "text": "hello", "blob": b"\x00\x01"}, step=1, wallclock=5)
        with pytest.raises(TypeError):
            experiment.log_metrics({"list": [1, 2]}, step=2)
        with pytest.raises(ValueError):
            experiment.log_metrics({"x": 1.0}, step=-1)
        with pytest.raises(ValueError):
            experiment.log_metrics({"x": 1.0}, step=2**64)  # caught here, not in the shipper
        with pytest.raises(ValueError):
            experiment.log_metrics({"x": 1.0}, step=1, wallclock=2**63)
        experiment.update_metadata("nested", {"a": [1, 2.5, "x", None, True], "b": {"c": 10**12}})
        with pytest.raises(ValueError):
            experiment.update_metadata("bad", float("nan"))
        read = {key: points[0].value for key, points in own_metrics(experiment).items()}
        assert read == {"int": 3.0, "float": 0.25, "np32": 1.5, "np64": 7.0, "zero_d": 2.5, "text": "hello", "blob": b"\x00\x01"}
        assert type(read["int"]) is float
        assert experiment.metadata() == {"nested": {"a": [1, 2.5, "x", None, True], "b": {"c": 10**12}}}


def test_every_point_of_many_calls_arrives_in_order(agent):
    with Boxcar(str(agent.socket), max_buffered=5_000) as mbox:  # a small buffer: block, then go on
        experiment = mbox.new_experiment(name="many", namespace="t", attach=False)
        for step in range(20_000):
            experiment.log_metrics({"a": float(step), "b": step * 2}, step=step)
        assert mbox.flush(timeout=60)
        assert mbox.dropped == 0 and mbox.pending == 0
        series = own_metrics(experiment)
        assert [p.step for p in series["a"]] == list(range(20_000))
        assert [p.value for p in series["b"]] == [float(step * 2) for step in range(20_000)]


def test_the_trainer_is_attached_and_its_processes_recorded(agent):
    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="attached", namespace="t") as experiment:
            wait_for_tree_series(experiment)


def test_a_restarted_agent_loses_nothing_acknowledged(agent):
    with Boxcar(str(agent.socket)) as mbox:
        experiment = mbox.new_experiment(name="crash", namespace="t", attach=False)
        for step in range(1_000):
            experiment.log_metrics({"loss": float(step)}, step=step)
        assert mbox.flush(timeout=30)
        agent.kill()  # as a crash: what flush reported acknowledged must survive
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # logging into a dead agent raises nothing
            for step in range(1_000, 2_000):
                experiment.log_metrics({"loss": float(step)}, step=step)
        agent.start()
        for step in range(2_000, 3_000):
            experiment.log_metrics({"loss": float(step)}, step=step)
        assert mbox.flush(timeout=60)
        steps = sorted({p.step for p in own_metrics(experiment)["loss"]})
        assert steps == list(range(3_000))


def test_no_agent_warns_and_the_loop_goes_on_then_ships_when_it_comes(agent):
    agent.stop()
    with pytest.warns(RuntimeWarning, match="not reachable"):
        mbox = Boxcar(str(agent.socket), timeout=1)
        experiment = mbox.new_experiment(name="late", namespace="t")
    started = time.monotonic()
    for step in range(100):
        experiment.log_metrics({"loss": float(step)}, step=step)
    experiment.log_event(Event(name="went on"))
    assert experiment.update_metadata("lr", 0.1).queued
    assert time.monotonic() - started < 2.0  # nothing waited for the agent (the call timeout is 1 s)
    assert not mbox.flush(timeout=0.5)
    agent.start()
    assert mbox.flush(timeout=30)
    assert [p.step for p in own_metrics(experiment)["loss"]] == list(range(100))
    assert [e.name for e in experiment.events()] == ["went on"]
    assert experiment.metadata() == {"lr": 0.1}
    mbox.close()


def test_strict_mode_raises_instead(agent):
    agent.stop()
    mbox = Boxcar(str(agent.socket), strict=True, timeout=1)
    with pytest.raises(BoxcarError) as raised:
        mbox.new_experiment(name="strict", namespace="t")
    assert raised.value.code == "UNAVAILABLE"
    mbox.exit_timeout = 0.1
    mbox.close()
    agent.start()


def test_strict_mode_raises_when_the_agent_goes_away_mid_run(agent):
    mbox = Boxcar(str(agent.socket), strict=True, timeout=2)
    experiment = mbox.new_experiment(name="strict-mid-run", namespace="t", attach=False)
    experiment.log_metrics({"loss": 1.0}, step=1)
    assert mbox.flush(timeout=30)
    agent.kill()
    # Raised by the first call after the shipper has seen the outage: this log call when it
    # already has, else the flush (the outage, or the timeout it causes).
    with pytest.raises(BoxcarError):
        experiment.log_metrics({"loss": 2.0}, step=2)
        mbox.flush(timeout=3)
    with pytest.raises(BoxcarError):
        for step in range(3, 1000):  # the outage is raised in the loop, once seen
            experiment.log_metrics({"loss": float(step)}, step=step)
            time.sleep(0.01)
    mbox.exit_timeout = 0.1
    mbox.close()
    agent.start()


def test_a_full_buffer_drops_and_counts_when_asked(agent):
    agent.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mbox = Boxcar(str(agent.socket), max_buffered=100, on_full="drop", timeout=1)
        experiment = mbox.new_experiment(name="full", namespace="t", attach=False)
    for step in range(30):  # 300 points into room for 100
        experiment.log_metrics({f"k{index}": 1.0 for index in range(10)}, step=step)
    assert mbox.dropped == 200
    assert mbox.pending == 100  # what was dropped is not waiting to be sent
    agent.start()
    assert mbox.flush(timeout=30)
    assert {len(points) for points in own_metrics(experiment).values()} == {10}
    mbox.close()


def test_a_full_buffer_blocks_by_default_until_there_is_room(agent):
    agent.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mbox = Boxcar(str(agent.socket), max_buffered=10, timeout=1)
        experiment = mbox.new_experiment(name="blocked", namespace="t", attach=False)
    experiment.log_metrics({f"k{index}": 1.0 for index in range(10)}, step=0)
    logged = threading.Event()
    worker = threading.Thread(target=lambda: (experiment.log_metrics({"k0": 2.0}, step=1), logged.set()))
    worker.start()
    assert not logged.wait(1.0)  # waits for room while the agent is away
    agent.start()
    assert logged.wait(30)
    worker.join()
    assert mbox.flush(timeout=30) and mbox.dropped == 0
    assert [p.value for p in own_metrics(experiment)["k0"]] == [1.0, 2.0]
    mbox.close()


def test_a_refused_batch_is_counted_and_the_rest_arrives(agent):
    with Boxcar(str(agent.socket)) as mbox:
        experiment = mbox.new_experiment(name="refused", namespace="t", attach=False)
        experiment.log_metrics({"ok": 1.0}, step=1)
        assert mbox.flush(timeout=30)
        bad = mbox.experiment(experiment.id)
        bad.info = dataclasses.replace(bad.info, id="f" * 40)  # an experiment that does not exist
        bad.log_metrics({"lost": 1.0}, step=1)
        assert mbox.flush(timeout=30)
        experiment.log_metrics({"ok": 2.0}, step=2)
        assert mbox.flush(timeout=30)
        assert mbox.refused == 1
        assert [p.value for p in own_metrics(experiment)["ok"]] == [1.0, 2.0]


def test_strict_mode_raises_a_refusal_with_its_status_and_reason(agent):
    with Boxcar(str(agent.socket), strict=True) as mbox:
        experiment = mbox.new_experiment(name="strict-refused", namespace="t", attach=False)
        bad = mbox.experiment(experiment.id)
        bad.info = dataclasses.replace(bad.info, id="f" * 40)  # an experiment that does not exist
        bad.log_metrics({"lost": 1.0}, step=1)
        with pytest.raises(BoxcarError) as raised:
            mbox.flush(timeout=30)
        assert (raised.value.code, raised.value.reason) == ("NOT_FOUND", "not-found")


def test_a_batch_over_the_message_limit_is_refused_not_retried(agent):
    # One step of 70 values of 1 MiB: one batch of 70 MiB, over the 64 MiB a message may hold.
    # gRPC refuses it before the agent reads it (RESOURCE_EXHAUSTED without the agent's reason):
    # sent again it would be refused again, so it is dropped and counted and what follows arrives.
    with Boxcar(str(agent.socket)) as mbox:
        experiment = mbox.new_experiment(name="oversize", namespace="t", attach=False)
        experiment.log_metrics({f"blob{index}": b"\0" * (1 << 20) for index in range(70)}, step=1)
        assert mbox.flush(timeout=120)
        assert mbox.refused == 70
        experiment.log_metrics({"loss": 1.0}, step=2)
        assert mbox.flush(timeout=30)
        assert list(own_metrics(experiment)) == ["loss"]


def test_a_batch_past_the_series_limit_is_refused_not_retried(agent):
    # 60,000 distinct keys against the agent's 50,000 per experiment: the batch that crosses the
    # limit is refused and counted, the shipper goes on, and flush returns.
    with Boxcar(str(agent.socket)) as mbox:
        experiment = mbox.new_experiment(name="cardinality", namespace="t", attach=False)
        for chunk in range(60):
            experiment.log_metrics({f"k{chunk}/{index}": 1.0 for index in range(1_000)}, step=chunk)
        assert mbox.flush(timeout=120)
        # Every point was either stored or refused with its batch, and the limit held.
        stored = own_metrics(experiment)
        assert mbox.refused > 0
        assert len(stored) <= 50_000
        assert sum(len(points) for points in stored.values()) + mbox.refused == 60_000
        experiment.log_metrics({"k0/0": 2.0}, step=99)  # an existing key is still taken
        assert mbox.flush(timeout=30)
        assert [p.step for p in experiment.metrics(["k0/0"])["k0/0"]] == [0, 99]


def test_interpreter_exit_flushes(agent):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT / "Clients" / "python")!r})
        from boxcar import Boxcar
        experiment = Boxcar({str(agent.socket)!r}).new_experiment(name="exit", namespace="t", attach=False)
        for step in range(5000):
            experiment.log_metrics({{"loss": float(step)}}, step=step)
        print(experiment.id)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    channel = grpc.insecure_channel(agent.target)
    response = agent_pb2_grpc.AgentStub(channel).QueryMetrics(
        agent_pb2.QueryMetricsRequest(parent_id=result.stdout.strip(), keys=["loss"]), timeout=10)
    channel.close()
    assert list(response.series[0].step) == list(range(5000))


def test_pip_installs_the_package(tmp_path):
    # Offline apart from grpcio and protobuf: no build isolation, no dependencies fetched.
    # From a copy: pip builds in the source tree, and the checkout stays clean.

    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "Clients" / "python", source, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--root-user-action=ignore", "--target", str(target), str(source)],
                   check=True, timeout=300)
    check = "import boxcar, boxcar.lightning; print(boxcar.__version__, boxcar.Boxcar.__name__)"
    out = subprocess.run([sys.executable, "-c", check], env={**os.environ, "PYTHONPATH": str(target)},
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0.1.0", "Boxcar"]
    assert (target / "boxcar" / "_proto" / "modelbox" / "modelbox_pb2.py").exists()


def test_the_lightning_logger_says_what_to_install_without_lightning():
    import boxcar.lightning

    assert "lightning" not in sys.modules  # not installed here: the module imports all the same
    with pytest.raises(ImportError, match="pip install lightning"):
        boxcar.lightning.BoxcarLogger(name="x")


def test_the_lightning_logger_records_hyperparameters_metrics_and_checkpoints(agent, tmp_path, monkeypatch):
    # Lightning (and torch) are too heavy for CI: a stand-in for its Logger base class, which is
    # all the logger takes from it; Lightning calls these methods as the test does.
    class Logger:
        pass

    for name in ("lightning", "lightning.pytorch", "lightning.pytorch.loggers"):
        monkeypatch.setitem(sys.modules, name, ModuleType(name))
    sys.modules["lightning.pytorch.loggers"].Logger = Logger
    import boxcar.lightning

    module = importlib.reload(boxcar.lightning)
    try:
        logger = module.BoxcarLogger(name="lit", namespace="t", target=str(agent.socket))
        assert isinstance(logger, Logger)
        logger.log_hyperparams({"lr": 0.1, "model": {"layers": 3, "act": print}})
        logger.log_metrics({"loss": 1.5, "acc": 0.5}, step=3)
        checkpoint = tmp_path / "epoch=1-step=3.ckpt"
        checkpoint.write_bytes(b"weights")
        logger.after_save_checkpoint(SimpleNamespace(last_model_path=str(checkpoint), best_model_score=0.25))
        logger.finalize("success")
        experiment = logger.experiment
        assert logger.version == experiment.id == experiment_id("lit", "t")
        assert experiment.metadata() == {"lr": 0.1, "model/layers": 3, "model/act": str(print)}
        assert {key: [(p.step, p.value) for p in points] for key, points in own_metrics(experiment).items()} == {
            "loss": [(3, 1.5)], "acc": [(3, 0.5)]}
        events = experiment.events()
        assert [e.name for e in events] == ["checkpoint_saved", "training_finished"]
        assert events[0].metadata == {"path": str(checkpoint), "best_model_score": 0.25}
        assert events[1].metadata == {"status": "success"}
        [artifact] = experiment.artifacts()
        assert (artifact.path, artifact.file_type) == (str(checkpoint), FileType.CHECKPOINT)
        logger._client.close()
    finally:
        monkeypatch.undo()
        importlib.reload(boxcar.lightning)


def test_metrics_frame_is_a_dataframe_of_the_runs_points(agent):
    import pandas

    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="framed", namespace="sdk") as experiment:
            for step in range(3):
                experiment.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 4}, step=step)
            experiment.log_metrics({"note": "warm-up done"}, step=3)
            # The machine's series of the run's window (this process is attached).
            key = wait_for_tree_series(experiment)

            frame = experiment.metrics_frame()
            assert list(frame.columns) == ["key", "step", "wallclock", "value"]
            assert sorted(set(frame["key"])) == ["acc", "loss", "note"]  # no system/ series unless asked
            loss = frame[frame["key"] == "loss"]
            assert list(loss["step"]) == [0, 1, 2] and list(loss["value"]) == [1.0, 0.5, 1 / 3]
            assert str(frame["step"].dtype) == "uint64" and str(frame["wallclock"].dtype) == "datetime64[ns, UTC]"
            assert (frame["wallclock"] - pandas.Timestamp.now(tz="UTC")).abs().max() < pandas.Timedelta(minutes=5)
            assert frame[frame["key"] == "note"]["value"].tolist() == ["warm-up done"]
            wide = frame[frame["key"] != "note"].pivot_table(index="step", columns="key", values="value")
            assert wide.loc[2, "loss"] == 1 / 3 and wide.loc[2, "acc"] == 0.5

            with_system = experiment.metrics_frame(system=True)
            assert key in set(with_system["key"]) and len(with_system) > len(frame)
            only = experiment.metrics_frame(keys=["acc", key])
            assert set(only["key"]) == {"acc", key}
            assert experiment.metrics_frame(keys=["absent"]).empty


def test_metrics_frame_without_pandas_says_so(agent, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="no-pandas", namespace="sdk") as experiment:
            experiment.log_metrics({"loss": 1.0}, step=0)
            with pytest.raises(ImportError, match="needs pandas, which is not installed: pip install pandas"):
                experiment.metrics_frame()
            assert experiment.metrics()["loss"][0].value == 1.0  # the rest of the SDK does without

"""The exporter (`boxcar agent --http`): /metrics as a real Prometheus and its tools read it, the
probes, and what bad HTTP clients get.

Each test starts its own agent with `--http 127.0.0.1:0` (the address is read from its log), and
where it says so a real `prometheus` from Debian's package scraping it every second.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from conftest import agent_binary, running_agent
from monitoring import Prometheus, get, http_address
from postgres import Collector, wait_for, wait_until_forwarded

from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
from boxcar._proto.modelbox import modelbox_pb2 as mb

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


def fake_nvml(directory: Path, script: str) -> Path:
    """A copy of the fake NVML library, scripted."""
    library = directory / "libnvidia-ml.so.1"
    shutil.copy(agent_binary().parent / "libFakeNVML.so", library)
    (directory / "libnvidia-ml.so.1.script").write_text(script)
    return library


def page(address: str, accept: str | None = None, headers: dict | None = None) -> str:
    status, answer_headers, body = get(f"http://{address}/metrics", {**({"Accept": accept} if accept else {}), **(headers or {})})
    assert status == 200, body
    return body.decode()


def samples(text: str, name: str) -> list:
    """Every sample named `name` of a Prometheus text page."""
    return [sample for family in text_families(text) for sample in family.samples if sample.name == name]


def stored(agent, key: str) -> list[tuple[float, float]]:
    """(wallclock in seconds, value) of every point the agent stored under `host`'s `key`."""
    result = subprocess.run(
        [str(agent_binary()), "metrics", "host", "--key", key, "--json", "--socket", str(agent.socket)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [(point["wallclock"] / 1e9, point["value"]) for point in json.loads(result.stdout)]


class Tree:
    """A process tree to attach: a shell and `children` sleeping children of it."""

    def __init__(self, children: int):
        script = " ".join(["sleep 600 &"] * children) + " wait"
        self.process = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL)
        self.pid = self.process.pid
        wait_for(lambda: len(self.children()) == children, 20, f"{children} children of the tree's shell")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def close(self) -> None:
        for pid in self.children():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.process.kill()
        self.process.wait()


def test_the_text_page_passes_promtool_and_the_openmetrics_page_parses(tmp_path):
    tree = Tree(children=3)
    try:
        library = fake_nvml(tmp_path, f"gpus 2\n0 utilization.gpu 87\n1 utilization.gpu 12\n0 process {tree.pid} 1048576\n")
        with running_agent(tmp_path, "--http", "127.0.0.1:0", "--nvml-library", str(library)) as agent:
            address = http_address(agent)
            experiment = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="exposed", namespace="n")).experiment_id
            agent_pb2_grpc.AgentStub(agent.channel).Attach(agent_pb2.AttachRequest(experiment_id=experiment, pid=tree.pid))
            # Two ticks after the attach: the counters, the GPUs and the tree are all on the page.
            text = wait_for(
                lambda: (lambda t: t if 'process_pid="' + str(tree.pid) + '"' in t and "system_cpu_time_seconds_total" in t else None)(page(address)),
                20, "the attached tree on the page")

            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr

            families = {family.name: family for family in text_families(text)}
            for name in ["system_cpu_time_seconds_total", "system_memory_usage_bytes", "hw_gpu_utilization_ratio",
                         "hw_energy_joules_total", "process_cpu_time_seconds_total", "boxcar_store_commit_seconds",
                         "boxcar_sensor_cpu_seconds_total", "boxcar_calls_total"]:
                assert name in families or name.removesuffix("_total") in families, f"{name} is not on the page"
            # The kernels' share (the video engines' carry hw_gpu_task).
            gpu = {sample.labels["index"]: sample.value for sample in samples(text, "hw_gpu_utilization_ratio")
                   if "hw_gpu_task" not in sample.labels}
            assert gpu == {"0": 0.87, "1": 0.12}
            # The tree: the shell and its three children, each with the experiment.
            pids = {s.labels["process_pid"] for s in samples(text, "process_threads") if s.labels["experiment_id"] == experiment}
            assert pids == {str(tree.pid), *map(str, tree.children())}
            memory = samples(text, "hw_gpu_process_memory_usage_bytes")
            assert [(s.labels["experiment_id"], s.labels["process_pid"], s.value) for s in memory] == [(experiment, str(tree.pid), 1048576)]
            # The call that created the experiment is counted.
            calls = {(s.labels["method"], s.labels["code"]): s.value for s in samples(text, "boxcar_calls_total")}
            assert calls[("modelbox.ModelStore/CreateExperiment", "OK")] >= 1

            openmetrics = page(address, accept=OPENMETRICS)
            assert openmetrics.endswith("# EOF\n")
            parsed = {family.name: family for family in openmetrics_families(openmetrics)}
            assert parsed["system_cpu_time_seconds"].type == "counter"
            assert parsed["system_cpu_time_seconds"].unit == "seconds"
            assert parsed["boxcar_store_commit_seconds"].type == "histogram"
            assert parsed["system_disk"].type == "info" or "system_disk" not in parsed  # no whole disk in a container

            # Detached, the trainer leaves the page.
            agent_pb2_grpc.AgentStub(agent.channel).Detach(agent_pb2.DetachRequest(experiment_id=experiment, pid=tree.pid))
            wait_for(lambda: experiment not in page(address), 20, "the detached trainer to leave the page")
    finally:
        tree.close()


def test_a_trainer_shows_its_64_busiest_processes_and_the_rest_as_other(tmp_path):
    tree = Tree(children=69)
    try:
        with running_agent(tmp_path, "--http", "127.0.0.1:0") as agent:
            address = http_address(agent)
            experiment = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="wide", namespace="n")).experiment_id
            agent_pb2_grpc.AgentStub(agent.channel).Attach(agent_pb2.AttachRequest(experiment_id=experiment, pid=tree.pid))
            text = wait_for(lambda: (lambda t: t if 'process_pid="other"' in t else None)(page(address)), 20, "process_pid=other on the page")
            threads = {s.labels["process_pid"]: s.value for s in samples(text, "process_threads") if s.labels["experiment_id"] == experiment}
            assert len(threads) == 65 and "other" in threads
            # 70 processes of one thread each: 64 shown, 6 summed.
            assert threads["other"] == 6
            assert sum(threads.values()) == 70
    finally:
        tree.close()


def test_prometheus_scraping_every_second_stores_what_the_agent_stored(tmp_path):
    library = fake_nvml(tmp_path, "gpus 1\n0 utilization.gpu 64\n0 temperature 71\n")
    with running_agent(tmp_path, "--http", "127.0.0.1:0", "--nvml-library", str(library)) as agent:
        address = http_address(agent)
        prometheus = Prometheus([{"job_name": "boxcar", "scrape_interval": "1s", "static_configs": [{"targets": [address]}]}])
        try:
            # The CPU's idle share, and memory in use, which moves every tick even when the CPUs
            # are all busy (the agent's own writes change the page cache) so that matching values
            # prove something.
            compared = {
                'system_cpu_utilization_ratio{cpu_logical_number="0",cpu_mode="idle"}': 'system/system.cpu.utilization{cpu.logical_number="0",cpu.mode="idle"}',
                'system_memory_usage_bytes{system_memory_state="used"}': 'system/system.memory.usage{system.memory.state="used"}',
            }
            for series in compared:
                wait_for(lambda: (lambda r: r if r and len(r[0]["values"]) >= 5 else None)(prometheus.query(series + "[5m]")),
                         60, f"five scrapes of {series} in Prometheus")
            assert prometheus.query('up{job="boxcar"}')[0]["value"][1] == "1"
            # The counters are on the page (read beside the rates; stored only for remote write).
            assert float(prometheus.query('system_cpu_time_seconds_total{cpu_logical_number="0",cpu_mode="idle"}')[0]["value"][1]) > 0

            # Every value Prometheus scraped is the agent's latest stored value at the scrape (or
            # the one before, for a scrape that met a tick being sampled): a page stuck on an old
            # tick would fail here.
            memory_points = stored(agent, compared['system_memory_usage_bytes{system_memory_state="used"}'])
            assert len({value for _, value in memory_points}) > 1, "memory in use did not move: the comparison would prove little"
            scraped_memory = prometheus.query('system_memory_usage_bytes{system_memory_state="used"}[5m]')[0]["values"]
            assert len({value for _, value in scraped_memory}) > 1, "Prometheus saw memory in use stand still"
            for series, key in compared.items():
                # Prometheus first: a scrape between the two reads would find a tick not yet read.
                scraped = prometheus.query(series + "[5m]")[0]["values"]
                points = stored(agent, key)
                for scraped_at, value in scraped:
                    latest = [stored_value for at, stored_value in points if at <= float(scraped_at) + 0.5][-2:]
                    assert float(value) in latest, f"Prometheus has {series} = {value} at {scraped_at}; the agent's latest then: {latest}"

            memory = prometheus.query("system_memory_limit_bytes")
            assert float(memory[0]["value"][1]) == stored(agent, "system/system.memory.limit")[-1][1]
            gpu = prometheus.query('hw_gpu_utilization_ratio{hw_gpu_task=""}')
            assert [(r["metric"]["index"], float(r["value"][1])) for r in gpu] == [("0", 0.64)]
            assert stored(agent, gpu_key(agent, "hw.gpu.utilization"))[-1][1] == 0.64
            temperature = prometheus.query("hw_temperature_celsius")
            assert float(temperature[0]["value"][1]) == 71
        finally:
            prometheus.close()


def gpu_key(agent, name: str) -> str:
    """The stored key of GPU 0's `name` series (its labels hold the fake's name and uuid), not a
    video engine's (`hw.gpu.task`)."""
    result = subprocess.run(
        [str(agent_binary()), "metrics", "host", "--json", "--socket", str(agent.socket)],
        capture_output=True, text=True, timeout=60)
    keys = {point["key"] for point in json.loads(result.stdout)}
    return next(key for key in keys if key.startswith(f"system/{name}{{hw.id="))


def test_probes_and_bad_requests_get_clear_answers_and_leave_the_agent_serving(tmp_path):
    with running_agent(tmp_path, "--http", "127.0.0.1:0") as agent:
        address = http_address(agent)
        host, port = address.rsplit(":", 1)
        assert get(f"http://{address}/healthz")[0] == 200
        # Ready once every listener is bound, which can come just after the HTTP one logs its address.
        wait_for(lambda: get(f"http://{address}/readyz")[0] == 200, 5, "/readyz to say 200")
        assert get(f"http://{address}/nothing-here")[0] == 404

        def raw(request: bytes) -> bytes:
            with socket.create_connection((host, int(port)), timeout=10) as connection:
                connection.sendall(request)
                return connection.recv(4096)

        assert raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 405")
        # A body, which no endpoint takes, is refused before it is read.
        assert raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n").startswith(b"HTTP/1.1 413")
        # Headers too large for the decoder.
        assert raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n").startswith(b"HTTP/1.1 400")

        # Clients that connect and say nothing, or half a request, do not stop scrapes or calls.
        idle = [socket.create_connection((host, int(port))) for _ in range(10)]
        idle[0].sendall(b"GET /metr")
        try:
            for _ in range(3):
                assert "boxcar_build_info" in page(address)
            agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="still-serving", namespace="n"))
            # The agent closes them once idle (15 s).
            idle[1].settimeout(40)
            assert idle[1].recv(1) == b""
        finally:
            for connection in idle:
                connection.close()
        assert get(f"http://{address}/healthz")[0] == 200


def test_a_scrape_while_the_store_is_busy_is_answered(tmp_path):
    with running_agent(tmp_path, "--http", "127.0.0.1:0") as agent:
        address = http_address(agent)
        experiment = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="busy", namespace="n")).experiment_id
        stub = agent_pb2_grpc.AgentStub(agent.channel)
        batches = 400

        def batches_of_points():
            for batch in range(batches):
                count = 5_000
                yield agent_pb2.LogBatch(
                    batch_id=batch, series=[agent_pb2.SeriesRef(parent_id=experiment, key="loss")],
                    points=agent_pb2.FloatColumns(
                        key=[0] * count, step=range(batch * count, (batch + 1) * count),
                        wallclock_ns=[1] * count, value=[0.5] * count))

        acknowledged = []
        writer = threading.Thread(target=lambda: acknowledged.extend(stub.Log(batches_of_points(), timeout=120)))
        writer.start()
        try:
            scrapes = 0
            while writer.is_alive() or scrapes < 5:
                started = time.monotonic()
                text = page(address)
                assert time.monotonic() - started < 5, "a scrape waited on the store"
                assert "boxcar_store_queued_writes" in text
                scrapes += 1
        finally:
            writer.join()
        assert len(acknowledged) == batches
        accepted = {s.labels["code"]: s.value for s in samples(page(address), "boxcar_points_total")}
        assert accepted["OK"] >= batches * 5_000


def test_the_health_families_count_refusals_sensor_errors_and_the_agents_own_cost(tmp_path):
    # A /proc without `stat`: the CPU sensor fails every tick, the others read on.
    proc = tmp_path / "proc"
    proc.mkdir()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() and entry != "stat":
            (proc / entry).symlink_to(Path("/proc") / entry)
    with running_agent(tmp_path, "--http", "127.0.0.1:0", "--proc-root", str(proc)) as agent:
        address = http_address(agent)
        experiment = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="health", namespace="n")).experiment_id
        with pytest.raises(Exception):
            agent.stub.GetExperiment(mb.GetExperimentRequest(id="no-such-experiment"), timeout=10)
        refused = agent_pb2.LogBatch(batch_id=1, series=[agent_pb2.SeriesRef(parent_id="no-such-parent", key="loss")],
                                     points=agent_pb2.FloatColumns(key=[0] * 3, step=[1, 2, 3], wallclock_ns=[1] * 3, value=[1.0] * 3))
        with pytest.raises(Exception):
            list(agent_pb2_grpc.AgentStub(agent.channel).Log(iter([refused]), timeout=10))
        accepted = agent_pb2.LogBatch(batch_id=1, series=[agent_pb2.SeriesRef(parent_id=experiment, key="loss")],
                                      points=agent_pb2.FloatColumns(key=[0] * 2, step=[1, 2], wallclock_ns=[1] * 2, value=[1.0] * 2))
        list(agent_pb2_grpc.AgentStub(agent.channel).Log(iter([accepted]), timeout=10))

        def settled():
            text = page(address)
            errors = {s.labels["sensor"]: s.value for s in samples(text, "boxcar_sensor_errors_total")}
            return text if errors.get("cpu", 0) >= 2 else None

        text = wait_for(settled, 30, "two failed ticks of the CPU sensor on the page")
        calls = {(s.labels["method"], s.labels["code"]): s.value for s in samples(text, "boxcar_calls_total")}
        assert calls[("modelbox.ModelStore/GetExperiment", "NOT_FOUND")] == 1
        assert calls[("boxcar.v1.Agent/Log", "NOT_FOUND")] == 1
        points = {s.labels["code"]: s.value for s in samples(text, "boxcar_points_total")}
        assert points["NOT_FOUND"] == 3 and points["OK"] >= 2
        # The CPU sensor fails, those reading other files do not; none hangs; each sensor's cost
        # per tick is published.
        errors = {s.labels["sensor"]: s.value for s in samples(text, "boxcar_sensor_errors_total")}
        assert errors["cpu"] >= 2 and errors["memory"] == errors["network"] == errors["disk"] == 0, errors
        assert all(s.value == 0 for s in samples(text, "boxcar_sensor_hangs_total"))
        ticks = {s.labels["sensor"]: s.value for s in samples(text, "boxcar_sensor_tick_cpu_seconds")}
        assert {"memory", "network", "disk"} <= set(ticks) and all(0 <= value < 1 for value in ticks.values())
        assert sum(s.value for s in samples(text, "boxcar_sensor_cpu_seconds_total")) > 0
        # The database's bytes are the file and its write-ahead log.
        on_disk = sum(os.path.getsize(path) for path in [agent.db, Path(str(agent.db) + "-wal")] if os.path.exists(path))
        published = samples(text, "boxcar_store_database_bytes")[0].value
        assert published > 0 and abs(published - on_disk) <= max(on_disk, published) * 0.5
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr


def test_readyz_says_when_the_store_cannot_take_writes(small_disk, tmp_path):
    with running_agent(small_disk, "--http", "127.0.0.1:0", "--sample-interval", "0.2", socket_path=tmp_path / "full.sock") as agent:
        address = http_address(agent)
        wait_for(lambda: get(f"http://{address}/readyz")[0] == 200, 5, "/readyz to say 200")
        filler = small_disk / "filler"
        with open(filler, "wb") as out:
            try:
                while True:
                    out.write(b"\0" * (1 << 20))
                    out.flush()
            except OSError:
                pass
        # The sampler's next commits fail for want of space.
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(f"http://{address}/readyz")), 30, "/readyz to say 503")
        assert b"cannot take writes" in body, body
        assert get(f"http://{address}/healthz")[0] == 200
        filler.unlink()
        wait_for(lambda: get(f"http://{address}/readyz")[0] == 200, 30, "/readyz to say 200 once a commit goes through")


def test_the_token_guards_metrics_and_not_the_probes(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o600)
    with running_agent(tmp_path, "--http", "127.0.0.1:0", "--token-file", str(token)) as agent:
        address = http_address(agent)
        status, headers, _ = get(f"http://{address}/metrics")
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
        assert get(f"http://{address}/metrics", {"Authorization": "Bearer wrong"})[0] == 401
        # The router sends /metrics/ and //metrics to the same page: the token is asked there too.
        assert get(f"http://{address}/metrics/")[0] == 401
        assert get(f"http://{address}//metrics")[0] in (401, 404)
        assert "boxcar_build_info" in page(address, headers={"Authorization": "Bearer s3cret"})
        assert get(f"http://{address}/healthz")[0] == 200


def test_http_beyond_loopback_needs_allow_remote(tmp_path):
    result = subprocess.run(
        [str(agent_binary()), "agent", "--db", str(tmp_path / "db"), "--socket", str(tmp_path / "s.sock"), "--http", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--allow-remote" in result.stderr


def test_the_collector_publishes_its_agents_their_lag_and_what_it_wrote(database, tmp_path):
    collector = Collector(tmp_path / "collector", database, "--http", "127.0.0.1:0")
    collector.start()
    address = http_address(collector)
    assert get(f"http://{address}/readyz")[0] == 200
    (tmp_path / "agent").mkdir()
    with running_agent(tmp_path / "agent", "--upstream", collector.target, "--upstream-host-series", "all",
                       "--http", "127.0.0.1:0") as agent:
        agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="forwarded", namespace="n"))
        wait_until_forwarded(agent)
        text = page(address)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr
        assert samples(text, "boxcar_collector_agents_connected")[0].value == 1
        lag = samples(text, "boxcar_collector_agent_lag_records")
        assert len(lag) == 1 and lag[0].labels["host"] and lag[0].value >= 0
        assert samples(text, "boxcar_collector_rows_written_total")[0].value > 0
        assert samples(text, "boxcar_collector_postgres_errors_total")[0].value == 0
        # The agent says the same from its side.
        upstream = samples(page(http_address(agent)), "boxcar_upstream_connected")
        assert [(s.labels["upstream"], s.value) for s in upstream] == [(collector.target, 1)]
    wait_for(lambda: samples(page(address), "boxcar_collector_agents_connected")[0].value == 0, 30, "the agent to leave the page")
    # Its stream, ended, is counted with the collector's calls.
    forwards = [s for s in samples(page(address), "boxcar_calls_total") if s.labels["method"] == "boxcar.v1.Collector/Forward"]
    assert sum(s.value for s in forwards) == 1
    collector.stop()


def test_the_collectors_readyz_says_when_postgresql_fails_its_writes(postgres_cluster, database, tmp_path):
    collector = Collector(tmp_path / "collector", database, "--http", "127.0.0.1:0")
    collector.start()
    address = http_address(collector)
    (tmp_path / "agent").mkdir()
    try:
        with running_agent(tmp_path / "agent", "--upstream", collector.target, "--upstream-host-series", "all"):
            wait_for(lambda: get(f"http://{address}/readyz")[0] == 200, 30, "the collector to be ready")
            postgres_cluster.stop()
            # Each tick the agent forwards now fails to be written. A write in flight when the
            # server stops can instead go unanswered (postgres-nio, see Transaction.swift) until
            # the collector gives it up after 60 s: 503 comes by then.
            status, _, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(f"http://{address}/readyz")), 90,
                                       "the collector's /readyz to say 503")
            assert b"PostgreSQL failed the last write" in body, body
            postgres_cluster.start_if_stopped()
            wait_for(lambda: get(f"http://{address}/readyz")[0] == 200, 90, "/readyz to say 200 once a batch is written")
    finally:
        postgres_cluster.start_if_stopped()
        collector.stop()

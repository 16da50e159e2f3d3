"""`boxcar agent --remote-write URL`: the machine's series pushed as Prometheus remote write 1.0
into a real Prometheus (`--web.enable-remote-write-receiver`) and a real VictoriaMetrics, both
from Debian's packages, through their outages and the agent's restart; and into a receiver of
the test's own, which decodes the snappy body itself and times each sample's arrival.
"""

from __future__ import annotations

import http.server
import json
import socket
import struct
import subprocess
import threading
import time

import cramjam

from conftest import agent_binary, running_agent
from monitoring import Prometheus, VictoriaMetrics, get, http_address
from postgres import wait_for

CPU_IDLE = 'system/system.cpu.time{cpu.logical_number="0",cpu.mode="idle"}'
MEMORY_USED = 'system/system.memory.usage{system.memory.state="used"}'
SERIES = {CPU_IDLE: 'system_cpu_time_seconds_total{cpu_logical_number="0",cpu_mode="idle"}', MEMORY_USED: 'system_memory_usage_bytes{system_memory_state="used"}'}


def stored(agent, key: str) -> list[tuple[int, float]]:
    """(milliseconds, value) of every point of `host`'s `key`, as the agent stored it."""
    result = subprocess.run(
        [str(agent_binary()), "metrics", "host", "--key", key, "--json", "--db", str(agent.db)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [(point["wallclock"] // 1_000_000, point["value"]) for point in json.loads(result.stdout)]


def in_victoria(victoria, selector: str) -> list[tuple[int, float]]:
    series = victoria.export(selector)
    return sorted((t, v) for s in series for t, v in zip(s["timestamps"], s["values"]))


def in_prometheus(prometheus, selector: str) -> list[tuple[int, float]]:
    result = prometheus.query(selector + "[1h]")
    return sorted((round(float(t) * 1000), float(v)) for r in result for t, v in r["values"])


def health(address: str) -> str:
    return get(f"http://{address}/metrics")[2].decode()


def test_every_point_arrives_once_through_outages_and_a_restart(tmp_path):
    prometheus = Prometheus()
    victoria = VictoriaMetrics()
    try:
        targets = [prometheus.url + "/api/v1/write", victoria.url + "/api/v1/write"]
        args = ["--remote-write", targets[0], "--remote-write", targets[1], "--label", "cluster=test", "--http", "127.0.0.1:0"]
        with running_agent(tmp_path, *args) as agent:
            wait_for(lambda: len(in_victoria(victoria, SERIES[CPU_IDLE])) >= 3, 30, "the first points in VictoriaMetrics")
            wait_for(lambda: len(in_prometheus(prometheus, SERIES[CPU_IDLE])) >= 3, 30, "the first points in Prometheus")
            # The series carry the external labels: --label, and host by default.
            labels = victoria.export(SERIES[MEMORY_USED])[0]["metric"]
            assert labels["cluster"] == "test" and labels["host"] == socket.gethostname() and labels["system_memory_state"] == "used"

            # Both receivers go away; the agent samples on, and keeps what it could not send.
            prometheus.stop()
            victoria.stop()
            count = len(stored(agent, CPU_IDLE))
            address = http_address(agent)
            wait_for(lambda: len(stored(agent, CPU_IDLE)) >= count + 4, 30, "four ticks sampled during the outage")
            wait_for(lambda: "boxcar_remote_write_failed_requests_total" in health(address)
                     and 'boxcar_remote_write_failed_requests_total{url="' + targets[1] + '"} 0' not in health(address),
                     30, "remote write to fail during the outage")
            prometheus.start()
            victoria.start()
            # Caught up: no lag left.
            wait_for(lambda: all(f'boxcar_remote_write_lag_seconds{{url="{t}"}} 0' in health(address) for t in targets)
                     and len(in_victoria(victoria, SERIES[CPU_IDLE])) >= len(stored(agent, CPU_IDLE)) - 2,
                     60, "remote write to catch up after the outage")
        # The agent restarts on its database: it resumes from its cursor.
        with running_agent(tmp_path, *args) as agent:
            wait_for(lambda: len(stored(agent, CPU_IDLE)) >= count + 8, 30, "ticks after the restart")
        expected = {key: stored(agent, key) for key in SERIES}

        # Every point up to the last tick before the stop arrives, once: VictoriaMetrics keeps a
        # sample sent twice twice. (The tick sampled as the agent stopped waits for its next run.)
        for key, selector in SERIES.items():
            for name, read in [("VictoriaMetrics", lambda: in_victoria(victoria, selector)), ("Prometheus", lambda: in_prometheus(prometheus, selector))]:
                wait_for(lambda: len(read()) >= len(expected[key]) - 1, 60,
                         f"the points of {key} in {name} ({len(expected[key])} stored, {len(read())} there)")
                delivered = read()
                assert delivered == expected[key][:len(delivered)], f"{name} holds other points than the agent stored"
    finally:
        prometheus.close()
        victoria.close()


class Receiver(http.server.ThreadingHTTPServer):
    """A remote-write receiver of the test's own: decodes each body (snappy, then protobuf by
    hand) and notes when each sample it took arrived; answers with `status` (200 unless told), or
    with the statuses in `script`, one a request, first."""

    def __init__(self):
        self.samples: list[tuple[dict, int, float, float]] = []  # labels, ms, value, arrival
        self.headers_seen: list[dict] = []
        # Every request's samples as (name, labels, ms), and the status it was answered with.
        self.requests: list[tuple[int, set]] = []
        self.request_times: list[float] = []
        self.status = 200
        self.script: list[int] = []
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/receive"


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        arrival = time.time()
        self.server.headers_seen.append(dict(self.headers))
        self.server.request_times.append(time.monotonic())
        status = self.server.script.pop(0) if self.server.script else self.server.status
        decoded = decode_write_request(bytes(cramjam.snappy.decompress_raw(body)))
        self.server.requests.append((status, {(labels["__name__"], tuple(sorted(labels.items())), ms) for labels, samples in decoded for ms, _ in samples}))
        if status == 200:
            for labels, samples in decoded:
                for ms, value in samples:
                    self.server.samples.append((labels, ms, value, arrival))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"refused by the test" if status != 200 else b"")


def fields(data: bytes):
    """(field number, wire type, value) of a protobuf message."""
    index = 0

    def varint():
        nonlocal index
        shift = result = 0
        while True:
            byte = data[index]
            index += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    while index < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 1:
            yield number, wire, data[index:index + 8]
            index += 8
        elif wire == 2:
            length = varint()
            yield number, wire, data[index:index + length]
            index += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")


def decode_write_request(data: bytes):
    """prometheus.WriteRequest → [(labels, [(ms, value)])]."""
    out = []
    for number, _, series in fields(data):
        assert number == 1, f"WriteRequest field {number}"
        labels, samples = {}, []
        for inner, _, value in fields(series):
            if inner == 1:
                label = {n: v.decode() for n, _, v in fields(value)}
                labels[label.get(1, "")] = label.get(2, "")
            elif inner == 2:
                sample = {n: v for n, _, v in fields(value)}
                timestamp = sample.get(2, 0)
                samples.append((timestamp - (1 << 64) if timestamp >= 1 << 63 else timestamp, struct.unpack("<d", sample.get(1, bytes(8)))[0]))
        assert list(labels) == sorted(labels), f"labels not sorted: {list(labels)}"
        out.append((labels, samples))
    return out


def test_samples_arrive_within_two_seconds_with_the_headers_given(tmp_path):
    receiver = Receiver()
    token = tmp_path / "token"
    token.write_text("rw-secret\n")
    token.chmod(0o600)
    try:
        with running_agent(tmp_path, "--remote-write", receiver.url, "--remote-write-token-file", str(token),
                           "--remote-write-header", "X-Scope-OrgID: team-a") as agent:
            wait_for(lambda: len({ms for _, ms, _, _ in receiver.samples}) >= 6, 30, "six ticks received")
            assert receiver.headers_seen[0]["Authorization"] == "Bearer rw-secret"
            assert receiver.headers_seen[0]["X-Scope-OrgID"] == "team-a"
            assert receiver.headers_seen[0]["Content-Encoding"] == "snappy"
            # After the first request (which carries what the start sampled), each sample arrives
            # within 2 s of the time it was sampled at.
            first = min(arrival for *_, arrival in receiver.samples)
            delays = [arrival - ms / 1000 for _, ms, _, arrival in receiver.samples if arrival > first]
            assert delays and max(delays) < 2, f"the slowest sample took {max(delays):.2f} s"
            # The names and values are the page's and the store's.
            memory = {ms: value for labels, ms, value, _ in receiver.samples if labels["__name__"] == "system_memory_limit_bytes"}
            assert memory and set(memory.values()) == {stored(agent, "system/system.memory.limit")[-1][1]}
            # The rates stored beside the counters are not sent; only the page's names are.
            names = {labels["__name__"] for labels, *_ in receiver.samples}
            assert "system_cpu_time_seconds_total" in names
            assert not any("context_switches" in n and not n.endswith("_total") for n in names)
    finally:
        receiver.shutdown()


def test_samples_the_receiver_refuses_are_counted_and_logged_not_retried(tmp_path):
    receiver = Receiver()
    receiver.status = 400
    try:
        with running_agent(tmp_path, "--remote-write", receiver.url, "--http", "127.0.0.1:0") as agent:
            address = http_address(agent)
            dropped = wait_for(
                lambda: next((float(line.split()[-1]) for line in health(address).splitlines()
                              if line.startswith('boxcar_remote_write_samples_total{outcome="dropped"') and float(line.split()[-1]) > 0), None),
                30, "refused samples to be counted")
            assert dropped > 0
            assert "the receiver refused" in agent.output() and "refused by the test" in agent.output()
            # Not retried: no sample refused comes again in a later request.
            requests = len(receiver.requests)
            wait_for(lambda: len(receiver.requests) > requests + 1, 30, "the next ticks' requests")
            seen: set = set()
            for _, request in list(receiver.requests):
                assert not request & seen, "a refused sample was sent again"
                seen |= request
            # Taken again, new samples flow.
            receiver.status = 200
            wait_for(lambda: receiver.samples, 30, "samples once the receiver takes them")
    finally:
        receiver.shutdown()


def test_server_errors_and_429_are_retried_until_taken_and_nothing_is_lost(tmp_path):
    receiver = Receiver()
    # Three answers of 503 and two of 429, then 200: the same samples are sent again, with backoff.
    receiver.script = [503, 503, 503, 429, 429]
    try:
        with running_agent(tmp_path, "--remote-write", receiver.url, "--http", "127.0.0.1:0") as agent:
            address = http_address(agent)
            wait_for(lambda: len({ms for _, ms, _, _ in receiver.samples}) >= 4, 60, "samples once the receiver takes them")
            statuses = [status for status, _ in receiver.requests]
            assert statuses[:6] == [503, 503, 503, 429, 429, 200], statuses
            # Each refusal was answered by the same request again, not by a later tick's.
            first = receiver.requests[0][1]
            assert first and all(request == first for _, request in receiver.requests[:6])
            # With backoff: 0.25, 0.5, 1, 2 and 4 s between the six.
            waits = [b - a for a, b in zip(receiver.request_times[:6], receiver.request_times[1:6])]
            assert all(wait >= 0.2 * 2 ** index for index, wait in enumerate(waits)), waits
            failed = next(float(line.split()[-1]) for line in health(address).splitlines()
                          if line.startswith("boxcar_remote_write_failed_requests_total"))
            assert failed == 5
            assert not any(line.startswith('boxcar_remote_write_samples_total{outcome="dropped"') and float(line.split()[-1]) > 0
                           for line in health(address).splitlines())
            # Every tick the agent stored from the first one sent arrives, once each (a new
            # receiver starts after what was committed when its cursor was made: the first tick
            # or two of a new agent may be before it).
            cpu = lambda: sorted((ms, value) for labels, ms, value, _ in receiver.samples
                                 if labels["__name__"] == "system_cpu_time_seconds_total" and labels["cpu_logical_number"] == "0" and labels["cpu_mode"] == "idle")
            expected = [point for point in stored(agent, CPU_IDLE) if point[0] >= cpu()[0][0]]
            assert len(expected) >= len(stored(agent, CPU_IDLE)) - 2
            wait_for(lambda: len(cpu()) >= len(expected), 30, "every stored tick at the receiver")
            assert cpu()[:len(expected)] == expected
            assert len({ms for ms, _ in cpu()}) == len(cpu()), "a sample arrived twice"
    finally:
        receiver.shutdown()


def test_trainers_processes_are_pushed_only_when_asked(tmp_path):
    from test_exporter import Tree
    from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
    from boxcar._proto.modelbox import modelbox_pb2 as mb

    for asked in (False, True):
        receiver = Receiver()
        tree = Tree(children=2)
        directory = tmp_path / str(asked)
        directory.mkdir()
        try:
            args = ["--remote-write", receiver.url] + (["--remote-write-processes"] if asked else [])
            with running_agent(directory, *args) as agent:
                experiment = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="tree", namespace="n")).experiment_id
                agent_pb2_grpc.AgentStub(agent.channel).Attach(agent_pb2.AttachRequest(experiment_id=experiment, pid=tree.pid))
                attached_ticks = lambda: {ms for labels, ms, _, _ in receiver.samples if labels["__name__"] == "system_cpu_time_seconds_total"}
                start = len(attached_ticks())
                wait_for(lambda: len(attached_ticks()) >= start + 4, 30, "four ticks while attached")
                trees = [labels for labels, *_ in receiver.samples if labels["__name__"] == "process_tree_processes"]
                if asked:
                    assert trees and {labels["experiment_id"] for labels in trees} == {experiment}
                    assert {labels["process_pid"] for labels in trees} == {str(tree.pid)}
                else:
                    assert not trees, "a trainer's tree was pushed without --remote-write-processes"
        finally:
            tree.close()
            receiver.shutdown()

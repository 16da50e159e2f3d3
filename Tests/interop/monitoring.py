"""The monitoring stacks the exporter's tests talk to: a real Prometheus (Debian's `prometheus`
package) started on a free loopback port in a temporary directory, and the agent's HTTP address.
A missing server fails the tests: `.ci/run` installs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from postgres import free_port, wait_for

STARTUP_TIMEOUT_S = 30


def http_address(agent, timeout: float = 20) -> str:
    """The agent's `--http` address as it logged it (`--http 127.0.0.1:0` binds a free port)."""

    def logged():
        match = re.search(r"http=(\S+) \[boxcar\] serving HTTP", agent.output())
        return match.group(1) if match else None

    return wait_for(logged, timeout, "the agent to log its HTTP address")


def get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Server:
    """A server process of a test, in a temporary directory of its own (`dir`), stopped with
    SIGTERM and its directory removed by `close`."""

    process: subprocess.Popen | None = None
    dir: Path

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Prometheus(Server):
    """`prometheus` with the given scrape jobs, on 127.0.0.1:<free port>, its TSDB in a
    temporary directory; `--web.enable-remote-write-receiver` so that remote write can be tested
    against it too."""

    def __init__(self, scrape_configs: list[dict] | None = None):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("Prometheus is not installed (apt-get install prometheus); .ci/run installs it", pytrace=False)
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="boxcar-prom-"))
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": scrape_configs or []}))
        self.process = None
        # A port taken between the probe and the bind is tried again with another.
        for _ in range(5):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            if self.start(fail=False) or "address already in use" not in self.output():
                break
        if self.process is None:
            pytest.fail(f"Prometheus did not start:\n{self.output()}", pytrace=False)

    def start(self, fail: bool = True) -> bool:
        """Starts it on its port and data (again, after `stop`); whether it became ready."""
        self.log = open(self.dir / "prometheus.log", "ab")
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
             "--storage.tsdb.retention.time=1d"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if get(self.url + "/-/ready", timeout=1)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        if fail:
            pytest.fail(f"Prometheus did not start:\n{self.output()}", pytrace=False)
        return False

    def output(self) -> str:
        return (self.dir / "prometheus.log").read_text(errors="replace")

    def query(self, expression: str, at: float | None = None) -> list:
        """The result of an instant query (`/api/v1/query`)."""
        parameters = {"query": expression}
        if at is not None:
            parameters["time"] = f"{at:.3f}"
        status, _, body = get(self.url + "/api/v1/query?" + urllib.parse.urlencode(parameters))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        return answer["data"]["result"]


class VictoriaMetrics(Server):
    """`victoria-metrics` (Debian's package) on 127.0.0.1:<free port>, its data in a temporary
    directory; restartable on the same port and data, for outages."""

    def __init__(self):
        binary = shutil.which("victoria-metrics")
        if binary is None:
            pytest.fail("VictoriaMetrics is not installed (apt-get install victoria-metrics); .ci/run installs it", pytrace=False)
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="boxcar-vm-"))
        self.process = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        self.log = open(self.dir / "victoria-metrics.log", "ab")
        self.process = subprocess.Popen(
            [self.binary, f"-storageDataPath={self.dir / 'data'}", f"-httpListenAddr=127.0.0.1:{self.port}",
             "-retentionPeriod=100y", "-search.latencyOffset=0s"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if get(self.url + "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"VictoriaMetrics did not start:\n{self.output()}", pytrace=False)

    def output(self) -> str:
        return (self.dir / "victoria-metrics.log").read_text(errors="replace")

    def export(self, selector: str) -> list[dict]:
        """Every raw sample of the matching series (`/api/v1/export`), duplicates included."""
        status, _, body = get(self.url + "/api/v1/export?" + urllib.parse.urlencode({"match[]": selector}))
        assert status == 200, body
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


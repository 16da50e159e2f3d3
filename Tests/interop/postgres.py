"""A private PostgreSQL for the collector's tests, and the collector process itself.

The cluster is Debian's `postgresql` package's server, run by `initdb` into a temporary directory
and `pg_ctl` on a free loopback port; it refuses to run as root, so as root it runs as the
package's `postgres` user. Each test gets a database of its own. A missing server fails the
tests: `.ci/run` installs it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc

# As the agent's (conftest.py, which imports this module for its fixtures).
STARTUP_TIMEOUT_S = 20
SHUTDOWN_TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Polls `condition` until it returns something true; fails the test naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})", pytrace=False)


class PostgresCluster:
    """initdb + pg_ctl in a temporary directory, on 127.0.0.1:<free port>, trust auth for `boxcar`."""

    def __init__(self):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
        if not versions:
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it", pytrace=False)
        self.bin = Path(versions[-1]).parent
        self.as_other = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = Path(tempfile.mkdtemp(prefix="boxcar-pg-"))
        if self.as_other:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        self._run("initdb", "-D", str(self.data), "-U", "boxcar", "--auth=trust", "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_other, str(self.bin / tool), *args], capture_output=True, text=True, check=check, cwd=self.dir)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def start_if_stopped(self) -> None:
        if self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode != 0:
            self.start()

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "boxcar", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"psql failed: {result.stderr}")
        return result.stdout.strip()

    def url(self, database: str) -> str:
        return f"postgres://boxcar@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Database:
    """One test's database in the shared cluster."""

    def __init__(self, cluster: PostgresCluster):
        self.cluster = cluster
        self.name = "t_" + uuid.uuid4().hex[:12]
        cluster.psql("postgres", f"CREATE DATABASE {self.name}")
        self.url = cluster.url(self.name)

    def sql(self, query: str) -> str:
        return self.cluster.psql(self.name, query)

    def scalar(self, query: str) -> int:
        return int(self.sql(query) or 0)


class Collector:
    """`boxcar collector` on a unix socket (and TCP when asked), restartable. Every one started is
    killed at the end of its test at the latest (a failed test must not leave one running)."""

    started: list = []

    def __init__(self, directory: Path, database: Database, *args: str, name: str = "collector"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.socket = directory / f"{name}.sock"
        self.artifacts = directory / f"{name}-artifacts"
        self.args = list(args)
        self.name = name
        self.process: subprocess.Popen | None = None
        self._starts = 0

    @property
    def target(self) -> str:
        return f"unix://{self.socket}"

    def start(self, wait: bool = True) -> None:
        self._starts += 1
        self.log = self.dir / f"{self.name}-{self._starts}.log"
        with open(self.log, "wb") as log:
            from conftest import agent_binary
            self.process = subprocess.Popen(
                [str(agent_binary()), "collector", "--postgres", self.database.url, "--socket", str(self.socket),
                 "--artifacts", str(self.artifacts), *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        Collector.started.append(self.process)
        if wait:
            self.wait_until_listening()

    def wait_until_listening(self) -> None:
        def listening():
            if self.process.poll() is not None:
                pytest.fail(f"the collector exited with {self.process.returncode}:\n{self.output()}", pytrace=False)
            return "boxcar collector listening" in self.output()
        wait_for(listening, STARTUP_TIMEOUT_S * 3, "the collector to listen")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"the collector ignored SIGTERM:\n{self.output()}")
        assert code == 0, f"the collector exited with {code} on SIGTERM:\n{self.output()}"

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def upstreams(agent) -> list:
    """The agent's Health, per upstream."""
    stub = agent_pb2_grpc.AgentStub(agent.channel)
    return list(stub.Health(agent_pb2.HealthRequest(), timeout=5).upstreams)


def wait_until_forwarded(agent, timeout: float = 60) -> int:
    """Waits until the upstream acknowledged everything the agent had committed when asked;
    returns that seq."""
    stub = agent_pb2_grpc.AgentStub(agent.channel)
    last = stub.Health(agent_pb2.HealthRequest(), timeout=5).last_sequence

    def acknowledged():
        health = stub.Health(agent_pb2.HealthRequest(), timeout=5)
        return health.upstreams and health.upstreams[0].acknowledged_seq >= last
    wait_for(acknowledged, timeout, f"the upstream to acknowledge seq {last}", interval=0.1)
    return last


@pytest.fixture(scope="session")
def postgres_cluster():
    cluster = PostgresCluster()
    yield cluster
    kill_collectors()
    cluster.close()


def kill_collectors() -> None:
    for process in Collector.started:
        if process.poll() is None:
            process.kill()
            process.wait()
    Collector.started.clear()


@pytest.fixture
def database(postgres_cluster):
    """A database of its own; the collectors the test started are gone after it."""
    yield Database(postgres_cluster)
    kill_collectors()

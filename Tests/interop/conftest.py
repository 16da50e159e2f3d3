"""Fixtures for the cross-language tests: a real Boxcar agent on a unix socket in a temp dir.

The agent binary is $BOXCAR_BIN, or .build/debug/boxcar under the repository root (found from
this file's location). A missing binary fails the tests; it never skips them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "Clients" / "python"))

from boxcar._proto.modelbox import modelbox_pb2, modelbox_pb2_grpc  # noqa: E402

STARTUP_TIMEOUT_S = 20
SHUTDOWN_TIMEOUT_S = 20
# sockaddr_un.sun_path is 104 bytes on macOS, 108 on Linux (terminating NUL included).
MAX_SOCKET_PATH = 100


def agent_binary() -> Path:
    configured = os.environ.get("BOXCAR_BIN")
    path = Path(configured) if configured else REPO_ROOT / ".build" / "debug" / "boxcar"
    if not path.is_file() or not os.access(path, os.X_OK):
        source = "$BOXCAR_BIN" if configured else "the default location"
        pytest.fail(
            f"boxcar agent binary not found at {path} ({source}); build it with `swift build` "
            "or point BOXCAR_BIN at it",
            pytrace=False,
        )
    return path


class Agent:
    """One agent process on a fixed database and socket, restartable on the same files."""

    def __init__(self, binary: Path, directory: Path, socket_path: Path):
        self.binary = binary
        self.dir = directory
        self.db = directory / "boxcar.db"
        self.artifacts = directory / "artifacts"
        self.socket = socket_path
        self.target = f"unix://{socket_path}"
        self.process: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.stub: modelbox_pb2_grpc.ModelStoreStub | None = None
        self._starts = 0
        self.extra_args: list = []
        self.prefix: list = []  # a command the agent runs under (e.g. another host name)

    def start(self) -> None:
        self._starts += 1
        self.log = self.dir / f"agent-{self._starts}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, str(self.binary), "agent", "--db", str(self.db), "--socket", str(self.socket), *self.extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_error = "the socket never appeared"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"agent exited with {self.process.returncode} before serving:\n{self.output()}",
                    pytrace=False,
                )
            # Connect only once the socket exists: a failed connect puts the channel into
            # reconnect backoff, which would slow every start by a second.
            if self.socket.exists():
                if self.channel is None:
                    self.channel = grpc.insecure_channel(self.target)
                    self.stub = modelbox_pb2_grpc.ModelStoreStub(self.channel)
                try:
                    self.stub.GetClusterMembers(modelbox_pb2.GetClusterMembersRequest(), timeout=1)
                    return
                except grpc.RpcError as error:
                    last_error = error
            time.sleep(0.02)
        self.process.kill()
        self.process.wait()
        pytest.fail(
            f"agent did not answer GetClusterMembers on {self.target} within {STARTUP_TIMEOUT_S} s "
            f"(last error: {last_error}):\n{self.output()}",
            pytrace=False,
        )

    def _close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def stop(self) -> None:
        """SIGTERM the agent; it must exit 0 and remove its socket."""
        self._close_channel()
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"agent ignored SIGTERM for {SHUTDOWN_TIMEOUT_S} s:\n{self.output()}")
        assert code == 0, f"agent exited with {code} on SIGTERM:\n{self.output()}"
        assert not self.socket.exists(), f"agent left its socket {self.socket} behind"

    def kill(self) -> None:
        """SIGKILL the agent, as a crash would: its socket file stays behind."""
        self._close_channel()
        process, self.process = self.process, None
        process.kill()
        process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def ready_channel(target: str) -> grpc.Channel:
    """A channel to `target` once it connects. The agent binds its TCP listener beside its unix
    socket, not before it: a test that waited for the socket must still wait for the port (a call
    made first can find it refused, and gRPC does not retry that)."""
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        channel.close()
        pytest.fail(f"nothing accepted connections on {target} within {STARTUP_TIMEOUT_S} s", pytrace=False)
    return channel


@contextlib.contextmanager
def running_agent(directory: Path, *args: str, socket_path: Path | None = None) -> Iterator[Agent]:
    """An agent on the database in `directory`, with these extra arguments, stopped (and checked)
    on exit. Its socket is `socket_path`, else agent.sock beside the database; a path too long for
    a socket address keeps its last two parts under a short temporary directory."""
    socket_path = socket_path or directory / "agent.sock"
    short_dir = None
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        short_dir = Path(tempfile.mkdtemp(prefix="bx-"))
        socket_path = short_dir / socket_path.parent.name / socket_path.name
    running = Agent(agent_binary(), directory, socket_path)
    running.extra_args = list(args)
    running.start()
    try:
        yield running
    finally:
        try:
            running.stop()
        finally:
            if short_dir is not None:
                shutil.rmtree(short_dir, ignore_errors=True)


def wait_for_tree_series(experiment, timeout: float = 30) -> str:
    """The key of this process's tree series (`system/process.count{process.pid=…}`), once the
    sampler has stored a tick of it under the run this process is attached to."""
    key = f'system/process.count{{process.pid="{os.getpid()}"}}'
    deadline = time.monotonic() + timeout
    while key not in experiment.metrics():
        if time.monotonic() > deadline:
            pytest.fail(f"no tick of {key} under the run within {timeout} s", pytrace=False)
        time.sleep(0.2)
    return key


@pytest.fixture
def agent(tmp_path: Path):
    """A running agent in tmp_path; stopped (and checked) at the end of the test."""
    with running_agent(tmp_path) as running:
        yield running


@pytest.fixture
def stub(agent: Agent) -> modelbox_pb2_grpc.ModelStoreStub:
    return agent.stub


# PostgreSQL and the collector (postgres.py): its fixtures, for the forwarding tests.
from postgres import database, postgres_cluster  # noqa: E402,F401


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs for the database and the artifacts (the tests run as root, as CI does)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    assert result.returncode == 0, f"the full-disk test mounts a tmpfs and needs root: {result.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)

"""Who may reach the agent: the socket's permissions, symbolic links, TCP beyond loopback only
with --allow-remote and a bearer token."""

from __future__ import annotations

import grp
import os
import pwd
import socket as sockets
import stat
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from conftest import REPO_ROOT, agent_binary, ready_channel, running_agent
from boxcar import Boxcar, BoxcarError
from boxcar._proto.modelbox import modelbox_pb2 as mb
from boxcar._proto.modelbox import modelbox_pb2_grpc


def run_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(agent_binary()), "agent", "--sample-interval", "0", *args],
                          capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settled_mode(path: Path) -> int:
    """The socket's mode once the agent has set it: it does so just after it starts listening."""
    for _ in range(100):
        if stat.S_IMODE(path.stat().st_mode) == 0o660:
            break
        time.sleep(0.02)
    return stat.S_IMODE(path.stat().st_mode)


def test_the_socket_is_0660_in_a_0700_directory(agent):
    assert settled_mode(agent.socket) == 0o660
    assert stat.S_IMODE(agent.socket.parent.stat().st_mode) == 0o700


def test_a_socket_group_gets_a_0750_directory_and_the_socket(tmp_path):
    group = grp.getgrnam("daemon")
    (tmp_path / "run").mkdir(mode=0o700)  # as an earlier run without the group left it
    with running_agent(tmp_path, "--socket-group", "daemon", socket_path=tmp_path / "run" / "agent.sock") as agent:
        assert settled_mode(agent.socket) == 0o660
        socket_info = agent.socket.stat()
        directory_info = agent.socket.parent.stat()
        assert socket_info.st_gid == group.gr_gid
        assert (stat.S_IMODE(directory_info.st_mode), directory_info.st_gid) == (0o750, group.gr_gid)


@pytest.mark.parametrize("mode", [0o1777, 0o755], ids=["shared-sticky-like-tmp", "open-like-run"])
def test_a_socket_group_never_changes_a_directory_that_is_not_the_agents_own(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    result = run_agent("--db", str(tmp_path / "b.db"), "--socket", str(shared / "agent.sock"), "--socket-group", "daemon")
    assert result.returncode != 0
    assert "not the agent's own" in result.stderr and f"--socket {shared}/boxcar/agent.sock" in result.stderr, result.stderr
    info = shared.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (mode, os.getgid())


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root; CI runs as root")
def test_a_squatted_socket_directory_names_its_owner_and_the_way_out(tmp_path):
    squatter = pwd.getpwnam("nobody")
    squatted = tmp_path / "squatted"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, squatter.pw_uid, squatter.pw_gid)
    result = run_agent("--db", str(tmp_path / "b.db"), "--socket", str(squatted / "agent.sock"))
    assert result.returncode != 0
    assert f"belongs to user nobody (uid {squatter.pw_uid})" in result.stderr, result.stderr
    assert "XDG_RUNTIME_DIR" in result.stderr and "--socket" in result.stderr
    assert not (squatted / "agent.sock").exists()

    # Whatever listens there, the CLI and the SDK do not hand it a run: the squatter's listener
    # below (made as root here, then given to nobody) is never connected to.
    listener = sockets.socket(sockets.AF_UNIX)
    listener.bind(str(squatted / "agent.sock"))
    listener.listen()
    listener.setblocking(False)
    os.chown(squatted / "agent.sock", squatter.pw_uid, squatter.pw_gid)
    try:
        cli = subprocess.run([str(agent_binary()), "experiments", "--socket", str(squatted / "agent.sock")],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode != 0
        assert f"belongs to user nobody (uid {squatter.pw_uid})" in cli.stderr and "BOXCAR_AGENT_USER" in cli.stderr, cli.stderr
        with Boxcar(str(squatted / "agent.sock"), timeout=2) as mbox:
            with pytest.raises(BoxcarError) as refused:
                mbox.experiments()
        assert refused.value.code == "PERMISSION_DENIED"
        assert f"belongs to user nobody (uid {squatter.pw_uid})" in str(refused.value)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody came
        # Named as the agent's user, the same socket is trusted (and the listener reached).
        environment = {**os.environ, "BOXCAR_AGENT_USER": "nobody"}
        trusted = subprocess.Popen([str(agent_binary()), "experiments", "--socket", str(squatted / "agent.sock")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
        try:
            listener.settimeout(60)
            connection, _ = listener.accept()  # it came
            connection.close()
        finally:
            trusted.kill()
            trusted.wait()
    finally:
        listener.close()


def test_a_socket_in_a_directory_others_may_write_to_is_refused_by_the_cli_and_the_sdk(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    listener = sockets.socket(sockets.AF_UNIX)
    listener.bind(str(shared / "agent.sock"))
    listener.listen()
    listener.setblocking(False)
    try:
        cli = subprocess.run([str(agent_binary()), "experiments", "--socket", str(shared / "agent.sock")],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode != 0 and "other users may write to its directory" in cli.stderr, cli.stderr
        with Boxcar(str(shared / "agent.sock"), timeout=2) as mbox:
            with pytest.raises(BoxcarError) as refused:
                mbox.experiments()
        assert "other users may write to its directory" in str(refused.value)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_what_the_agent_creates_is_its_users_alone(tmp_path):
    data = tmp_path / "data" / "boxcar"  # made by the agent
    with running_agent(tmp_path, "--db", str(data / "boxcar.db")) as agent:
        experiment = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="private", namespace="s")).experiment_id
        agent.stub.UploadFile(iter([
            mb.UploadFileRequest(metadata=mb.FileMetadata(parent_id=experiment, path="weights.bin")),
            mb.UploadFileRequest(chunks=os.urandom(1000)),
        ]), timeout=30)
        made = [data, *data.rglob("*")]
        assert {path.name for path in made} >= {"boxcar", "boxcar.db", "boxcar.db-wal", "boxcar.db-shm", "artifacts", "blobs"}
        opened = {str(path): oct(stat.S_IMODE(path.stat().st_mode)) for path in made
                  if stat.S_IMODE(path.stat().st_mode) & 0o077}
        assert not opened, f"open to other users: {opened}"
    assert "open to other users" not in agent.output()


def test_data_left_open_to_others_is_warned_about(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # as an earlier version, or a hand, left it
    with running_agent(tmp_path, "--db", str(data / "boxcar.db")) as agent:
        pass
    assert f"{data} is open to other users of this machine (mode 755)" in agent.output(), agent.output()
    assert f"chmod go-rwx {data}" in agent.output()
    assert stat.S_IMODE(data.stat().st_mode) == 0o755  # said, not changed
    assert stat.S_IMODE((data / "boxcar.db").stat().st_mode) == 0o600


def test_a_symlinked_socket_path_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    (run / "agent.sock").symlink_to(target)
    result = run_agent("--db", str(tmp_path / "b.db"), "--socket", str(run / "agent.sock"))
    assert result.returncode != 0
    assert "symbolic link" in result.stderr, result.stderr
    assert not target.exists()


def test_a_symlinked_socket_directory_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    result = run_agent("--db", str(tmp_path / "b.db"), "--socket", str(tmp_path / "link" / "agent.sock"))
    assert result.returncode != 0
    assert "symbolic link" in result.stderr, result.stderr


def test_tcp_beyond_loopback_needs_allow_remote_and_a_token(tmp_path):
    common = ["--db", str(tmp_path / "b.db"), "--socket", str(tmp_path / "run" / "a.sock")]
    refused = run_agent(*common, "--listen", f"0.0.0.0:{free_port()}")
    assert refused.returncode != 0 and "--allow-remote" in refused.stderr, refused.stderr
    no_token = run_agent(*common, "--listen", f"0.0.0.0:{free_port()}", "--allow-remote")
    assert no_token.returncode != 0 and "--token-file" in no_token.stderr, no_token.stderr
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o644)
    readable = run_agent(*common, "--listen", f"0.0.0.0:{free_port()}", "--allow-remote", "--token-file", str(token_file))
    assert readable.returncode != 0 and "chmod 600" in readable.stderr, readable.stderr


def test_a_remote_listener_answers_only_calls_with_the_token(tmp_path):
    token = "s3cret-token-" + os.urandom(8).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    with running_agent(tmp_path, "--listen", f"0.0.0.0:{port}", "--allow-remote", "--token-file", str(token_file),
                       socket_path=tmp_path / "run" / "agent.sock") as agent:
        request = mb.CreateExperimentRequest(name="remote", namespace="s")
        with ready_channel(f"127.0.0.1:{port}") as channel:
            stub = modelbox_pb2_grpc.ModelStoreStub(channel)
            for metadata in [None, [("authorization", "Bearer wrong")], [("authorization", token)],
                             [("authorization", f"Basic {token}")], [("authorization", f"Bearer{token}")]]:
                with pytest.raises(grpc.RpcError) as refused:
                    stub.CreateExperiment(request, metadata=metadata, timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # The scheme is case-insensitive (RFC 9110), and may be followed by more than one space.
            for scheme in ["bearer ", "BEARER  "]:
                stub.CreateExperiment(request, metadata=[("authorization", scheme + token)], timeout=10)
            created = stub.CreateExperiment(request, metadata=[("authorization", f"Bearer {token}")], timeout=10)
        # The SDK sends it too; the unix socket needs none (its permissions guard it).
        with Boxcar(f"127.0.0.1:{port}", token=token) as mbox:
            assert mbox.experiment(created.experiment_id).name == "remote"
        with Boxcar(f"127.0.0.1:{port}", timeout=2) as mbox:
            with pytest.raises(BoxcarError) as unauthenticated:
                mbox.experiment(created.experiment_id)
            assert unauthenticated.value.code == "UNAUTHENTICATED"
        assert agent.stub.GetExperiment(mb.GetExperimentRequest(id=created.experiment_id), timeout=10).experiment.name == "remote"
    assert token not in agent.output()  # never logged


def test_the_systemd_unit_verifies_and_is_hardened(tmp_path):
    unit = (REPO_ROOT / "Config" / "boxcar.service").read_text()
    # systemd-analyze checks the file as systemd would load it (the binary must exist).
    local = tmp_path / "boxcar.service"
    local.write_text(unit.replace("/usr/local/bin/boxcar", str(agent_binary())))
    result = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    directives = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
                  if "=" in line and not line.startswith("#")}
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ReadWritePaths": "/var/lib/boxcar /run/boxcar", "CapabilityBoundingSet": "",
                       "RestrictSUIDSGID": "yes", "KillSignal": "SIGTERM"}.items():
        assert directives.get(key) == value, key
    assert "--socket-group boxcar" in directives["ExecStart"]


def test_the_kubernetes_sidecar_shares_the_socket_and_the_process_namespace():
    import yaml

    pod = yaml.safe_load((REPO_ROOT / "Config" / "kubernetes" / "sidecar.yaml").read_text())
    spec = pod["spec"]
    assert spec["shareProcessNamespace"] is True
    containers = {container["name"]: container for container in spec["containers"]}
    agent, trainer = containers["boxcar"], containers["trainer"]
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    assert agent["securityContext"]["allowPrivilegeEscalation"] is False
    socket_flag = next(arg for arg in agent["command"] if arg.startswith("--socket="))
    socket_path = socket_flag.split("=", 1)[1]
    assert {"name": "BOXCAR_SOCKET", "value": socket_path} in trainer["env"]
    mounts = {name: {m["name"]: m["mountPath"] for m in containers[name]["volumeMounts"]} for name in containers}
    assert mounts["boxcar"]["boxcar-socket"] == mounts["trainer"]["boxcar-socket"]
    assert socket_path.startswith(mounts["boxcar"]["boxcar-socket"] + "/")
    # Every path the agent writes is a volume, as a read-only root needs.
    db = next(arg for arg in agent["command"] if arg.startswith("--db=")).split("=", 1)[1]
    assert any(db.startswith(path + "/") for path in mounts["boxcar"].values())

"""The `boxcar` command as a person or a script uses it: the read commands over the socket and
from the database file, export, errors, and how `boxcar agent` resolves its settings."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import agent_binary, ready_channel, wait_for_tree_series
from boxcar._proto.modelbox import modelbox_pb2 as mb


def boxcar(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(agent_binary()), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


def seed(stub) -> str:
    """An experiment with two keys, a string value, two events and a tracked file."""
    experiment_id = stub.CreateExperiment(
        mb.CreateExperimentRequest(name="cli-run", namespace="cli", owner="ada")
    ).experiment_id
    for step, loss in [(1, 0.75), (2, 0.5)]:
        stub.LogMetrics(mb.LogMetricsRequest(
            parent_id=experiment_id, key="loss",
            value=mb.MetricsValue(step=step, wallclock_time=1_700_000_000 + step, f_val=loss)))
    stub.LogMetrics(mb.LogMetricsRequest(
        parent_id=experiment_id, key="note",
        value=mb.MetricsValue(step=1, wallclock_time=1_700_000_001, s_tensor='said "hi", twice')))
    for name in ["start", "end"]:
        stub.LogEvent(mb.LogEventRequest(parent_id=experiment_id, event=mb.Event(name=name)))
    stub.TrackArtifacts(mb.TrackArtifactsRequest(files=[
        mb.FileMetadata(parent_id=experiment_id, path="/data/train.csv", checksum="abc")]))
    return experiment_id


def test_reads_over_the_socket_and_from_the_database_agree(agent):
    experiment_id = seed(agent.stub)
    via_socket = ["--socket", str(agent.socket)]
    via_db = ["--db", str(agent.db)]  # read-only, while the agent runs
    for source in (via_socket, via_db):
        experiments = json.loads(boxcar("experiments", "--json", *source).stdout)
        assert [(e["id"], e["name"], e["namespace"], e["owner"]) for e in experiments] == [
            (experiment_id, "cli-run", "cli", "ada")]

        points = json.loads(boxcar("metrics", experiment_id, "--key", "loss", "--json", *source).stdout)
        assert [(p["step"], p["wallclock"], p["value"], p["type"]) for p in points] == [
            (1, 1_700_000_001, 0.75, "float"), (2, 1_700_000_002, 0.5, "float")]

        events = json.loads(boxcar("events", experiment_id, "--json", *source).stdout)
        assert [e["name"] for e in events] == ["start", "end"]

        files = json.loads(boxcar("artifacts", experiment_id, "--json", *source).stdout)
        assert [(f["path"], f["checksum"], f["uploaded"]) for f in files] == [
            ("/data/train.csv", "abc", False)]


def test_tables_for_people_are_aligned(agent):
    experiment_id = seed(agent.stub)
    result = boxcar("metrics", experiment_id, "--socket", str(agent.socket))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KEY", "STEP", "WALLCLOCK", "VALUE"]
    assert len(lines) == 4
    # Every column starts at the same offset on every line.
    value_column = lines[0].index("VALUE")
    assert all(line[value_column - 2:value_column] == "  " for line in lines)
    assert lines[1].split()[:4] == ["loss", "1", "1700000001", "0.75"]


def test_export_csv_and_jsonl(agent, tmp_path: Path):
    experiment_id = seed(agent.stub)
    out = tmp_path / "run.csv"
    result = boxcar("export", experiment_id, "--format", "csv", "--output", str(out), "--socket", str(agent.socket))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["key"], r["step"], r["type"], r["value"]) for r in rows] == [
        ("loss", "1", "float", "0.75"), ("loss", "2", "float", "0.5"),
        ("note", "1", "string", 'said "hi", twice')]

    result = boxcar("export", experiment_id, "--format", "jsonl", "--db", str(agent.db))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["key"], p["step"], p["value"]) for p in lines] == [
        ("loss", 1, 0.75), ("loss", 2, 0.5), ("note", 1, 'said "hi", twice')]


def test_unknown_ids_and_a_missing_agent_are_clear_errors(agent, tmp_path: Path):
    result = boxcar("metrics", "no-such-id", "--socket", str(agent.socket))
    assert result.returncode != 0
    assert "no-such-id" in result.stderr

    result = boxcar("events", "no-such-id", "--db", str(agent.db))
    assert result.returncode != 0
    assert "no-such-id" in result.stderr

    result = boxcar("experiments", "--socket", str(tmp_path / "nobody.sock"))
    assert result.returncode != 0
    assert "no agent answers" in result.stderr

    result = boxcar("experiments", "--db", str(tmp_path / "missing.db"))
    assert result.returncode != 0
    assert "missing.db" in result.stderr


def wait_for_socket(process: subprocess.Popen, *candidates: Path) -> Path:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for path in candidates:
            if path.exists():
                return path
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.02)
    raise AssertionError("the agent never created a socket")


def run_agent_until_socket(args: list[str], env: dict, *candidates: Path) -> Path:
    process = subprocess.Popen(
        [str(agent_binary()), "agent", *args], env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return wait_for_socket(process, *candidates)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_settings_come_from_flag_then_environment_then_file(tmp_path: Path):
    from_file, from_env, from_flag = (tmp_path / n for n in ("file.sock", "env.sock", "flag.sock"))
    config = tmp_path / "boxcar.yaml"
    config.write_text(f"db: {tmp_path / 'file.db'}\nsocket: {from_file}\n")
    sockets = (from_file, from_env, from_flag)

    assert run_agent_until_socket(["--config", str(config)], {}, *sockets) == from_file
    assert (tmp_path / "file.db").exists()
    assert run_agent_until_socket(
        ["--config", str(config)], {"BOXCAR_SOCKET": str(from_env)}, *sockets) == from_env
    assert run_agent_until_socket(
        ["--config", str(config), "--socket", str(from_flag)], {"BOXCAR_SOCKET": str(from_env)},
        *sockets) == from_flag


def test_bad_settings_are_refused_with_a_message(tmp_path: Path):
    result = boxcar("agent", "--db", str(tmp_path / "x.db"), "--socket", str(tmp_path / "a.sock"),
                    "--durability", "sometimes")
    assert result.returncode != 0
    assert "durability must be normal or full" in result.stderr

    result = boxcar("agent", "--db", str(tmp_path / "x.db"), "--socket", str(tmp_path / "a.sock"),
                    "--listen", "localhost")
    assert result.returncode != 0
    assert "HOST:PORT" in result.stderr


def test_a_second_agent_on_the_same_socket_is_refused(agent):
    result = boxcar("agent", "--db", str(agent.dir / "second.db"), "--socket", str(agent.socket))
    assert result.returncode != 0
    assert "already listening" in result.stderr


def test_listen_serves_the_same_api_on_tcp(tmp_path: Path):
    import socket as sockets

    from boxcar._proto.modelbox import modelbox_pb2_grpc

    with sockets.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unix_socket = tmp_path / "a.sock"
    process = subprocess.Popen(
        [str(agent_binary()), "agent", "--db", str(tmp_path / "x.db"), "--socket", str(unix_socket),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(process, unix_socket)
        with ready_channel(f"127.0.0.1:{port}") as channel:
            stub = modelbox_pb2_grpc.ModelStoreStub(channel)
            created = stub.CreateExperiment(mb.CreateExperimentRequest(name="tcp", namespace="n"), timeout=10)
        result = boxcar("experiments", "--json", "--socket", str(unix_socket))
        assert [e["id"] for e in json.loads(result.stdout)] == [created.experiment_id]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_doctor_says_what_works_and_why_not(tmp_path: Path):
    import shutil

    fake = agent_binary().parent / "libFakeNVML.so"
    assert fake.exists(), f"the fake NVML library is built beside the agent: {fake}"
    library = tmp_path / "libnvidia-ml.so.1"
    shutil.copy(fake, library)
    (tmp_path / "libnvidia-ml.so.1.script").write_text("gpus 2\n1 fan unsupported\n")
    result = boxcar("doctor", "--json", "--nvml-library", str(library), "--pid", str(os.getpid()))
    assert result.returncode == 0, result.stderr
    findings = {f["sensor"]: f for f in json.loads(result.stdout)}
    assert findings["cpu"]["works"] and findings["cpu"]["series"] > 0
    assert findings["memory"]["works"]
    assert findings["nvidia"]["works"]
    assert "2 GPU(s)" in findings["nvidia"]["detail"]
    assert "GPU 1 lacks fan" in findings["nvidia"]["detail"]
    assert findings[f"process {os.getpid()}"]["works"]

    missing = boxcar("doctor", "--json", "--nvml-library", str(tmp_path / "nope.so"))
    nvidia = next(f for f in json.loads(missing.stdout) if f["sensor"] == "nvidia")
    assert not nvidia["works"]
    assert "no NVML library" in nvidia["detail"]


def test_doctor_names_each_amd_gpu():
    sys_root = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "sys-amd"
    result = boxcar("doctor", "--json", "--sys-root", str(sys_root))
    assert result.returncode == 0, result.stderr
    amd = next(f for f in json.loads(result.stdout) if f["sensor"] == "amdgpu")
    assert amd["works"] and amd["detail"] == "card0: AMD Instinct MI300X (0x74a1); card1: 0x740f"


def test_doctor_says_which_sensor_gives_garbage_and_why(tmp_path: Path):
    # A /proc whose files are not what the kernel writes: the sensors reading them are named,
    # with the reason; the others are unaffected.
    proc = tmp_path / "proc"
    (proc / "pressure").mkdir(parents=True)
    (proc / "stat").write_text("this is not /proc/stat\n")
    (proc / "loadavg").write_text("0.10 0.20 0.30 1/100 4242\n")
    (proc / "meminfo").write_text("MemTotal: nan kB\nMemFree: 500 kB\nMemAvailable: 1000 kB\n")
    for resource in ["cpu", "memory", "io"]:
        (proc / "pressure" / resource).write_text("some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n")
    result = boxcar("doctor", "--json", "--proc-root", str(proc), "--db", str(tmp_path / "none.db"))
    assert result.returncode == 0, result.stderr
    findings = {f["sensor"]: f for f in json.loads(result.stdout)}
    assert not findings["cpu"]["works"] and "no cpu line" in findings["cpu"]["detail"]
    assert "cannot be stored" in findings["memory"]["detail"] and "nan" in findings["memory"]["detail"]
    # Free, buffers, cached and available: the limit and "used" (the limit less the rest) are NaN.
    assert findings["memory"]["series"] == 4
    assert findings["pressure"]["works"]
    assert "no database at" in findings["database"]["detail"]


def test_a_long_series_is_exported_page_by_page_whole_and_in_order(agent, tmp_path: Path):
    # 600,000 points (more than two pages of 250,000) with dense and sparse stretches, repeated
    # steps, and a last step past 2^63: every point comes out once, in step order, from the agent
    # and from the database alike.
    from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
    experiment_id = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="long", namespace="cli")).experiment_id
    steps = list(range(300_000)) + [300_000 + 1_000 * index for index in range(299_998)] + [5, (1 << 63) + 7]
    log = agent_pb2_grpc.AgentStub(agent.channel).Log
    for start in range(0, len(steps), 100_000):
        chunk = steps[start:start + 100_000]
        batch = agent_pb2.LogBatch(batch_id=start, series=[agent_pb2.SeriesRef(parent_id=experiment_id, key="loss")],
                                   points=agent_pb2.FloatColumns(key=[0] * len(chunk), step=chunk,
                                                                 wallclock_ns=[1] * len(chunk), value=[float(s % 97) for s in chunk]))
        list(log(iter([batch]), timeout=60))
    expected = sorted(steps)
    for source in (["--socket", str(agent.socket)], ["--db", str(agent.db)]):
        out = tmp_path / "long.csv"
        result = boxcar("export", experiment_id, "--format", "csv", "--output", str(out), *source)
        assert result.returncode == 0, result.stderr
        rows = list(csv.reader(io.StringIO(out.read_text())))[1:]
        assert [int(row[1]) for row in rows] == expected
        assert all(float(row[4]) == float(int(row[1]) % 97) for row in rows)


COMMANDS = ["agent", "collector", "experiments", "metrics", "events", "artifacts", "export", "plot", "steps", "top", "doctor"]


def test_help_is_wrapped_once_and_every_command_shows_an_example():
    """The argument parser wraps the help to the terminal: a paragraph of ours that was also
    wrapped by hand came out as lines broken twice ('over its socket' / 'while it runs' as two
    short lines). Each line of a paragraph must be as full as the next word allows."""
    width = 80
    for command in [[], *[[name] for name in COMMANDS]]:
        result = boxcar(*command, "--help", env={"COLUMNS": str(width)})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        end = next(i for i, line in enumerate(lines) if line.startswith("USAGE:"))
        overview = lines[:end]
        assert all(len(line) <= width for line in overview), [line for line in overview if len(line) > width]
        for line, following in zip(overview, overview[1:]):
            if line.strip() and following.strip() and not following.startswith(" "):
                next_word = following.split()[0]
                # The parser keeps a line under the width (79 of 80).
                assert len(line) + 1 + len(next_word) >= width, f"{command}: {line!r} broken before {next_word!r}"
        if command:
            assert f"Example: boxcar {command[0]}" in result.stdout, f"boxcar {command[0]} --help has no example"
        else:
            assert "over its socket while it runs" in " ".join(result.stdout.split())


def test_export_takes_patterns_the_machines_series_and_a_window(agent, tmp_path: Path):
    from boxcar import Boxcar
    base = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z, in ns
    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="exported", namespace="cli") as experiment:
            for step in range(10):
                experiment.log_metrics({"loss": 1.0 / (step + 1), "loss/val": 2.0, "acc": 0.5}, step=step,
                                       wallclock=base + step * 1_000_000_000)
            key = wait_for_tree_series(experiment)
            experiment.flush()
            run = experiment.id

    def rows(*args: str) -> list[list[str]]:
        result = boxcar("export", run, "--format", "csv", "--socket", str(agent.socket), *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no progress line where standard error is not a terminal
        return list(csv.reader(io.StringIO(result.stdout)))[1:]

    assert {row[0] for row in rows()} == {"acc", "loss", "loss/val"}  # the run's own
    assert {row[0] for row in rows("--key", "loss*")} == {"loss", "loss/val"}
    assert {row[0] for row in rows("--key", "l?ss", "--key", "acc")} == {"loss", "acc"}
    with_system = {row[0] for row in rows("--system")}
    assert key in with_system and {"acc", "loss", "loss/val"} < with_system
    assert {row[0] for row in rows("--system", "--key", "system/process.count*")} == {key}
    refused = boxcar("export", run, "--format", "csv", "--socket", str(agent.socket), "--key", "system/*")
    assert refused.returncode == 1 and "need --system" in refused.stderr

    # A window by time: RFC 3339, or a span back from the last point (step 9 at base + 9 s).
    window = rows("--key", "loss", "--since", "2023-11-14T22:13:23Z", "--until", "2023-11-14T22:13:25Z")
    assert [int(row[1]) for row in window] == [3, 4, 5]
    assert [int(row[1]) for row in rows("--key", "loss", "--since", "2s")] == [7, 8, 9]
    assert [int(row[1]) for row in rows("--key", "loss", "--until", "8s")] == [0, 1]
    backwards = boxcar("export", run, "--format", "csv", "--socket", str(agent.socket), "--since", "1s", "--until", "5s")
    assert backwards.returncode == 1 and "--since is after --until" in backwards.stderr


def test_a_long_export_to_a_terminal_shows_its_progress_then_clears_it(agent, tmp_path: Path):
    from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
    from terminal import Pane, wait_until
    experiment_id = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="big", namespace="cli")).experiment_id
    log = agent_pb2_grpc.AgentStub(agent.channel).Log
    points = 3_000_000
    for start in range(0, points, 200_000):
        steps = list(range(start, start + 200_000))
        batch = agent_pb2.LogBatch(batch_id=start, series=[agent_pb2.SeriesRef(parent_id=experiment_id, key="loss")],
                                   points=agent_pb2.FloatColumns(key=[0] * len(steps), step=steps,
                                                                 wallclock_ns=steps, value=[0.5] * len(steps)))
        list(log(iter([batch]), timeout=60))
    pane = Pane(tmp_path, width=100, height=10)
    try:
        pane.type(f"{agent_binary()} export {experiment_id} --format csv --output big.csv --socket {agent.socket}; echo done=$?")
        line = wait_until("the progress line", lambda: next((l for l in pane.screen() if "rows/s" in l), None), pane=pane)
        assert re.search(r"\[[#-]{20}\] series 1 of 1, [\d.]+[kM]? rows, [\d.]+[kM]? rows/s", line), line
        # "done=N" alone: the command typed, wrapped, may start a line with "done=$?".
        wait_until("the export to end", lambda: any(re.fullmatch(r"done=\d+", l) for l in pane.screen()), timeout=120, pane=pane)
        screen = pane.screen()
        assert "done=0" in screen
        assert not any("rows/s" in l for l in screen), "the progress line is cleared at the end"
    finally:
        pane.close()
    with open(tmp_path / "big.csv") as exported:
        assert sum(1 for _ in exported) == points + 1

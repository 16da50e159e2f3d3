"""A database's agent id, the key of everything it will forward upstream: made once, kept across
restarts, and made anew (and logged) when a copy of the file starts on another machine, so two
machines never ship records under one id."""
import re
import shutil
from pathlib import Path

from conftest import Agent, agent_binary

AGENT_ID = re.compile(r"\bagent_id=([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\b")


def as_machine(directory: Path, name: str) -> list:
    """Runs a command as on another machine: in UTS and mount namespaces of its own (and a user
    namespace, so that no root is needed where user namespaces are allowed), where `name` is the
    host name and a file of the test's is /etc/machine-id. The command is exec'd, so the agent
    keeps the PID the test signals."""
    machine_id = directory / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    return ["unshare", "--user", "--map-root-user", "--uts", "--mount", "sh", "-c",
            f"for f in /etc/machine-id /var/lib/dbus/machine-id; do [ ! -e $f ] || mount --bind {machine_id} $f || exit 1; done"
            f' && hostname {name} && exec "$0" "$@"']


def started(directory: Path, prefix: list = ()) -> Agent:
    agent = Agent(agent_binary(), directory, directory / "agent.sock")
    agent.prefix = list(prefix)
    agent.start()
    return agent


def agent_id(agent: Agent) -> str:
    ids = AGENT_ID.findall(agent.output())
    assert len(ids) == 1, f"the agent logs its id once at start:\n{agent.output()}"
    return ids[0]


def test_the_id_is_kept_on_its_machine_and_a_copy_elsewhere_takes_a_new_one(tmp_path: Path):
    original_dir, copy_dir = tmp_path / "a", tmp_path / "b"
    original_dir.mkdir()
    copy_dir.mkdir()

    original = started(original_dir)
    try:
        first = agent_id(original)
        original.restart()
        assert agent_id(original) == first
    finally:
        original.stop()
    for name in ("boxcar.db", "boxcar.db-wal"):
        if (original_dir / name).exists():
            shutil.copy(original_dir / name, copy_dir / name)

    copy = started(copy_dir, as_machine(tmp_path, "boxcar-copy-node"))
    try:
        second = agent_id(copy)
        assert second != first
        log = copy.output()
        assert "made on another machine" in log and f"previous_agent_id={first}" in log, log
        copy.restart()
        assert agent_id(copy) == second, "the copy keeps its new id on its own machine"
        assert "made on another machine" not in copy.output()
    finally:
        copy.stop()

    original.start()
    try:
        assert agent_id(original) == first, "the original is untouched by its copy"
    finally:
        original.stop()

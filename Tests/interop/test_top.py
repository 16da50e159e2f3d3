"""`boxcar top` as a person sees it: driven in a pane of a private tmux server (send-keys,
capture-pane) against an agent with two scripted GPUs and this test process attached as a trainer
that logs all the while. What is asserted is what is on the screen, and the terminal's state once
top is gone: its mode (`stty -g` before and after), the alternate screen left, the cursor shown."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import agent_binary, running_agent
from terminal import Pane, wait_until
from boxcar import Boxcar

SCRIPT = (
    "gpus 2\n0 utilization.gpu 87\n1 utilization.gpu 12\n"
    "0 memory.total 85899345920\n0 memory.used 42949672960\n"
    "0 power 312000\n0 power.limit 700000\n0 temperature 71\n"
    # sw_power_cap (0x4) holds GPU 0's clocks down.
    "0 clocks_event_reasons 4\n"
)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """An agent with two scripted GPUs, and this process attached to a run that logs 100 points a
    second until the module's tests are done."""
    directory = tmp_path_factory.mktemp("top")
    library = directory / "libnvidia-ml.so.1"
    shutil.copy(agent_binary().parent / "libFakeNVML.so", library)
    (directory / "libnvidia-ml.so.1.script").write_text(SCRIPT)
    with running_agent(directory, "--nvml-library", str(library)) as agent:
        with Boxcar(str(agent.socket)) as mbox:
            with mbox.new_experiment(name="resnet-top", namespace="t") as experiment:
                stop = threading.Event()

                def log():
                    step = 0
                    while not stop.is_set():
                        experiment.log_metrics({"loss": 1 / (1 + step)}, step=step)
                        step += 1
                        time.sleep(0.01)

                logger = threading.Thread(target=log, daemon=True)
                logger.start()
                try:
                    yield agent, experiment
                finally:
                    stop.set()
                    logger.join()


@pytest.fixture
def pane(tmp_path: Path):
    panes = []

    def make(**kwargs) -> Pane:
        panes.append(Pane(tmp_path, **kwargs))
        return panes[-1]

    yield make
    for made in panes:
        made.close()


def start_top(pane: Pane, agent, *args: str) -> None:
    """Runs top in the pane's shell between two readings of the terminal's mode, then says how it
    ended."""
    pane.type(f"stty -g > before; {agent_binary()} top --socket {agent.socket} {' '.join(args)}; "
              f"echo exit=$?; stty -g > after")


def frame_with_trainer(pane: Pane) -> list[str] | None:
    """The screen once top shows the trainer logging (its points a second known: two ticks)."""
    screen = pane.screen()
    trainer = [line for line in screen if "resnet-top" in line]
    if not trainer or "…" in trainer[0]:
        return None
    return screen


def top_pid(pane: Pane) -> int:
    shell = pane.state("pane_pid")
    children = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    return int(children[0])


def row(screen: list[str], label: str) -> str:
    found = [line for line in screen if line.startswith(label)]
    assert len(found) == 1, f"{label!r} on {len(found)} rows:\n" + "\n".join(screen)
    return found[0]


def test_everything_is_on_an_80x24_screen(live, pane):
    agent, experiment = live
    terminal = pane()
    start_top(terminal, agent)
    screen = wait_until("the trainer's row with its points a second", lambda: frame_with_trainer(terminal))
    text = "\n".join(screen)
    assert len(screen) == 24 and all(len(line) <= 80 for line in screen)
    assert screen[0].startswith("boxcar top")
    assert re.search(r"^CPU +\d+(\.\d)?%  user \d", row(screen, "CPU")), text
    # Two CPUs here: each labelled with its busy share.
    if os.cpu_count() <= 8:
        assert re.match(r"cores +0 +\d+(\.\d)?% +1 +\d+(\.\d)?%", row(screen, "cores")), text
    assert re.search(r"of \d+(\.\d)? GiB \(\d+(\.\d)?%\)", row(screen, "Memory")), text
    if Path("/proc/pressure/cpu").exists():
        assert re.search(r"cpu \d+(\.\d)?% +memory \d+(\.\d)?% +io \d", row(screen, "Pressure")), text
    gpus = [line for line in screen if re.match(r" +[01] +\d+%", line)]
    assert len(gpus) == 2, text
    assert re.search(r"87% +40\.0 GiB / 80\.0 GiB +312 / 700 W +71°C +sw_power_cap", gpus[0]), text
    assert re.search(r"12%", gpus[1]) and "sw_power_cap" not in gpus[1], text
    assert row(screen, "Disk") and row(screen, "Network"), text
    trainer = next(line for line in screen if "resnet-top" in line)
    # The run, the pid, its tree's CPU share, its memory, no GPU memory, its processes, points a second.
    fields = re.match(r" +resnet-top (\w{8}) +(\d+) +\d+(\.\d)?% +[\d.]+ [KMG]iB +– +\d+ +([\d.]+)(k?)$", trainer)
    assert fields and fields.group(2) == str(os.getpid()) and fields.group(1) == experiment.id[:8], trainer
    points = float(fields.group(4)) * (1000 if fields.group(5) else 1)
    assert 20 <= points <= 200, trainer  # 100 a second, give or take a loaded machine
    # Colour by default: the throttled GPU's reason in red.
    coloured = "\n".join(terminal.screen(escapes=True))
    assert "\x1b[31msw_power_cap" in coloured
    terminal.tmux("send-keys", "q")
    wait_until("top to quit", lambda: "exit=0" in terminal.screen())


@pytest.mark.parametrize("ending", ["q", "INT", "TERM", "HUP", "SEGV", "ABRT"])
def test_the_terminal_is_restored_however_top_ends(live, pane, ending):
    agent, _ = live
    terminal = pane()
    start_top(terminal, agent)
    wait_until("top's first frame", lambda: terminal.state("alternate_on") == "1" and terminal.screen()[0].startswith("boxcar top"))
    assert terminal.state("cursor_flag") == "0"
    if ending == "q":
        terminal.tmux("send-keys", "q")
        expected = 0
    else:
        number = getattr(signal, "SIG" + ending)
        os.kill(top_pid(terminal), number)
        expected = 128 + number
    # A line of "exit=N" alone: the command typed, wrapped, may also start a line with "exit=$?".
    ended = wait_until("top to end", lambda: [line for line in terminal.screen() if re.fullmatch(r"exit=\d+", line)])
    assert ended[0] == f"exit={expected}"
    wait_until("the shell's second reading of the mode", lambda: (terminal.directory / "after").exists()
               and (terminal.directory / "after").read_text())
    assert (terminal.directory / "before").read_text() == (terminal.directory / "after").read_text()
    assert terminal.state("alternate_on") == "0"
    assert terminal.state("cursor_flag") == "1"
    # The shell's own screen is back: the command line typed before top.
    assert "top --socket" in "".join(terminal.screen())


def test_ctrl_z_stops_top_with_the_terminal_restored_and_fg_brings_it_back(live, pane):
    agent, _ = live
    terminal = pane()
    start_top(terminal, agent)
    wait_until("top's first frame", lambda: terminal.state("alternate_on") == "1" and terminal.screen()[0].startswith("boxcar top"))
    terminal.tmux("send-keys", "C-z")
    # The shell goes on with its list while top is stopped: it reads the mode again.
    wait_until("the shell's prompt", lambda: (terminal.directory / "after").exists() and (terminal.directory / "after").read_text(),
               pane=terminal)
    assert (terminal.directory / "before").read_text() == (terminal.directory / "after").read_text()
    assert terminal.state("alternate_on") == "0" and terminal.state("cursor_flag") == "1"
    assert any("Stopped" in line for line in terminal.screen())
    terminal.type("fg")
    wait_until("top's view again", lambda: terminal.state("alternate_on") == "1" and terminal.screen()[0].startswith("boxcar top"),
               pane=terminal)
    terminal.tmux("send-keys", "q")
    wait_until("the shell's screen", lambda: terminal.state("alternate_on") == "0", pane=terminal)
    assert terminal.state("cursor_flag") == "1"


def test_a_resize_to_60x20_and_back_leaves_nothing_behind(live, pane):
    """Each row of a frame replaces the row there before whole. The screen is first made short
    and scrolled to its end, so that every row then changes: a longer line left under a shorter
    one (the header's scroll position, a trainer's row under the cores') would show."""
    agent, _ = live
    terminal = pane()
    start_top(terminal, agent)
    wait_until("the trainer's row", lambda: frame_with_trainer(terminal), pane=terminal)
    terminal.tmux("resize-window", "-x", "80", "-y", "8")
    wait_until("the scroll position", lambda: "1-7 of" in terminal.screen()[0], pane=terminal)
    terminal.tmux("send-keys", "G")
    wait_until("the end", lambda: any("resnet-top" in line for line in terminal.screen()), pane=terminal)

    def consistent(width: int, height: int):
        """A whole frame at this size: the header once, on top, whole; each section's label
        once, in order; the cores' row ending at its last core; rows no wider than the window;
        nothing below the trainer's row."""
        screen = terminal.screen()
        # The header as it must be, cut to the width (capture-pane drops trailing spaces).
        prefix = f"boxcar top  {socket.gethostname()}  "
        clock = screen[0][len(prefix):len(prefix) + 8] if screen else ""
        header = (prefix + clock + "  every 1 s   q quit  j/k scroll")[:width].rstrip()
        if len(screen) != height or screen[0] != header:
            return None
        labels = [line.split()[0] for line in screen[1:] if line and not line.startswith(" ")]
        expected = ["CPU", "cores", "Memory", "Pressure", "GPU", "Disk", "Network", "Trainers"]
        if not Path("/proc/pressure/cpu").exists():
            expected.remove("Pressure")
        trainer = next((i for i, line in enumerate(screen) if "resnet-top" in line), None)
        if labels != expected or trainer is None or any(screen[trainer + 1:]):
            return None
        cores = next(line for line in screen if line.startswith("cores"))
        if os.cpu_count() <= 4 and not re.fullmatch(r"cores +(\d+ +\d+(\.\d)?% *)+", cores):
            return None
        if any(len(line) > width for line in screen) or sum(line.startswith("boxcar top") for line in screen) != 1:
            return None
        return screen

    terminal.tmux("resize-window", "-x", "60", "-y", "20")
    narrow = wait_until("a whole frame at 60x20", lambda: consistent(60, 20), pane=terminal)
    # The GPU's row is cut at the window's edge, not wrapped onto the next.
    gpu = next(line for line in narrow if re.match(r" +0 +87%", line))
    assert len(gpu) <= 60 and "sw_power_cap" not in gpu
    terminal.tmux("resize-window", "-x", "80", "-y", "24")
    wide = wait_until("a whole frame at 80x24 again, the GPU's reason shown",
                      lambda: (screen := consistent(80, 24)) and any("sw_power_cap" in line for line in screen) and screen,
                      pane=terminal)
    assert sum("sw_power_cap" in line for line in wide) == 1
    terminal.tmux("send-keys", "q")
    wait_until("top to quit", lambda: "exit=0" in terminal.screen())


def test_keys_scroll_a_screen_too_short_for_everything(live, pane):
    agent, _ = live
    terminal = pane(width=80, height=8)
    start_top(terminal, agent)
    first = wait_until("the scroll position in the header", lambda: re.search(r"1-7 of (\d+)", terminal.screen()[0]))
    total = int(first.group(1))
    terminal.tmux("send-keys", "j")
    wait_until("one line down", lambda: "2-8 of" in terminal.screen()[0])
    terminal.tmux("send-keys", "Down")
    wait_until("another line down (arrow)", lambda: "3-9 of" in terminal.screen()[0])
    terminal.tmux("send-keys", "G")
    wait_until("the end", lambda: f"{total - 6}-{total} of {total}" in terminal.screen()[0]
               and any("Trainers" in line or "resnet-top" in line for line in terminal.screen()))
    terminal.tmux("send-keys", "k")
    wait_until("one line up", lambda: f"{total - 7}-{total - 1} of" in terminal.screen()[0])
    terminal.tmux("send-keys", "Up")
    terminal.tmux("send-keys", "g")
    wait_until("the top again", lambda: "1-7 of" in terminal.screen()[0] and terminal.screen()[1].startswith("CPU"))
    terminal.tmux("send-keys", "q")
    wait_until("top to quit", lambda: "exit=0" in terminal.screen())


def test_no_color_means_none(live, pane):
    agent, _ = live
    terminal = pane(env={"NO_COLOR": "1"})
    start_top(terminal, agent)
    wait_until("the trainer's row", lambda: frame_with_trainer(terminal))
    coloured = "\n".join(terminal.screen(escapes=True))
    assert "sw_power_cap" in coloured and not re.search(r"\x1b\[[0-9;]*m", coloured)
    terminal.tmux("send-keys", "q")
    wait_until("top to quit", lambda: "exit=0" in terminal.screen())


def test_without_a_terminal_one_frame_is_printed(live):
    agent, _ = live
    result = subprocess.run([str(agent_binary()), "top", "--socket", str(agent.socket)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COLUMNS": "100"}, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("boxcar top") and "\x1b" not in result.stdout
    assert all(len(line) <= 100 for line in lines)
    assert any(re.search(r"87% .*sw_power_cap", line) for line in lines), result.stdout
    trainer = next(line for line in lines if "resnet-top" in line)
    assert "…" not in trainer, trainer  # a second snapshot gave the rate


def test_no_agent_is_a_clear_error(tmp_path: Path):
    result = subprocess.run([str(agent_binary()), "top", "--socket", str(tmp_path / "none.sock")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "no agent answers on" in result.stderr and "\x1b" not in result.stderr + result.stdout

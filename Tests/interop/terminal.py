"""A terminal for the tests of what people see: a shell in a pane of a tmux server of the
test's own (send-keys to type, capture-pane to read the screen, formats for the pane's state)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

WAIT_S = 30


def wait_until(what: str, check, timeout: float = WAIT_S, pane: "Pane | None" = None):
    """Polls `check` until it returns something true; fails naming `what` (and showing the pane)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    shown = "\n".join(pane.screen()) if pane else ""
    pytest.fail(f"timed out waiting for {what}; the pane:\n{shown}")


class Pane:
    """A shell in a pane of a tmux server of the test's own, `width`×`height`."""

    def __init__(self, directory: Path, width: int = 80, height: int = 24, env: dict | None = None):
        self.socket = directory / "tmux.sock"
        self.directory = directory
        environment = {
            "PS1": "$ ", "TERM": "xterm-256color",
            # A crash's report is the runtime's to print; its prompt to debug (on a terminal) would
            # hold the pane for 30 s.
            "SWIFT_BACKTRACE": "enable=no",
            **(env or {}),
        }
        settings = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
        self.tmux("new-session", "-d", "-c", str(directory), "-x", str(width), "-y", str(height), *settings,
                  "bash --norc --noprofile")

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, f"tmux {args}: {result.stderr}"
        return result.stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-l", line)
        self.tmux("send-keys", "Enter")

    def screen(self, escapes: bool = False) -> list[str]:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else [])).split("\n")[:-1]

    def state(self, name: str) -> str:
        return self.tmux("display", "-p", "#{" + name + "}").strip()

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=10)

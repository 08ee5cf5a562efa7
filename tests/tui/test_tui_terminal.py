"""``trackops demo`` in a real terminal (tmux): type ``/``, a digit, ``enter`` and ``q``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
)


class Terminal:
    """One tmux session on a private server, 120x36."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "demo")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "demo", *keys)

    def wait_for(self, what: Callable[[str], bool], seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        while True:
            text = self.screen()
            if what(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed it; last screen:\n{text}")
            time.sleep(0.1)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(f"trackops-test-{os.getpid()}")
    yield term
    subprocess.run(["tmux", "-L", term.socket, "kill-server"], capture_output=True, timeout=10)


def test_the_demo_runs_in_a_real_terminal_and_quits_with_status_zero(
    terminal: Terminal, tmp_path: Path
) -> None:
    trackops = Path(sys.executable).with_name("trackops")
    rc, rc_tui = tmp_path / "rc", tmp_path / "rc-tui"
    exe, here = shlex.quote(str(trackops)), shlex.quote(str(tmp_path))
    # the demo, then `trackops tui` over the demo's config and store (left by the demo)
    command = (
        f"cd {here} && export TMPDIR={here} && {exe} demo --shipments 21; echo $? > rc;"
        f' {exe} --config "$(ls -d {here}/trackops-demo-*)/demo.toml" tui; echo $? > rc-tui;'
        " sleep 60"
    )
    terminal.tmux(
        "new-session", "-d", "-s", "demo", "-x", "120", "-y", "36", "-e", "TERM=xterm-256color",
        command,
    )  # fmt: skip
    # the dashboard is up with rows (whichever statuses the moving parcels show just now)
    first = terminal.wait_for(lambda s: "trackops demo" in s and "RR" in s and "shipments" in s)
    assert "Traceback" not in first
    terminal.keys("/")
    terminal.wait_for(lambda s: "search number" in s)
    terminal.keys("4")
    terminal.wait_for(lambda s: "search '4'" in s)
    terminal.keys("Enter")
    # enter kept the filter (the title says so) and closed the box (its border is gone)
    terminal.wait_for(lambda s: "search '4'" in s and "▔▔▔" not in s)
    # q quits only if enter gave the focus back to the table (in the box it would be typed)
    terminal.keys("q")
    deadline = time.monotonic() + 30
    while not rc.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rc.read_text().strip() == "0"
    after = terminal.wait_for(lambda s: "Look again with" in s)
    assert "trackops demo:" in after and "history" in after
    config = next(tmp_path.glob("trackops-demo-*/demo.toml"))
    assert config.exists() and (config.parent / "demo.db").exists()
    shown = " ".join(after.split())
    assert str(config) in shown.replace(" ", "") or config.name in shown

    # `trackops tui` on what the demo left; ctrl+c quits it with status 0 and gives the
    # terminal back (the demo's summary, printed before, is on the screen again)
    # the demo adds a parcel every 20 s, so it may have left more than 21
    terminal.wait_for(
        lambda s: "sorted by" in s and re.search(r"\b(2[1-9]|[3-9][0-9]) shipments", s) is not None
    )
    terminal.keys("C-c")
    deadline = time.monotonic() + 30
    while not rc_tui.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rc_tui.read_text().strip() == "0"
    assert "Look again with" in terminal.wait_for(lambda s: "Look again with" in s)

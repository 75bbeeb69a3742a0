"""Output conventions: human output is styled on a terminal only; never with NO_COLOR, --no-color,
TERM=dumb or --json; the words are the same either way. Terminals are real (a pty)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gateway_proc import REPO, child_env, free_port, make_home

from openclaw_cli.style import Style, colour_wanted


@pytest.mark.parametrize(
    ("tty", "env", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # the convention: set and non-empty
        (True, {"TERM": "dumb"}, False),
        (False, {"FORCE_COLOR": "1"}, True),
        (True, {"FORCE_COLOR": "0"}, False),
        (False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    ],
)
def test_colour_decision(tty: bool, env: dict[str, str], expected: bool) -> None:
    assert colour_wanted(tty, env) is expected


def test_style_is_inert_when_disabled() -> None:
    assert Style(False).heading("x") == "x" and Style(False).status("no", False) == "no"
    assert Style(True).ok("ok") == "\x1b[32mok\x1b[0m"


def _run_on_pty(home: Path, args: list[str], extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``openclaw ARGS`` with stdout on a pseudo-terminal; returns (exit code, what it printed)."""
    master, slave = pty.openpty()
    env = child_env(home)
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    env["TERM"] = "xterm-256color"
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "openclaw_cli", *args], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=slave, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_styled_on_a_terminal_only(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    args = ["gateway", "probe", "--url", f"ws://127.0.0.1:{free_port()}", "--token", "t", "--port", str(free_port())]
    code, styled = _run_on_pty(home, args)
    assert code == 1
    assert "\x1b[" in styled and "Gateway Status" in styled
    plain_words = styled
    for marker in ("\x1b[0m", "\x1b[1;38;5;208m", "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[90m"):
        plain_words = plain_words.replace(marker, "")
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        code, out = _run_on_pty(home, args, env)
        assert code == 1 and "\x1b[" not in out, env
        assert out.splitlines()[:3] == plain_words.splitlines()[:3]
    code, out = _run_on_pty(home, ["--no-color", *args])
    assert code == 1 and "\x1b[" not in out
    code, out = _run_on_pty(home, [*args, "--json"])
    assert code == 1 and "\x1b[" not in out
    assert json.loads(out)["ok"] is False
    piped = subprocess.run(
        [sys.executable, "-m", "openclaw_cli", *args], cwd=REPO, env=child_env(home) | {"TERM": "xterm"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert piped.returncode == 1 and "\x1b[" not in piped.stdout and piped.stdout.startswith("Gateway Status\n")

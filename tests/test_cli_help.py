"""Help that explains, and messages that name commands that exist (issue 9 items 7 and 8).

Every command and subcommand has a one-line description, the root flags are listed, ``openclaw
help [command…]`` works, ``openclaw health`` takes the target flags ``gateway health`` takes, and
every ``openclaw <command>`` the CLI's messages recommend resolves to a real command.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_cli.app import app

REPO = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^│ (\S+)(?: [A-Z]+)?\s{2,}(.*?)\s*│$")  # "│ --port INT   Local loopback port. │"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "openclaw_cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _panel(text: str, title: str) -> dict[str, str]:
    """``name → description`` rows of a help panel (rich box) called ``title``."""
    rows: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("╭─ "):
            inside = line.startswith(f"╭─ {title} ")
            continue
        if inside and line.startswith("╰"):
            inside = False
        elif inside and (m := ROW.match(line)):
            rows[m.group(1)] = m.group(2)
    return rows


GROUPS = [[], ["gateway"], ["daemon"], ["config"], ["secrets"], ["channels"]]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "root")
def test_every_command_has_a_description(group: list[str]) -> None:
    done = cli(*group, "--help")
    assert done.returncode == 0, done.stderr
    rows = _panel(done.stdout, "Commands")
    commands = {k: v for k, v in rows.items() if not k.startswith("-")}
    assert commands, done.stdout
    blank = sorted(k for k, v in commands.items() if not v.strip())
    assert blank == [], f"no description: {blank}\n{done.stdout}"


def test_root_help_lists_root_flags_and_exit_codes() -> None:
    done = cli("--help")
    options = _panel(done.stdout, "Root options (before the command)")
    for flag in ("--profile", "--dev", "--no-color", "--log-level"):
        assert flag in options and options[flag], done.stdout
    assert "Exit codes: 0 ok; 1 a runtime failure" in done.stdout
    assert "78 a configuration refusal" in done.stdout


def test_help_command() -> None:
    assert cli("help").stdout == cli("--help").stdout
    assert cli("help", "gateway", "run").stdout == cli("gateway", "run", "--help").stdout
    assert cli("help", "gateway", "probe").returncode == 0
    unknown = cli("help", "nosuch")
    assert unknown.returncode == 2
    assert "Unknown command: nosuch" in unknown.stderr


def test_health_takes_the_target_flags_of_gateway_health() -> None:
    own = set(_panel(cli("health", "--help").stdout, "Parameters"))
    gateway = set(_panel(cli("gateway", "health", "--help").stdout, "Parameters"))
    assert {"--url", "--port", "--token", "--password", "--timeout", "--json"} <= own
    assert {"--url", "--port", "--token", "--password", "--timeout"} <= gateway & own


# --------------------------------------------------------------------------- item 8

#: Mentions of ``openclaw <word>`` that are not command recommendations, and why.
NOT_COMMANDS = {
    "openclaw gateway lifecycle": "the audit log line's fixed prefix (runtime-cli.md §10.6)",
}
MENTION = re.compile(r"\bopenclaw((?:\s+--?[a-z][a-z-]*(?:\s+[a-z0-9_-]+)?)*?)((?:\s+[a-z][a-z-]*)+)")
ROOT_FLAGS_WITH_VALUE = {"--profile", "--log-level"}


def _messages() -> list[tuple[str, str]]:
    """(where, text) of every string the CLI and the gateway process can print: string literals
    (f-string parts too) and the command arguments of ``cli(...)``/``cli_command(...)`` calls,
    which build ``openclaw [--profile X] <command>`` at run time."""
    found: list[tuple[str, str]] = []
    for package in ("openclaw_cli", "gateway_trio"):
        for path in sorted((REPO / package).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.append((where, node.value))
                elif isinstance(node, ast.Call):
                    name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                    if name in ("cli", "cli_command") and node.args and isinstance(node.args[0], ast.Constant):
                        if isinstance(node.args[0].value, str):
                            found.append((where, f"openclaw {node.args[0].value}"))
    return found


def _takes_positionals(fn: object) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _unresolved(mention: str) -> str | None:
    words = mention.split()[1:]
    while words and words[0].startswith("-"):  # root options
        flag = words.pop(0)
        if flag in ROOT_FLAGS_WITH_VALUE and words:
            words.pop(0)
    words = words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))]  # up to a flag
    if not words:
        return None
    chain, apps, unused = app.parse_commands(words)
    if not chain:
        return f"no command {words[0]!r}"
    if unused and not _takes_positionals(apps[-1].default_command):
        return f"`openclaw {' '.join(chain)}` has no subcommand {unused[0]!r}"
    return None


def test_every_recommended_command_exists() -> None:
    mentions = 0
    bad = []
    for where, text in _messages():
        for m in MENTION.finditer(text):
            mention = f"openclaw{m.group(1)}{m.group(2)}"
            if any(mention.startswith(skip) for skip in NOT_COMMANDS):
                continue
            mentions += 1
            problem = _unresolved(mention)
            if problem:
                bad.append(f"{where}: {mention!r}: {problem}")
    assert mentions > 30, "the scan found too few mentions to be looking in the right place"
    assert bad == [], "\n".join(bad)


def test_the_scan_catches_a_missing_command() -> None:
    assert _unresolved("openclaw configure") == "no command 'configure'"
    assert _unresolved("openclaw gateway bogus") == "`openclaw gateway` has no subcommand 'bogus'"
    assert _unresolved("openclaw --dev onboard --mode local") is None
    assert _unresolved("openclaw --profile work gateway call health") is None


@pytest.mark.parametrize("command", ["install", "start", "stop", "restart", "uninstall"])
def test_service_help_names_the_install_identity_rule_and_its_override(command: str) -> None:
    for group in ("gateway", "daemon"):
        page = cli(group, command, "--help").stdout.replace("\n", " ")
        assert "OPENCLAW_SERVICE_ACCOUNT_HOME" in page, page
        assert "Service commands act only for the account's canonical install" in " ".join(page.split())


def test_lazy_commands_keep_their_own_help_page() -> None:
    """The listing line comes from the table; the command's page is still its docstring."""
    page = " ".join(cli("gateway", "install", "--help").stdout.split())
    assert "A no-op when the service is already installed and loaded, unless --force." in page
    assert "--allow-unconfigured" in page

"""A config syntax error reads as ``<path>:<line>:<col>: <problem>`` plus the offending line,
everywhere the config is read (issue 9 item 3): ``gateway run`` (exit 78), ``config validate``,
``doctor``, ``status`` and ``health`` (which used to blame missing credentials instead).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_proc import make_home, openclaw, run_cli

from gateway_trio.runtime import ConfigSyntaxError, load_config

BROKEN = '{\n  gateway: {\n    mode: "local"\n    port: 19999,\n  },\n}\n'  # missing comma after "local"


def _broken_home(tmp_path: Path) -> tuple[Path, Path]:
    home = make_home(tmp_path)
    path = home / ".openclaw" / "openclaw.json"
    path.write_text(BROKEN, encoding="utf-8")
    return home, path


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (BROKEN, 4, 5, "expected comma or '}'"),
        ('{"gateway": {"mode": "local"', 1, 29, "unclosed object (opened at line 1, column 14)"),
        ("{\n  a: [1, 2,,],\n}", 2, 12, "stray comma"),
        ("{a: 1} x", 1, 8, "extra data after the end of the config: 'x'"),
    ],
)
def test_syntax_error_says_where_and_what(tmp_path: Path, text: str, line: int, column: int, words: str) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigSyntaxError) as info:
        load_config(path)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert err.location == f"{path}:{line}:{column}: {err.problem}"
    assert words in err.problem
    assert err.exit_code == 78
    offending = text.splitlines()[line - 1]
    assert f"\n  {offending}\n  {' ' * (column - 1)}^\n" in err.message
    for noise in ("b'", "U+", "({", "None)"):
        assert noise not in err.message  # no parser reprs


def test_gateway_run_prints_the_location(tmp_path: Path) -> None:
    home, path = _broken_home(tmp_path)
    done = run_cli(home, "--allow-unconfigured")
    assert done.returncode == 78, done.stderr
    assert f"{path}:4:5: expected comma or '}}', found 'p'" in done.stderr
    assert '\n      port: 19999,\n' in done.stderr


def test_config_validate_and_doctor_print_the_location(tmp_path: Path) -> None:
    home, path = _broken_home(tmp_path)
    validate = openclaw(home, "config", "validate")
    assert validate.returncode == 1
    assert f"{path}:4:5: expected comma" in validate.stdout
    assert "    port: 19999," in validate.stdout
    doctor = openclaw(home, "doctor")
    assert f"invalid config: {path}:4:5: expected comma" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "port: 19999," in doctor.stdout


@pytest.mark.parametrize("command", [["status"], ["health"], ["gateway", "status"], ["logs"]])
def test_rpc_commands_blame_the_config_not_credentials(tmp_path: Path, command: list[str]) -> None:
    home, path = _broken_home(tmp_path)
    done = openclaw(home, *command)
    assert done.returncode == 78, done.stdout + done.stderr
    assert f"{path}:4:5: expected comma" in done.stderr
    assert "requires credentials" not in done.stdout + done.stderr

"""The ``openclaw`` command as far as it exists: help, version, the conformance passthrough."""

from __future__ import annotations

import pytest

from openclaw_cli.app import app


def test_conformance_passthrough(capsys: pytest.CaptureFixture[str]) -> None:
    rc = app(["conformance", "--core", "--only", "34"], result_action="return_value")
    assert rc == 0
    assert capsys.readouterr().out.strip().endswith("1 passed, 0 failed, 0 skipped")


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        app(["--help"])
    assert exc.value.code in (0, None)
    assert "conformance" in capsys.readouterr().out

"""Every transcript replays green against gateway_core alone, and the runner can fail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conformance.__main__ import main, skip_reason
from conformance.core_driver import CoreDriver, run_sync
from conformance.runner import Case, Interpreter, StepFailed, load_cases

CASES = load_cases()


def test_suite_is_not_empty() -> None:
    assert len(CASES) >= 80
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_passes_on_core(case: Case) -> None:
    reason = skip_reason(case, "core", None, set())
    if reason:
        pytest.skip(reason)
    run_sync(Interpreter(case, CoreDriver(auth=case.auth), {"token": "T", "password": "P"}).run())


def _case(tmp_path: Path, header: dict, steps: list[dict]) -> Case:
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [header, *steps]))
    return load_cases(tmp_path)[0]


def test_runner_reports_a_wrong_expectation(tmp_path: Path) -> None:
    case = _case(
        tmp_path,
        {"case": "m1", "title": "mutated"},
        [{"open": "a"}, {"send_raw": "{oops"}, {"expect_close": {"code": 1008, "reason": ""}}],
    )
    with pytest.raises(StepFailed, match=r"step 3: .*close.code: expected 1008, got 1000"):
        run_sync(Interpreter(case, CoreDriver(), {"token": "T"}).run())


def test_runner_reports_a_missing_frame(tmp_path: Path) -> None:
    case = _case(
        tmp_path,
        {"case": "m2", "title": "silence"},
        [{"open": "a"}, {"expect": {"type": "res"}, "within_ms": 1000}],
    )
    with pytest.raises(StepFailed, match="no frame within 1000 ms"):
        run_sync(Interpreter(case, CoreDriver(), {"token": "T"}).run())


def test_cli_core_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["--core"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert time.perf_counter() - started < 30
    last = out[-1]
    assert last.endswith("0 failed, 0 skipped") and last.split()[0] == str(len(CASES))


def test_cli_only_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list", "--only", "device"]) == 0
    listed = capsys.readouterr().out
    assert "66" in listed and "cases" in listed
    assert main(["--core", "--json", "--only", "34"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["passed"] == 1 and doc["results"][0]["case"] == "34"
    assert captured.err.strip() == "1 passed, 0 failed, 0 skipped"


def test_cli_needs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "choose a target" in capsys.readouterr().err

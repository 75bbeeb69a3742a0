"""The file log and ``logs.tail`` over it (runtime-cli.md §9.1, §9.4)."""

from __future__ import annotations

import json
from pathlib import Path

from gateway_trio.runtime import FileLog, tail


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_tail_without_cursor_reads_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    _write(log, [f"line {i}" for i in range(10)])
    out = tail(log, cursor=None, limit=3, max_bytes=250_000)
    assert out["lines"] == ["line 7", "line 8", "line 9"]
    assert out["cursor"] == out["size"] == log.stat().st_size
    assert out["truncated"] is True and "reset" not in out


def test_tail_with_cursor_returns_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    _write(log, ["a", "b"])
    first = tail(log, cursor=None, limit=500, max_bytes=250_000)
    with log.open("a") as fh:
        fh.write("c\nd\npartial")
    second = tail(log, cursor=first["cursor"], limit=500, max_bytes=250_000)
    assert second["lines"] == ["c", "d"]
    assert second["cursor"] == log.stat().st_size - len("partial")  # just after the last newline
    third = tail(log, cursor=second["cursor"], limit=500, max_bytes=250_000)
    assert third["lines"] == [] and third["cursor"] == second["cursor"]


def test_tail_cursor_past_end_resets(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    _write(log, ["a", "b"])
    out = tail(log, cursor=10_000, limit=500, max_bytes=250_000)
    assert out["reset"] is True and out["lines"] == ["a", "b"]


def test_tail_gap_over_max_bytes_reanchors(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    _write(log, [f"{i:04d}" for i in range(100)])  # 5 bytes a line
    out = tail(log, cursor=0, limit=500, max_bytes=52)
    assert out["reset"] is True and out["truncated"] is True
    assert out["skippedBytes"] == log.stat().st_size - 52
    assert out["lines"][-1] == "0099" and all(len(line) == 4 for line in out["lines"])  # partial first line dropped


def test_tail_keeps_a_first_line_that_starts_exactly_at_the_window(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    _write(log, ["aaaa", "bbbb", "cccc"])  # 15 bytes; the last 10 start at a line boundary
    out = tail(log, cursor=None, limit=500, max_bytes=10)
    assert out["lines"] == ["bbbb", "cccc"]


def test_filelog_records_are_json_and_rotate(tmp_path: Path) -> None:
    path = tmp_path / "gw.log"
    log = FileLog(path, max_file_bytes=2_000, console_enabled=False)
    for i in range(200):  # until it has rotated, then one more record for the fresh file
        log.info("gateway", f"record {i}")
        if (tmp_path / "gw.1.log").exists() and i >= 40:
            log.info("gateway", "record last")
            break
    log.close()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert "gw.1.log" in rotated and "gw.log" in rotated
    for p in tmp_path.iterdir():
        for line in p.read_text().splitlines():
            record = json.loads(line)
            assert record["_meta"]["logLevelName"] == "INFO" and record["message"].startswith("gateway record")

"""The repository records no machine paths (issue 9 item 14).

Committed files (reports, docs, generated figures) must not carry this checkout's absolute path,
the user's home, the interpreter's prefix or the shared tools' absolute path: they would be wrong
on every other machine and leak the local layout. Placeholders (``~``, ``../shared``, ``/home/u``
in fixtures) are fine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in out.decode().split("\0") if name]


def _machine_paths() -> list[str]:
    """Absolute paths that exist only on this machine (each at least two components deep)."""
    candidates = {
        str(REPO),
        str(REPO.parent / "shared"),
        str(Path.home()),
        sys.base_prefix,
        sys.prefix,
        str(Path(sys.executable).parent),
    }
    return sorted(p.rstrip("/") + "/" for p in candidates if p.count("/") >= 1 and len(p) > 4)


def test_no_machine_paths_in_tracked_files() -> None:
    needles = _machine_paths()
    offenders = []
    for path in _tracked():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files are not reports
        for needle in needles:
            if needle in text:
                line = next(n for n, ln in enumerate(text.splitlines(), 1) if needle in ln)
                offenders.append(f"{path.relative_to(REPO)}:{line}: {needle}")
    assert offenders == [], "machine paths committed:\n" + "\n".join(offenders)


def test_generated_profiles_stay_out_of_git() -> None:
    names = {str(p.relative_to(REPO)) for p in _tracked()}
    assert not {"bench/profile.svg", "bench/profile.folded"} & names

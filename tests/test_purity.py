"""The core stays sans-IO: no event loop, sockets, clocks, randomness or files (design card).

An AST scan, like trio's layering test: it fails the moment someone imports a forbidden module
under gateway_core/, or calls open()/print() there.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "gateway_core"

FORBIDDEN = {
    "trio",
    "trio_websocket",
    "hypercorn",
    "asyncio",
    "anyio",
    "socket",
    "ssl",
    "select",
    "selectors",
    "time",
    "random",
    "secrets",
    "uuid",
    "threading",
    "subprocess",
    "httpx",
    "os",
    "pathlib",
    "io",
    "logging",
    "datetime",
    "gateway_trio",
    "openclaw_cli",
    "conformance",
}
FORBIDDEN_CALLS = {"open", "print", "input"}


def _violations(root: Path = CORE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    found.append(f"{path.name}:{node.lineno} imports {name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    return found


def test_core_is_sans_io() -> None:
    assert CORE.is_dir()
    assert _violations() == []


def test_scan_would_catch_a_violation(tmp_path: Path) -> None:
    """The scan is not vacuous: the same walker flags forbidden imports and calls in a planted file."""
    (tmp_path / "bad.py").write_text("import time\nfrom trio import sleep\nfrom . import frames\nopen('x')\n")
    assert _violations(tmp_path) == ["bad.py:1 imports time", "bad.py:2 imports trio", "bad.py:4 calls open()"]

"""The CLI stands on the shared runtime, not on the server's internals (issue 11, item 5).

An AST scan like ``test_purity``: every ``openclaw_cli`` module may import from ``gateway_trio``
only the runtime (paths, profiles, settings, the lock file, the log), the RPC client, and
``run_gateway`` for ``gateway run``; and the runtime itself never imports the server above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module → the names the CLI may import from it (``None``: any).
CLI_ALLOWED: dict[str, frozenset[str] | None] = {
    "gateway_trio.runtime": None,
    "gateway_trio.client": None,
    "gateway_trio.server": frozenset({"run_gateway"}),
    # The channels CLI (issue 14) sets channel plugins up offline: their registry, their store,
    # and the owner bootstrap of the config file.
    "gateway_trio.channels": frozenset({"registry"}),
    "gateway_trio.channels.store": frozenset({"ChannelStore"}),
    "gateway_trio.channels.manager": frozenset({"bootstrap_owner_file"}),
}

#: What the runtime may lean on in the shell (besides itself): the clock, the atomic write, the
#: session store and SecretRefs; never the server, the app, sessions or the HTTP layer.
RUNTIME_ALLOWED = frozenset(
    {"gateway_trio._runtime", "gateway_trio.state", "gateway_trio.store.sessions", "gateway_trio.secrets"}
)


def _imports(path: Path, package: str) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module, names)`` of every import in ``path`` (relative ones resolved
    against ``package``; ``from pkg import sub`` is read as an import of ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = [alias.name for alias in node.names]
            if module == "gateway_trio":  # ``from gateway_trio import runtime``: submodules
                found.extend((node.lineno, f"{module}.{n}", []) for n in names)
            else:
                found.append((node.lineno, module, names))
    return found


def _package_of(path: Path, root: Path) -> str:
    """The package a module's relative imports start from (its directory, ``__init__`` or not)."""
    return ".".join(path.relative_to(root).parts[:-1])


def cli_violations(cli: Path = ROOT / "openclaw_cli", root: Path = ROOT) -> list[str]:
    """``file:line`` of every CLI import of ``gateway_trio`` outside :data:`CLI_ALLOWED`."""
    found = []
    for path in sorted(cli.rglob("*.py")):
        for line, module, names in _imports(path, _package_of(path, root)):
            if module.split(".")[0] != "gateway_trio":
                continue
            allowed = CLI_ALLOWED.get(module, frozenset())
            bad = [n for n in names or ["*module*"] if allowed is not None and n not in allowed]
            if bad:
                found.append(f"{path.relative_to(root)}:{line} imports {', '.join(bad)} from {module}")
    return found


def runtime_violations(runtime: Path = ROOT / "gateway_trio" / "runtime", root: Path = ROOT) -> list[str]:
    """``file:line`` of every runtime import of a shell module outside :data:`RUNTIME_ALLOWED`."""
    found = []
    for path in sorted(runtime.rglob("*.py")):
        for line, module, _names in _imports(path, _package_of(path, root)):
            if module.split(".")[0] != "gateway_trio" or module.startswith("gateway_trio.runtime"):
                continue
            if module not in RUNTIME_ALLOWED:
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_cli_imports_only_the_runtime_from_the_shell() -> None:
    assert (ROOT / "openclaw_cli").is_dir()
    assert cli_violations() == []


def test_runtime_does_not_import_the_server() -> None:
    assert (ROOT / "gateway_trio" / "runtime" / "__init__.py").is_file()
    assert runtime_violations() == []


def test_scan_would_catch_a_violation(tmp_path: Path) -> None:
    """The scans are not vacuous: planted imports of server internals are flagged, allowed ones not."""
    cli = tmp_path / "openclaw_cli"
    (cli / "service").mkdir(parents=True)
    (cli / "__init__.py").write_text("")
    (cli / "bad.py").write_text(
        "from gateway_trio.settings import Paths\n"
        "from gateway_trio.server import run_gateway, running_port\n"
        "import gateway_trio.filelog\n"
        "from gateway_trio import _runtime\n"
        "from gateway_trio.runtime import Paths, load_config\n"
        "from gateway_trio import runtime\n"
        "from gateway_trio.client import call_sync\n"
    )
    (cli / "service" / "__init__.py").write_text("def f():\n    from gateway_trio.force import listeners\n")
    assert cli_violations(cli, tmp_path) == [
        "openclaw_cli/bad.py:1 imports Paths from gateway_trio.settings",
        "openclaw_cli/bad.py:2 imports running_port from gateway_trio.server",
        "openclaw_cli/bad.py:3 imports *module* from gateway_trio.filelog",
        "openclaw_cli/bad.py:4 imports *module* from gateway_trio._runtime",
        "openclaw_cli/service/__init__.py:2 imports listeners from gateway_trio.force",
    ]
    runtime = tmp_path / "gateway_trio" / "runtime"
    runtime.mkdir(parents=True)
    (runtime / "__init__.py").write_text("from ..server import Control\nfrom .paths import Paths\nfrom .. import _runtime\n")
    assert runtime_violations(runtime, tmp_path) == ["gateway_trio/runtime/__init__.py:1 imports gateway_trio.server"]

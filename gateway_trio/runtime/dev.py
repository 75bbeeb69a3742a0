"""``gateway run --dev``: a dev config and workspace when missing; ``--reset`` wipes them first (§1.5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..state import atomic_write
from .paths import Paths

WORKSPACE_FILES = {
    "AGENTS.md": "# Agents\n\nThe dev gateway's default agent is `dev` (C3-PO).\n",
    "SOUL.md": "# Soul\n\nHelpful, precise, a little fussy about protocol.\n",
    "IDENTITY.md": "# Identity\n\nName: C3-PO\nTheme: protocol droid\nEmoji: 🤖\n",
    "USER.md": "# User\n\nThe developer running this dev gateway.\n",
}


def ensure_dev(paths: Paths, *, reset: bool) -> list[str]:
    """Create (or with ``reset`` recreate) the dev config and workspace; returns lines to print."""
    workspace = paths.state_dir / "workspace"
    if paths.profile != "dev":
        workspace = workspace.with_name("workspace-dev")
    if reset:
        for victim in (paths.config_path, paths.state_dir / "devices", paths.state_dir / "agents", workspace):
            if victim.is_dir():
                shutil.rmtree(victim)
            elif victim.exists():
                victim.unlink()
    workspace.mkdir(parents=True, exist_ok=True)
    for name, text in WORKSPACE_FILES.items():
        target = workspace / name
        if not target.exists():
            target.write_text(text, encoding="utf-8")
    if not paths.config_path.exists():
        config = {
            "gateway": {"mode": "local", "bind": "loopback"},
            "agents": {
                "defaults": {"workspace": str(workspace), "skipBootstrap": True},
                "entries": {
                    "dev": {
                        "default": True,
                        "workspace": str(workspace),
                        "identity": {"name": "C3-PO", "theme": "protocol droid", "emoji": "🤖"},
                    }
                },
            },
        }
        atomic_write(paths.config_path, (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode())
    return [f"Dev config ready: {_tilde(paths.config_path)}", f"Dev workspace ready: {_tilde(workspace)}"]


def _tilde(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + "/") else text

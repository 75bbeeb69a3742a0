"""The first command owner: a pairing approval that finds no owner makes the approved sender one,
written into the config file (used by the gateway's pairing flow and by ``openclaw pairing approve``)."""

from __future__ import annotations

import json
from pathlib import Path


def bootstrap_owner_file(path: Path, entry: str) -> str:
    """Set ``commands.ownerAllowFrom`` to ``[entry]`` in the config file when no owner exists.

    Returns the published status: ``configured`` or ``already-configured``. The file is rewritten
    as plain JSON (atomically, the old one kept as ``.bak``), as the published CLI does.
    """
    from ..runtime import settings
    from ..state import atomic_write

    cfg = settings.load_config(path) or {}
    commands = cfg.get("commands") if isinstance(cfg.get("commands"), dict) else {}
    owners = [x for x in commands.get("ownerAllowFrom") or () if isinstance(x, str | int) and str(x).strip()]
    if owners:
        return "already-configured"
    cfg["commands"] = {**commands, "ownerAllowFrom": [entry]}
    if path.exists():
        atomic_write(path.with_name(path.name + ".bak"), path.read_bytes())
    atomic_write(path, (json.dumps(cfg, indent=2, ensure_ascii=False) + "\n").encode())
    return "configured"

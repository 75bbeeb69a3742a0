"""The runtime both the gateway and the ``openclaw`` CLI stand on (runtime-cli.md §1, §3, §6, §9).

What it owns, one module each:

- :mod:`.paths`: the home, profiles, the state dir and config path, default ports, ``StartupError``;
- :mod:`.settings`: reading the config file (JSON5, located syntax errors) and resolving
  ``gateway run``'s settings from flags, environment and config;
- :mod:`.lock`: the state-dir lock file (one gateway per state dir; its pid and port);
- :mod:`.logs`: the JSONL file log: where it lives, writing it, reading it back (tail, owner filter);
- :mod:`.ports`: who listens on a port (Linux ``/proc``) and ``--force``'s freeing of it;
- :mod:`.dev`: the ``--dev`` profile's config and workspace.

It also re-exports what the CLI needs from elsewhere in the shell (the clock's token and id
helpers, the atomic file write, the offline session store), so ``openclaw_cli`` imports
``gateway_trio.runtime`` (and ``gateway_trio.client`` for RPC, ``run_gateway`` for ``gateway run``)
and never the server's internals (``tests/test_layering.py`` checks it).
"""

from __future__ import annotations

from typing import Any

from .._runtime import new_token, new_uuid
from ..state import atomic_write
from .dev import ensure_dev
from .lock import acquire_state_lock, lock_owner, record_port, release_state_lock, running_port
from .logs import FileLog, last_error, owner_key, record_filter, rolling_log_path, tail
from .paths import (
    DEFAULT_PORT,
    DEV_PORT,
    EXIT_CONFIG,
    EXIT_USAGE,
    Paths,
    StartupError,
    cli_command,
    env_value,
    fnv1a32,
    home_dir,
    session_store_path,
    tilde,
)
from .ports import free_port, listeners, listening_addresses, ports_of
from .settings import ConfigSyntaxError, GatewaySettings, load_config, reload_mode, resolve

__all__ = [
    "DEFAULT_PORT",
    "DEV_PORT",
    "EXIT_CONFIG",
    "EXIT_USAGE",
    "ConfigSyntaxError",
    "FileLog",
    "GatewaySettings",
    "Paths",
    "SqliteSessionStore",
    "StartupError",
    "acquire_state_lock",
    "atomic_write",
    "cli_command",
    "ensure_dev",
    "env_value",
    "fnv1a32",
    "free_port",
    "home_dir",
    "last_error",
    "listeners",
    "listening_addresses",
    "load_config",
    "lock_owner",
    "new_token",
    "new_uuid",
    "owner_key",
    "ports_of",
    "record_filter",
    "record_port",
    "release_state_lock",
    "reload_mode",
    "resolve",
    "rolling_log_path",
    "running_port",
    "session_store_path",
    "tail",
    "tilde",
]


def __getattr__(name: str) -> Any:
    """The offline session store loads on first use (with sqlite3), not with the runtime."""
    if name == "SqliteSessionStore":
        from ..store.sessions import SqliteSessionStore

        return SqliteSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

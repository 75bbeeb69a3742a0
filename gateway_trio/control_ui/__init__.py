"""The Control UI on the gateway port (http-agents-channels.md §1.9).

:func:`serve` decides one HTTP request: ``None`` when the path is not the Control UI's (the HTTP
layer goes on to its own 404), else ``(status, headers, body)``. It is pure but for reading the
asset files (through :class:`AssetDir`, which caches them). The rules, in order:

* off (``gateway.controlUi.enabled`` false, read per request: the key hot-applies) → ``None``;
* without a base path, ``/ui`` and ``/ui/*`` are 404; the UI never claims ``/api``, ``/v1``, ``/j``,
  the probes or ``/__openclaw__/worker``; only GET and HEAD;
* with a base path, only paths below it; the bare base path is a 302 to ``<basePath>/``;
* the bootstrap JSON (``control-ui-config.json`` and its two aliases) needs a read credential: a
  bearer gateway token or password, or an operator device token (the published gateway refuses
  ``?token=`` on this route, so this one does too);
* files: ``index.html`` ``no-cache`` (its asset URLs carry the build id, so they may be cached for a
  year, ``immutable``); other files ``no-cache`` with ``Last-Modified`` revalidation; gzip when the
  client accepts it;
* an unknown path falls back to ``index.html`` when the ``Accept`` header allows HTML (absent and
  ``*/*`` do; ``text/html;q=0`` does not), except paths that name a static file type (404);
* every response carries the Control UI's security headers and CSP.

``gateway.controlUi.root`` serves another build (for example the published one) from a directory;
paths are resolved safely (no ``..``, no escape through symlinks, no hard links). Its
``index.html`` gets the base-path attribute the published build reads, its ``./assets/`` links
anchored at the base path, and a CSP naming the hashes of its inline scripts.

The modules, by concern: :mod:`.rules` (base path, reserved paths, content negotiation),
:mod:`.headers` (security headers, CSP, response builders), :mod:`.assets` (the files, read
safely and cached), :mod:`.bootstrap` (the per-request settings and the bootstrap JSON),
:mod:`.serving` (:func:`serve`: the rules in order, caching, the SPA fallback) and
:mod:`.gateway` (settings from a running gateway, :func:`respond`).
"""

from __future__ import annotations

from .assets import COMPRESSIBLE, CONTENT_TYPES, MAX_CACHED_BYTES, STATIC_DIR, AssetDir, File, asset_dir, safe_relative
from .bootstrap import UiSettings, bootstrap_payload
from .gateway import respond, settings_for
from .headers import BASE_SECURITY, Headers, Response, csp, inline_script_hashes
from .rules import (
    BOOTSTRAP_NAME,
    NAMESPACE,
    RESERVED_ROOTS,
    WORKER_PREFIX,
    accepts_html,
    bootstrap_paths,
    normalize_base_path,
)
from .serving import BASE_PATH_ATTR, IMMUTABLE, serve

__all__ = [
    "BASE_PATH_ATTR",
    "BASE_SECURITY",
    "BOOTSTRAP_NAME",
    "COMPRESSIBLE",
    "CONTENT_TYPES",
    "IMMUTABLE",
    "MAX_CACHED_BYTES",
    "NAMESPACE",
    "RESERVED_ROOTS",
    "STATIC_DIR",
    "WORKER_PREFIX",
    "AssetDir",
    "File",
    "Headers",
    "Response",
    "UiSettings",
    "accepts_html",
    "asset_dir",
    "bootstrap_paths",
    "bootstrap_payload",
    "csp",
    "inline_script_hashes",
    "normalize_base_path",
    "respond",
    "safe_relative",
    "serve",
    "settings_for",
]

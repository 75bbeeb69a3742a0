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
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import hmac
import html
import json
import os
import posixpath
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from msgspec import Struct

from gateway_core.auth import check_shared_secret
from gateway_core.frames import ConnectAuth

Headers = list[tuple[bytes, bytes]]
Response = tuple[int, Headers, bytes]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
BOOTSTRAP_NAME: Final = "control-ui-config.json"
NAMESPACE: Final = "/__openclaw__"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
#: The published build reads the mount prefix from this attribute of ``<html>``.
BASE_PATH_ATTR: Final = "data-openclaw-control-ui-base-path"

CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json; charset=utf-8",
    ".woff2": "font/woff2",
}
COMPRESSIBLE: Final = frozenset({".html", ".js", ".mjs", ".css", ".json", ".map", ".svg", ".txt", ".webmanifest", ".wasm"})
#: Paths the Control UI never claims when it is mounted at the root (§1.2 consequences).
RESERVED_ROOTS: Final = ("/api", "/v1", "/j", "/health", "/healthz", "/ready", "/readyz", "/startup", "/startupz")
WORKER_PREFIX: Final = "/__openclaw__/worker"
#: Vite-style fingerprinted file names in a configured build (``name-<hash>.ext``).
_FINGERPRINT = re.compile(r"-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_INLINE_SCRIPT = re.compile(r"<script(\s[^>]*)?>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_SRC_ATTR = re.compile(r"\ssrc\s*=", re.IGNORECASE)
MAX_CACHED_BYTES: Final = 48 * 1024 * 1024

BASE_SECURITY: Final[Headers] = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=*, geolocation=*, clipboard-write=*"),
]


class UiSettings(Struct, frozen=True, kw_only=True):
    """What :func:`serve` needs to know about the gateway, taken per request."""

    enabled: bool = True
    base_path: str = ""
    #: A configured build directory (``gateway.controlUi.root``); ``None``: the bundled UI.
    root: str | None = None
    #: The gateway's config (the bootstrap JSON reads ``gateway.controlUi.*`` and the agents).
    config: dict[str, Any] = {}
    server_version: str = ""
    auth_mode: str = "token"
    default_agent_id: str = "main"
    assistant_name: str = "Assistant"
    #: ``check_read(bearer)``: whether a bearer credential may read the bootstrap JSON.
    check_read: Callable[[str | None], bool] | None = None


# --------------------------------------------------------------------------- small pure rules


def normalize_base_path(value: Any) -> str:
    """``"openclaw/"`` → ``"/openclaw"``; empty, ``"/"`` or not a string → ``""``."""
    if not isinstance(value, str):
        return ""
    text = value.strip().strip("/")
    return f"/{text}" if text else ""


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        q = 1.0
        for f in fields[1:]:
            name, _, val = f.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        out.append((fields[0].lower(), q))
    return out


def accepts_html(accept: str | None) -> bool:
    """Whether ``Accept`` lets the app shell answer: absent or wildcard yes, ``text/html;q=0`` no.

    The most specific range that matches ``text/html`` decides (RFC 9110 §12.5.1), so an explicit
    rejection beats ``*/*``; an explicit ``application/xhtml+xml`` also accepts.
    """
    if accept is None or not accept.strip():
        return True
    best: tuple[int, float] | None = None
    for media, q in _media_ranges(accept):
        if media == "application/xhtml+xml" and q > 0:
            return True
        rank = {"text/html": 3, "text/*": 2, "*/*": 1}.get(media)
        if rank is not None and (best is None or rank > best[0]):
            best = (rank, q)
    return best is not None and best[1] > 0


def _reserved(path: str) -> bool:
    if path == WORKER_PREFIX or path.startswith(WORKER_PREFIX + "/"):
        return True
    return any(path == r or path.startswith(r + "/") for r in RESERVED_ROOTS)


def bootstrap_paths(base: str) -> tuple[str, ...]:
    """The bootstrap JSON and its aliases (the legacy ``/__openclaw/`` one, and without a base path
    the default-namespace one)."""
    paths = [f"{base}/{BOOTSTRAP_NAME}", f"{base}/__openclaw/{BOOTSTRAP_NAME}"]
    if not base:
        paths.append(f"{NAMESPACE}/{BOOTSTRAP_NAME}")
    return tuple(paths)


def csp(*, script_hashes: tuple[str, ...] = (), host: str | None = None, published: bool = False) -> str:
    """The Control UI's Content-Security-Policy.

    Our own UI talks only to the gateway that served it, so ``connect-src`` names that origin
    (``'self'`` plus its ``ws:``/``wss:`` forms); a configured build (``published``) gets the
    published policy, whose UI also reaches a few fixed hosts.
    """
    scripts = ["'self'", *(f"'{h}'" for h in script_hashes)]
    if published:
        connect = ["'self'", "ws:", "wss:", "data:", "https://api.openai.com", "https://tweakcn.com"]
        styles = "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com"
        fonts = "font-src 'self' https://fonts.gstatic.com"
        frames = "frame-src 'self' http: https:"
        images = "img-src 'self' data: blob: https:"
    else:
        connect = ["'self'"]
        if host and _HOST.match(host):
            connect += [f"ws://{host}", f"wss://{host}"]
        styles = "style-src 'self'"
        fonts = "font-src 'self'"
        frames = "frame-src 'none'"
        images = "img-src 'self' data: blob:"
    return "; ".join(
        [
            "default-src 'self'",
            "base-uri 'none'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            frames,
            f"script-src {' '.join(scripts)}",
            styles,
            images,
            "media-src 'self' data: blob:",
            fonts,
            "worker-src 'self'",
            f"connect-src {' '.join(connect)}",
        ]
    )


def inline_script_hashes(doc: str) -> tuple[str, ...]:
    """``sha256-…`` of every inline ``<script>`` body (those without ``src``)."""
    out: list[str] = []
    for m in _INLINE_SCRIPT.finditer(doc):
        attrs, body = m.group(1) or "", m.group(2)
        if _SRC_ATTR.search(" " + attrs) or not body:
            continue
        out.append("sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode())
    return tuple(out)


# --------------------------------------------------------------------------- files


class File(Struct, frozen=True):
    """One file ready to send: its bytes, gzip form (when worth it), type and mtime."""

    rel: str
    data: bytes
    gz: bytes | None
    content_type: str
    mtime: float


class AssetDir:
    """A directory of UI files, read safely and cached by (path, mtime, size).

    ``bundled``: our own UI (files under ``assets/`` are served below a build-id path segment).
    Otherwise a configured root: hard links are refused (a link to a file outside the root would
    pass the path checks) and precompressed ``.gz`` siblings are used when present.
    """

    def __init__(self, root: Path, *, bundled: bool) -> None:
        self.root = root
        self.bundled = bundled
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], File]] = {}
        self._cached_bytes = 0
        self._build_id: str | None = None

    def real_root(self) -> Path | None:
        try:
            real = self.root.resolve(strict=True)
        except OSError:
            return None
        return real if real.is_dir() else None

    @property
    def build_id(self) -> str:
        """A digest of every file of a bundled UI (computed once): the immutable asset URL segment."""
        if self._build_id is None:
            digest = hashlib.sha256()
            for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
                digest.update(path.relative_to(self.root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
            self._build_id = digest.hexdigest()[:16]
        return self._build_id

    def open(self, rel: str) -> File | None:
        """The file at ``rel`` (already decoded, ``/``-separated, relative), or ``None``."""
        if not safe_relative(rel):
            return None
        real_root = self.real_root()
        if real_root is None:
            return None
        try:
            real = (real_root / rel).resolve(strict=True)
            st = real.stat()
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(real_root) or not real.is_file():
            return None
        if not self.bundled and st.st_nlink > 1:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(rel)
            if hit is not None and hit[0] == key:
                return hit[1]
        try:
            data = real.read_bytes()
        except OSError:
            return None
        ext = posixpath.splitext(rel)[1].lower()
        gz = self._gzip_of(real, real_root, data, ext)
        file = File(rel, data, gz, CONTENT_TYPES.get(ext, "application/octet-stream"), st.st_mtime)
        size = len(data) + len(gz or b"")
        with self._lock:
            old = self._cache.pop(rel, None)
            if old is not None:
                self._cached_bytes -= len(old[1].data) + len(old[1].gz or b"")
            while self._cache and self._cached_bytes + size > MAX_CACHED_BYTES:
                _, (_, evicted) = self._cache.popitem()
                self._cached_bytes -= len(evicted.data) + len(evicted.gz or b"")
            if size <= MAX_CACHED_BYTES:
                self._cache[rel] = (key, file)
                self._cached_bytes += size
        return file

    def _gzip_of(self, real: Path, real_root: Path, data: bytes, ext: str) -> bytes | None:
        if ext not in COMPRESSIBLE or len(data) < 512:
            return None
        if not self.bundled:
            sibling = real.with_name(real.name + ".gz")
            try:
                st = sibling.stat()
                if sibling.resolve(strict=True).is_relative_to(real_root) and st.st_nlink <= 1:
                    return sibling.read_bytes()
            except OSError:
                pass
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        return packed if len(packed) < len(data) else None


def safe_relative(rel: str) -> bool:
    """A relative ``/`` path that stays inside its root: no ``..`` segment, no absolute or drive
    path, no backslash or NUL (symlinks are checked after resolving, in :meth:`AssetDir.open`)."""
    if not rel or "\0" in rel or "\\" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return False
    return ".." not in rel.split("/")


_BUNDLED = AssetDir(STATIC_DIR, bundled=True)
_ROOTS: dict[str, AssetDir] = {}


def asset_dir(root: str | None) -> AssetDir:
    """The bundled UI, or the (cached) directory of a configured root."""
    if root is None:
        return _BUNDLED
    found = _ROOTS.get(root)
    if found is None:
        found = _ROOTS[root] = AssetDir(Path(os.path.expanduser(root)), bundled=False)
    return found


# --------------------------------------------------------------------------- responses


def _headers(content_type: str | None, *, policy: str, extra: Headers | None = None) -> Headers:
    out = list(BASE_SECURITY)
    out.append((b"content-security-policy", policy.encode()))
    if content_type:
        out.append((b"content-type", content_type.encode()))
    return out + (extra or [])


def _finish(status: int, headers: Headers, body: bytes, head: bool) -> Response:
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, b"" if head else body


def _text(status: int, text: str, policy: str, head: bool, extra: Headers | None = None) -> Response:
    return _finish(status, _headers("text/plain; charset=utf-8", policy=policy, extra=extra), text.encode(), head)


def _json(status: int, body: Any, policy: str, head: bool) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return _finish(
        status, _headers("application/json; charset=utf-8", policy=policy, extra=[(b"cache-control", b"no-cache")]), data, head
    )


def _accepts_gzip(value: str | None) -> bool:
    if not value:
        return False
    return any(media in ("gzip", "x-gzip") and q > 0 for media, q in _media_ranges(value))


def _send_file(
    file: File, *, cache: str, policy: str, head: bool, headers_in: Mapping[str, str], revalidate: bool = True
) -> Response:
    extra: Headers = [(b"cache-control", cache.encode())]
    if file.gz is not None:
        extra.append((b"vary", b"Accept-Encoding"))
    modified = email.utils.formatdate(int(file.mtime), usegmt=True)
    extra.append((b"last-modified", modified.encode()))
    since = headers_in.get("if-modified-since") if revalidate else None
    if since and cache != IMMUTABLE:
        try:
            when = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None and int(file.mtime) <= when:
            return 304, _headers(None, policy=policy, extra=extra), b""
    body = file.data
    if file.gz is not None and _accepts_gzip(headers_in.get("accept-encoding")):
        body = file.gz
        extra.append((b"content-encoding", b"gzip"))
    return _finish(200, _headers(file.content_type, policy=policy, extra=extra), body, head)


def _index(
    assets: AssetDir, file: File, base: str, *, host: str | None, head: bool, headers_in: Mapping[str, str]
) -> Response:
    """``index.html`` with the base path stamped in; its CSP names the inline scripts it carries."""
    doc = file.data.decode("utf-8", "replace")
    attr = f' {BASE_PATH_ATTR}="{html.escape(base, quote=True)}"'
    if assets.bundled:
        doc = doc.replace('"./assets/', f'"{base}/assets/v-{assets.build_id}/')
    else:
        doc = doc.replace('src="./assets/', f'src="{base}/assets/').replace('href="./assets/', f'href="{base}/assets/')
    doc = re.sub(r"<html\b", lambda m: m.group(0) + attr, doc, count=1, flags=re.IGNORECASE)
    policy = csp(script_hashes=inline_script_hashes(doc), host=host, published=not assets.bundled)
    data = doc.encode()
    gz = gzip.compress(data, compresslevel=6, mtime=0) if len(data) >= 512 else None
    rendered = File("index.html", data, gz, CONTENT_TYPES[".html"], file.mtime)
    # Never a 304: the document depends on the settings (base path), not only on the file.
    return _send_file(rendered, cache="no-cache", policy=policy, head=head, headers_in=headers_in, revalidate=False)


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def bootstrap_payload(settings: UiSettings, base: str) -> dict[str, Any]:
    """The bootstrap JSON's fields, as the published gateway sends them (no avatars, no terminal)."""
    ui = ((settings.config.get("gateway") or {}).get("controlUi") or {}) if isinstance(settings.config, dict) else {}
    cli_agents = (settings.config.get("gateway") or {}).get("cliAgents") or {}
    sandbox = ui.get("embedSandbox")
    body: dict[str, Any] = {
        "basePath": base,
        "assistantName": settings.assistant_name,
        "assistantAvatar": (settings.assistant_name[:1] or "A").upper(),
        "assistantAvatarSource": None,
        "assistantAvatarStatus": None,
        "assistantAvatarReason": None,
        "assistantAgentId": settings.default_agent_id,
        "serverVersion": settings.server_version,
        "embedSandbox": sandbox if sandbox in ("trusted", "strict") else "scripts",
        "allowExternalEmbedUrls": ui.get("allowExternalEmbedUrls") is True,
        "automaticallyFetchFavicons": ui.get("automaticallyFetchFavicons") is not False,
        "communityInvite": ui.get("communityInvite") is not False,
        "terminalEnabled": False,
        "cliAgentsEnabled": cli_agents.get("enabled") is not False if isinstance(cli_agents, dict) else True,
        "pluginAssetsRequireAuth": settings.auth_mode != "none",
        "pluginFrameGrants": [],
    }
    if settings.root is None:
        body["serverBuildId"] = settings.server_version
    if isinstance(ui.get("environment"), dict):
        body["environment"] = ui["environment"]
    return body


def serve(
    method: str, path: str, query: str, headers: Mapping[str, str], settings: UiSettings
) -> Response | None:
    """Answer one request for the Control UI, or ``None`` when it is not the UI's to answer.

    ``path`` is the raw (still percent-encoded) path, ``query`` the raw query string without ``?``,
    ``headers`` lower-cased names to values.
    """
    if not settings.enabled:
        return None
    base = normalize_base_path(settings.base_path)
    head = method == "HEAD"
    read = method in ("GET", "HEAD")
    host = headers.get("host")
    assets = asset_dir(settings.root)
    policy = csp(host=host, published=not assets.bundled)
    if not base:
        if path == "/ui" or path.startswith("/ui/"):
            return _text(404, "Not Found", policy, head)
        if _reserved(path) or not read:
            return None
    else:
        if path != base and not path.startswith(base + "/"):
            return None
        if not read:
            return None
        if path == base:
            location = f"{base}/" + (f"?{query}" if query else "")
            return _finish(302, _headers(None, policy=policy, extra=[(b"location", location.encode())]), b"", head)
    if path in bootstrap_paths(base):
        bearer = _bearer(headers)
        allowed = settings.auth_mode == "none" or (settings.check_read is not None and settings.check_read(bearer))
        if not allowed:
            return _json(401, {"error": {"message": "Unauthorized", "type": "unauthorized"}}, policy, head)
        return _json(200, bootstrap_payload(settings, base), policy, head)
    if assets.real_root() is None or not (assets.root / "index.html").is_file():
        hint = (
            "Control UI assets not found at the configured gateway.controlUi.root; build them or update the setting."
            if settings.root is not None
            else "Control UI assets not found in this installation; reinstall the gateway package."
        )
        return _text(503, hint, policy, head)
    ui_path = path[len(base) :] if base else path
    try:
        rel = urllib.parse.unquote(ui_path, errors="strict").lstrip("/")
    except UnicodeDecodeError:
        return _text(404, "Not Found", policy, head)
    cache = "no-cache"
    if assets.bundled and rel.startswith("assets/v-"):
        version, _, rest = rel[len("assets/v-") :].partition("/")
        rel = f"assets/{rest}"
        if version == assets.build_id:
            cache = IMMUTABLE
    elif not assets.bundled and rel.startswith("assets/") and _FINGERPRINT.search(rel):
        cache = IMMUTABLE
    if rel in ("", "index.html") or rel.endswith("/"):
        rel = rel + "index.html" if rel.endswith("/") else "index.html"
    file = assets.open(rel) if safe_relative(rel) else None
    if file is not None and posixpath.basename(rel) != "index.html":
        return _send_file(file, cache=cache, policy=policy, head=head, headers_in=headers)
    if file is None:
        ext = posixpath.splitext(rel)[1].lower()
        if (ext in CONTENT_TYPES and ext != ".html") or not safe_relative(rel):
            return _text(404, "Not Found", policy, head)
        if not accepts_html(headers.get("accept")):
            return None
        file = assets.open("index.html")
        if file is None:
            return _text(404, "Not Found", policy, head)
    return _index(assets, file, base, host=host, head=head, headers_in=headers)


# --------------------------------------------------------------------------- the gateway's side


def settings_for(gw: Any) -> UiSettings:
    """The Control UI settings of a running gateway (``gateway_trio.app.Gateway``).

    ``enabled`` is read from the applied config (hot); ``basePath`` and ``root`` from the config the
    gateway started with (they need a restart).
    """
    live = gw.app.config if gw is not None else {}
    started = (gw.settings.config if gw is not None else None) or {}
    ui_live = (live.get("gateway") or {}).get("controlUi") or {}
    ui_start = (started.get("gateway") or {}).get("controlUi") or {}
    root = ui_start.get("root")
    if gw is None:
        return UiSettings(enabled=False)
    roster = gw.app.roster
    agent = roster.default
    services = gw.services
    secret = gw.app.secret

    def check_read(bearer: str | None) -> bool:
        if not bearer:
            return False
        if check_shared_secret(secret, ConnectAuth(token=bearer)).ok:
            return True
        return any(
            t.role == "operator" and ("operator.read" in t.scopes or "operator.admin" in t.scopes or "operator.write" in t.scopes)
            and _same(t.token, bearer)
            for t in list(services.tokens.values())
        )

    return UiSettings(
        enabled=ui_live.get("enabled") is not False,
        base_path=normalize_base_path(ui_start.get("basePath")),
        root=root if isinstance(root, str) and root.strip() else None,
        config=live,
        server_version=gw.policy.server_version,
        auth_mode=secret.mode,
        default_agent_id=agent.id,
        assistant_name=agent.identity_name or "Assistant",
        check_read=check_read,
    )


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def respond(gw: Any, method: str, target: str, headers: Headers | None) -> Response | None:
    """The HTTP layer's one call: ``target`` is the raw request target, ``headers`` as received."""
    path, _, query = target.partition("?")
    named = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers or ()}
    return serve(method, path, query, named, settings_for(gw))


__all__ = [
    "STATIC_DIR",
    "AssetDir",
    "UiSettings",
    "accepts_html",
    "bootstrap_paths",
    "csp",
    "inline_script_hashes",
    "normalize_base_path",
    "respond",
    "safe_relative",
    "serve",
    "settings_for",
]

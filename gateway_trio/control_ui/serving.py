"""The Control UI's request decision (:func:`serve`): the routing rules in order, files with their
caching, the SPA fallback to ``index.html`` and the index document stamped with the base path."""

from __future__ import annotations

import email.utils
import gzip
import html
import posixpath
import re
import urllib.parse
from collections.abc import Mapping
from typing import Final

from .assets import CONTENT_TYPES, AssetDir, File, asset_dir, safe_relative
from .bootstrap import UiSettings, bootstrap_payload
from .headers import Headers, Response, base_headers, csp, finish, inline_script_hashes, json_reply, text_reply
from .rules import accepts_gzip, accepts_html, bearer, bootstrap_paths, normalize_base_path, reserved

IMMUTABLE: Final = "public, max-age=31536000, immutable"
#: The published build reads the mount prefix from this attribute of ``<html>``.
BASE_PATH_ATTR: Final = "data-openclaw-control-ui-base-path"
#: Vite-style fingerprinted file names in a configured build (``name-<hash>.ext``).
_FINGERPRINT = re.compile(r"-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$")


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
            return 304, base_headers(None, policy=policy, extra=extra), b""
    body = file.data
    if file.gz is not None and accepts_gzip(headers_in.get("accept-encoding")):
        body = file.gz
        extra.append((b"content-encoding", b"gzip"))
    return finish(200, base_headers(file.content_type, policy=policy, extra=extra), body, head)


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
            return text_reply(404, "Not Found", policy, head)
        if reserved(path) or not read:
            return None
    else:
        if path != base and not path.startswith(base + "/"):
            return None
        if not read:
            return None
        if path == base:
            location = f"{base}/" + (f"?{query}" if query else "")
            return finish(302, base_headers(None, policy=policy, extra=[(b"location", location.encode())]), b"", head)
    if path in bootstrap_paths(base):
        credential = bearer(headers)
        allowed = settings.auth_mode == "none" or (settings.check_read is not None and settings.check_read(credential))
        if not allowed:
            return json_reply(401, {"error": {"message": "Unauthorized", "type": "unauthorized"}}, policy, head)
        return json_reply(200, bootstrap_payload(settings, base), policy, head)
    if assets.real_root() is None or not (assets.root / "index.html").is_file():
        hint = (
            "Control UI assets not found at the configured gateway.controlUi.root; build them or update the setting."
            if settings.root is not None
            else "Control UI assets not found in this installation; reinstall the gateway package."
        )
        return text_reply(503, hint, policy, head)
    ui_path = path[len(base) :] if base else path
    try:
        rel = urllib.parse.unquote(ui_path, errors="strict").lstrip("/")
    except UnicodeDecodeError:
        return text_reply(404, "Not Found", policy, head)
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
            return text_reply(404, "Not Found", policy, head)
        if not accepts_html(headers.get("accept")):
            return None
        file = assets.open("index.html")
        if file is None:
            return text_reply(404, "Not Found", policy, head)
    return _index(assets, file, base, host=host, head=head, headers_in=headers)

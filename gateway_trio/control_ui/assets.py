"""The Control UI's files: the bundled build or a configured root, read safely and cached.

Paths are resolved safely (no ``..``, no escape through symlinks, no hard links in a configured
root); files are cached by (path, mtime, size) up to :data:`MAX_CACHED_BYTES`, with their gzip
form when it is worth sending.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from msgspec import Struct

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
MAX_CACHED_BYTES: Final = 48 * 1024 * 1024

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

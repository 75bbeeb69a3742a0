"""Persistent gateway state in the state dir: device pairings, device tokens, the gateway identity.

Implements gateway_core's ``GatewayServices`` for the live process. Everything is held in memory
and written through to small JSON files with atomic replaces (temp file, fsync, rename), so a
crash never leaves a half-written file and a restart finds every pairing and token again.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import trio

from gateway_core.auth import AuthRateLimiter, RateLimitPolicy, SharedSecret
from gateway_core.device import DeviceKey
from gateway_core.services import Admission, DeviceToken, MemoryServices, PairedDevice, StorageError

from . import _runtime


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (same-dir temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


#: errno → the words a client may see (never the path; that stays in the log).
_OS_ERROR_WORDS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}


def describe_os_error(exc: OSError) -> str:
    """A short, path-free description of ``exc`` for the wire."""
    if exc.errno in _OS_ERROR_WORDS:
        return _OS_ERROR_WORDS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


class StorageHealth:
    """Logs a storage failure once (with its cause and path) and the recovery once, per area.

    A full or read-only state dir makes every write fail the same way; one line per failure would
    flood the log. ``failed`` and ``ok`` are called around each write.
    """

    def __init__(self, log: Callable[[str, str], None] | None = None) -> None:
        self._log = log or (lambda _level, _line: None)
        self._failing: dict[str, str] = {}

    def failed(self, area: str, exc: OSError) -> None:
        if area not in self._failing:
            self._failing[area] = describe_os_error(exc)
            self._log("error", f"{area} write failed: {exc} (answering clients UNAVAILABLE until it succeeds)")

    def ok(self, area: str) -> None:
        if self._failing.pop(area, None) is not None:
            self._log("info", f"{area} writes succeed again")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


class GatewayIdentity:
    """The gateway's own Ed25519 identity (``gateway.identity.get``), created once and kept."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / "identity" / "gateway.json"
        raw = _read_json(path)
        if isinstance(raw, dict) and isinstance(raw.get("seed"), str):
            self.key = DeviceKey.from_seed(bytes.fromhex(raw["seed"]))
        else:
            self.key = DeviceKey.from_seed(_runtime.new_seed())
            doc = {
                "version": 1,
                "deviceId": self.key.device_id,
                "publicKey": self.key.public_key,
                "seed": self.key.seed().hex(),
            }
            atomic_write(path, json.dumps(doc, indent=2).encode())

    def as_payload(self) -> dict[str, str]:
        return {"deviceId": self.key.device_id, "publicKey": self.key.public_key}


class PersistentServices(MemoryServices):
    """``GatewayServices`` whose pairings and device tokens live in ``<state>/devices/*.json``.

    The in-memory behaviour is :class:`MemoryServices`'; this class loads the files at start and
    writes them through (atomically) whenever a pairing or a token changes. Tokens and request ids
    come from the CSPRNG.
    """

    def __init__(
        self,
        state_dir: Path,
        secret: Callable[[], SharedSecret],
        rate_limit: RateLimitPolicy | None = None,
        storage: StorageHealth | None = None,
    ) -> None:
        super().__init__(
            id_factory=lambda kind: _runtime.new_token() if kind == "devtok" else _runtime.new_uuid(),
            rate_limiter=AuthRateLimiter(rate_limit),
        )
        self.dir = state_dir / "devices"
        self._secret = secret
        self.storage = storage or StorageHealth()
        self.phase = Admission.STARTING
        paired = _read_json(self.dir / "paired.json") or {}
        tokens = _read_json(self.dir / "tokens.json") or []
        self.devices = {k: msgspec.convert(v, PairedDevice) for k, v in paired.items() if isinstance(v, dict)}
        for item in tokens:
            tok = msgspec.convert(item, DeviceToken)
            self.tokens[(tok.device_id, tok.role)] = tok
        #: Staged changes not yet on disk: which files, and how to undo them.
        self._dirty: set[str] = set()
        self._undo: list[tuple[str, Any, Any]] = []
        self._write_lock = trio.Lock()
        #: Staging generations: staged so far, written (or failed) so far, recent batches' outcomes.
        self._staged = 0
        self._written = 0
        self._batches: list[tuple[int, int, str | None]] = []

    def shared_secret(self) -> SharedSecret:
        return self._secret()

    def apply(self, decisions: tuple[Any, ...]) -> None:
        """Stage decisions in memory (undone by :meth:`persist` if they cannot be written)."""
        for item in decisions:
            if isinstance(item, PairedDevice):
                self._undo.append(("device", item.device_id, self.devices.get(item.device_id)))
                self._dirty.add("paired.json")
            elif isinstance(item, DeviceToken):
                self._undo.append(("token", (item.device_id, item.role), self.tokens.get((item.device_id, item.role))))
                self._dirty.add("tokens.json")
        super().apply(decisions)
        self._staged += 1

    @property
    def staged(self) -> int:
        """A mark for :meth:`persist`: the staging generation right now."""
        return self._staged

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def _files(self) -> list[tuple[str, bytes]]:
        out = []
        if "paired.json" in self._dirty:
            data = {k: msgspec.to_builtins(v) for k, v in self.devices.items()}
            out.append(("paired.json", json.dumps(data, indent=2).encode()))
        if "tokens.json" in self._dirty:
            out.append(("tokens.json", json.dumps([msgspec.to_builtins(v) for v in self.tokens.values()], indent=2).encode()))
        return out

    async def persist(self, upto: int | None = None) -> None:
        """Write what was staged (up to mark ``upto``, default: everything so far), off the event
        loop, before it counts. If the write that carried it failed, its changes were undone and
        :class:`StorageError` is raised (the cause logged once)."""
        upto = self._staged if upto is None else upto
        async with self._write_lock:
            for start, end, error in self._batches:
                if start < upto <= end:
                    if error is not None:
                        raise StorageError(error)
                    return
            if upto <= self._written or not self._dirty:
                return
            files, self._dirty = self._files(), set()
            undo, self._undo = self._undo, []
            start, end = self._written, self._staged

            def write() -> None:
                for name, data in files:
                    atomic_write(self.dir / name, data)

            try:
                await trio.to_thread.run_sync(write)
            except OSError as exc:
                for kind, key, before in reversed(undo):  # this batch does not count
                    table: dict[Any, Any] = self.devices if kind == "device" else self.tokens
                    if before is None:
                        table.pop(key, None)
                    else:
                        table[key] = before
                self.storage.failed("device pairing", exc)
                self._record(start, end, describe_os_error(exc))
                raise StorageError(describe_os_error(exc)) from None
            self.storage.ok("device pairing")
            self._record(start, end, None)

    def _record(self, start: int, end: int, error: str | None) -> None:
        self._written = end
        self._batches.append((start, end, error))
        del self._batches[:-64]

"""The gateway's file log (JSONL, tslog-style records) and console lines (runtime-cli.md §9).

One record per line::

    {"0":"{\"subsystem\":\"gateway\"}","1":"gateway ready","_meta":{...},"time":"…","hostname":"…","message":"gateway ready"}

The file rolls daily (``openclaw[-<profile>]-YYYY-MM-DD.log`` under ``<tmp>/openclaw``) unless
``logging.file`` names one, and rotates at ``maxFileBytes`` to ``.1`` … ``.5``. Writes are
line-buffered appends, so ``logs.tail`` (which reads the same file) sees every complete line.

Every gateway on a machine may share that file (as the published gateway's do), so each record
says whose it is: ``_meta.gateway = {stateDir, profile, boot, pid}``. ``logs.tail``, ``openclaw
logs`` and ``gateway status``'s last error keep only the records of one state dir
(:func:`record_filter`), whatever the file layout.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

LEVELS = {"trace": 1, "debug": 2, "info": 3, "warn": 4, "error": 5, "fatal": 6}
LEVEL_NAMES = {v: k.upper() for k, v in LEVELS.items()}
MAX_MESSAGE_CHARS = 4096
DEFAULT_MAX_FILE_BYTES = 104_857_600
KEEP_ROTATED = 5


_SUBSYSTEM_COLORS = ("36", "35", "34", "32", "96", "95", "94", "92")


def _color_wanted(stream: TextIO) -> bool:
    """Colour on a TTY unless ``NO_COLOR``; ``FORCE_COLOR`` forces it (runtime-cli.md §9.2)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def default_log_dir() -> Path:
    """``<tmp>/openclaw`` when safe (ours, not world-writable, not a symlink), else a per-uid dir."""
    base = Path(tempfile.gettempdir())
    preferred = base / "openclaw"
    try:
        preferred.mkdir(mode=0o700, exist_ok=True)
        st = preferred.lstat()
        if not preferred.is_symlink() and st.st_uid == os.getuid() and not st.st_mode & 0o002:
            return preferred
    except OSError:
        pass
    fallback = base / f"openclaw-{os.getuid()}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    return fallback


def rolling_log_path(profile: str | None, day: dt.date | None = None) -> Path:
    """Today's rolling file for ``profile`` (local date)."""
    day = day or dt.date.today()
    stem = "openclaw" if not profile or profile == "default" else f"openclaw-{profile}"
    return default_log_dir() / f"{stem}-{day.isoformat()}.log"


class FileLog:
    """Appends JSONL records to the gateway log file and mirrors them to the console."""

    def __init__(
        self,
        path: Path | None,
        *,
        profile: str | None = None,
        level: str = "info",
        console_level: str = "info",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        console: TextIO | None = None,
        console_enabled: bool = True,
        state_dir: Path | None = None,
        boot_id: str | None = None,
    ) -> None:
        self.fixed_path = path
        self.profile = profile
        #: Whose records these are (``_meta.gateway``): the state dir identifies the gateway.
        self.owner: dict[str, Any] = {
            "stateDir": owner_key(state_dir) if state_dir is not None else None,
            "profile": profile or "default",
            "boot": boot_id,
            "pid": os.getpid(),
        }
        self.level = LEVELS.get(level, 3)
        self.console_level = LEVELS.get(console_level, 3)
        self.max_file_bytes = max_file_bytes
        self.console = console or sys.stdout
        self.console_enabled = console_enabled
        self.hostname = socket.gethostname()
        from .. import _runtime  # here, not at the top: the CLI reads logs through this module without Trio

        self._wall_ms = _runtime.wall_ms
        self.color = _color_wanted(self.console)
        self._fh: TextIO | None = None
        self._open_path: Path | None = None
        self._size = 0

    def set_levels(self, level: str, console_level: str) -> None:
        """Apply new ``logging.level`` / ``consoleLevel`` from the next record on (reload class none)."""
        self.level = LEVELS.get(level, self.level)
        self.console_level = LEVELS.get(console_level, self.console_level)

    @property
    def path(self) -> Path:
        """The file records go to now."""
        return self.fixed_path or rolling_log_path(self.profile, self._now().date())

    def _now(self) -> dt.datetime:
        """Local time now, aware, from the runtime's wall clock."""
        return dt.datetime.fromtimestamp(self._wall_ms() / 1000).astimezone()

    def _file(self) -> TextIO:
        path = self.path
        if self._fh is None or path != self._open_path:
            self.close()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open
            self._open_path = path
            self._size = path.stat().st_size
        return self._fh

    def _rotate(self) -> None:
        path = self._open_path
        self.close()
        if path is None:
            return
        stem, suffix = path.stem, path.suffix
        oldest = path.with_name(f"{stem}.{KEEP_ROTATED}{suffix}")
        oldest.unlink(missing_ok=True)
        for i in range(KEEP_ROTATED - 1, 0, -1):
            src = path.with_name(f"{stem}.{i}{suffix}")
            if src.exists():
                src.rename(path.with_name(f"{stem}.{i + 1}{suffix}"))
        if path.exists():
            path.rename(path.with_name(f"{stem}.1{suffix}"))

    def log(self, level: str, subsystem: str, message: str, **fields: Any) -> None:
        """Write one record (file if ``level`` passes ``logging.level``; console likewise)."""
        lvl = LEVELS.get(level, 3)
        message = message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"
        now = self._now()
        if lvl >= self.level:
            name = json.dumps({"subsystem": subsystem}, separators=(",", ":"))
            record: dict[str, Any] = {"0": name}
            text = message if message.startswith(subsystem.split("/")[0]) else f"{subsystem.split('/')[0]} {message}"
            record["1"] = text
            if fields:
                record["2"] = fields
            record["_meta"] = {
                "runtime": "python",
                "runtimeVersion": sys.version.split()[0],
                "hostname": self.hostname,
                "date": now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "logLevelId": lvl,
                "logLevelName": LEVEL_NAMES[lvl],
                "name": name,
                "parentNames": ["openclaw"],
                "gateway": self.owner,
            }
            record["time"] = now.isoformat(timespec="milliseconds")
            record["hostname"] = self.hostname
            record["message"] = text
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            try:
                fh = self._file()
                fh.write(line)
                self._size += len(line.encode())
                if self._size >= self.max_file_bytes:
                    self._rotate()
            except OSError as exc:
                print(f"[log] cannot write {self.path}: {exc}", file=sys.stderr)
        if self.console_enabled and lvl >= self.console_level:
            label = subsystem.split("/")[-1] if subsystem.startswith("gateway/") else subsystem
            shown = message[len(label) + 1 :] if message.startswith(label + " ") else message
            stream = sys.stderr if lvl >= LEVELS["warn"] else self.console
            stamp = now.isoformat(timespec="milliseconds")
            if self.color:
                tag = f"\x1b[{_SUBSYSTEM_COLORS[sum(label.encode()) % len(_SUBSYSTEM_COLORS)]}m[{label}]\x1b[39m"
                level_color = {4: "33", 5: "31", 6: "31"}.get(lvl)
                text = f"\x1b[{level_color}m{shown}\x1b[39m" if level_color else shown
                print(f"\x1b[90m{stamp}\x1b[39m {tag} {text}", file=stream, flush=True)
            else:
                print(f"{stamp} [{label}] {shown}", file=stream, flush=True)

    def info(self, subsystem: str, message: str, **fields: Any) -> None:
        self.log("info", subsystem, message, **fields)

    def warn(self, subsystem: str, message: str, **fields: Any) -> None:
        self.log("warn", subsystem, message, **fields)

    def error(self, subsystem: str, message: str, **fields: Any) -> None:
        self.log("error", subsystem, message, **fields)

    def debug(self, subsystem: str, message: str, **fields: Any) -> None:
        self.log("debug", subsystem, message, **fields)

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            finally:
                self._fh = None
                self._open_path = None


def owner_key(state_dir: Path) -> str:
    """How a record names its gateway: the state dir, absolute with symlinks resolved (the CLI
    and the gateway may spell the same directory differently)."""
    return str(Path(os.path.expanduser(state_dir)).resolve())


def record_filter(*, state_dir: Path | None = None, since_epoch_ms: int | None = None) -> Callable[[str], bool]:
    """A line predicate for :func:`tail`: records of the gateway at ``state_dir`` (``_meta.gateway.
    stateDir``; lines that say no owner are not provably its own and are left out), written at or
    after ``since_epoch_ms`` (``_meta.date``)."""
    key = owner_key(state_dir) if state_dir is not None else None
    needle = json.dumps(key, ensure_ascii=False) if key is not None else None

    def keep(line: str) -> bool:
        if needle is not None and needle not in line:
            return False  # cheap: the owner's path is not even on the line
        try:
            record = json.loads(line)
            meta = record["_meta"]
        except (ValueError, TypeError, KeyError):
            return False
        if not isinstance(meta, dict):
            return False
        if key is not None:
            owner = meta.get("gateway")
            if not isinstance(owner, dict) or owner.get("stateDir") != key:
                return False
        if since_epoch_ms is not None:
            try:
                when = dt.datetime.fromisoformat(str(meta.get("date") or record.get("time")))
            except ValueError:
                return False
            if when.tzinfo is None:
                when = when.astimezone()
            if int(when.timestamp() * 1000) < since_epoch_ms:
                return False
        return True

    return keep


def tail(
    path: Path, *, cursor: int | None, limit: int, max_bytes: int, keep: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """``logs.tail`` over ``path`` exactly as runtime-cli.md §9.4 specifies.

    Without a cursor: the last ``max_bytes``. With one: from it (``reset`` if past the end, or if
    more than ``max_bytes`` is pending, then also ``truncated`` and ``skippedBytes``). A partial
    first line is dropped, the lines ``keep`` rejects (other gateways' records) are left out, the
    last ``limit`` kept, and ``cursor`` is the offset just after the last newline read.
    """
    size = path.stat().st_size if path.exists() else 0
    out: dict[str, Any] = {"file": str(path), "cursor": size, "size": size, "lines": []}
    start: int
    drop_partial = True
    if cursor is None:
        start = max(0, size - max_bytes)
    elif cursor > size:
        out["reset"] = True
        start = max(0, size - max_bytes)
    elif size - cursor > max_bytes:
        out["reset"] = True
        out["truncated"] = True
        out["skippedBytes"] = size - max_bytes - cursor
        start = size - max_bytes
    else:
        start = cursor
        drop_partial = False
    if start == 0:
        drop_partial = False
    data = b""
    if size > start:
        with open(path, "rb") as fh:
            fh.seek(start - 1 if drop_partial else start)
            data = fh.read(size - start + (1 if drop_partial else 0))
        if drop_partial:
            # The first line is partial unless the byte before ``start`` ends a line.
            drop_partial = data[:1] != b"\n"
            data = data[1:]
    end = data.rfind(b"\n")
    if end < 0:
        out["cursor"] = start
        out.setdefault("truncated", False)
        return out
    chunk = data[: end + 1]
    out["cursor"] = start + end + 1
    lines = chunk.decode("utf-8", "replace").split("\n")[:-1]
    if drop_partial and lines:
        lines = lines[1:]
    if keep is not None:
        lines = [line for line in lines if keep(line)]
    if len(lines) > limit:
        lines = lines[-limit:]
        out["truncated"] = True
    out["lines"] = lines
    out.setdefault("truncated", False)
    return out


def last_error(path: Path, *, state_dir: Path | None = None, max_bytes: int = 262_144) -> dict[str, str] | None:
    """The newest ERROR/FATAL record in the last ``max_bytes`` of ``path``: ``{time, subsystem, message}``,
    among the records of the gateway at ``state_dir`` when given.

    ``gateway status`` shows it when the probe fails, so an operator sees why a supervised gateway
    keeps exiting (a config refusal, a busy port) without opening the log.
    """
    found = None
    keep = record_filter(state_dir=state_dir) if state_dir is not None else None
    for line in tail(path, cursor=None, limit=100_000, max_bytes=max_bytes, keep=keep)["lines"]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        meta = record.get("_meta") if isinstance(record, dict) else None
        if not isinstance(meta, dict) or meta.get("logLevelName") not in ("ERROR", "FATAL"):
            continue
        try:
            subsystem = json.loads(record.get("0", "{}")).get("subsystem", "")
        except (ValueError, AttributeError):
            subsystem = ""
        message = str(record.get("message", ""))
        found = {"time": str(record.get("time", "")), "subsystem": str(subsystem), "message": message.removeprefix(f"{subsystem} ")}
    return found

"""The §10.6 result of a lifecycle command: a JSON envelope, or human lines with ``Tip:`` hints."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .common import Backend

#: runtime-cli.md §10.6 ``hintItems[].kind``: first matching pattern wins, else ``generic``.
HINT_KINDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(gateway|node) install\b|^Service not installed\. Run:"), "install"),
    (re.compile(r"^Restart the container or the service that manages it for "), "container-restart"),
    (re.compile(r"^systemd user services are unavailable;"), "systemd-unavailable"),
    (
        re.compile(r"^(On a headless server \(SSH/no desktop session\):|Also ensure XDG_RUNTIME_DIR is set:)"),
        "systemd-headless",
    ),
    (re.compile(r"^If you're in a container, run the gateway in the foreground instead of"), "container-foreground"),
    (
        re.compile(r"^(WSL2 needs systemd enabled:|Then run: wsl --shutdown|Verify: systemctl --user status)"),
        "wsl-systemd",
    ),
)


def _hint_kind(text: str) -> str:
    return next((kind for pattern, kind in HINT_KINDS if pattern.search(text)), "generic")


class Reporter:
    """The §10.6 result: the JSON envelope, or human lines (stdout) and errors (stderr) with ``Tip:`` lines."""

    def __init__(self, action: str, json_: bool, backend: Backend | None, warnings: Sequence[str] = ()) -> None:
        self.action = action
        self.json = json_
        self.backend = backend
        self.warnings = list(warnings)

    def _service(self, loaded: bool) -> dict[str, Any] | None:
        if self.backend is None:
            return None
        return {
            "label": self.backend.label,
            "loaded": loaded,
            "loadedText": self.backend.loaded_text,
            "notLoadedText": self.backend.not_loaded_text,
        }

    def _emit(self, doc: dict[str, Any]) -> None:
        clean = {"action": self.action, **{k: v for k, v in doc.items() if v is not None}}
        print(json.dumps(clean))

    def ok(
        self,
        result: str,
        *,
        message: str | None = None,
        lines: Sequence[str] = (),
        loaded: bool = True,
        extra: Mapping[str, Any] | None = None,
        after: Sequence[str] = (),
    ) -> int:
        if self.json:
            self._emit(
                {
                    "ok": True,
                    "result": result,
                    "message": message,
                    "warnings": self.warnings or None,
                    "service": self._service(loaded),
                    **(extra or {}),
                }
            )
        else:
            for line in self.warnings:
                print(f"Warning: {line}")
            for line in [*lines, *([message] if message else []), *after]:
                print(line)
        return 0

    def fail(
        self, message: str, *, hints: Sequence[str] = (), result: str | None = None, lines: Sequence[str] = ()
    ) -> int:
        if self.json:
            self._emit(
                {
                    "ok": False,
                    "result": result,
                    "error": message,
                    "hints": list(hints) or None,
                    "hintItems": [{"kind": _hint_kind(h), "text": h} for h in hints] or None,
                    "warnings": self.warnings or None,
                }
            )
        else:
            for line in self.warnings:
                print(f"Warning: {line}")
            for line in lines:
                print(line)
            print(message, file=sys.stderr)
            for hint in hints:
                print(f"Tip: {hint}")
        return 2 if result == "still-starting" else 1

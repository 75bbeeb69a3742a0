"""The recorded exchanges of the published gateway (tests/data/http-openai/<case>.txt), parsed.

Each file holds the request (method, path, headers, body), curl's meta line (``http_code=…``), the
raw response headers and the raw body (SSE streams byte for byte), then a summary of the upstream
traffic. :func:`load` returns a :class:`Case`; the helpers normalize what must differ between two
runs (ids, timestamps) so our bytes can be compared with the recorded ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data" / "http-openai"
TOKEN = "<REDACTED_TOKEN>"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass
class Case:
    name: str
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.response_body)

    @property
    def request_json(self) -> Any:
        return json.loads(self.body)

    def frames(self) -> list[str]:
        """The SSE frames (without their ``\\n\\n`` terminators)."""
        return [f for f in self.response_body.split("\n\n") if f.strip()]


def _section(lines: list[str], start: str) -> list[str]:
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("### "):
            if inside:
                break
            inside = line.startswith(start)
            continue
        if inside:
            out.append(line)
    return out


def load(name: str) -> Case:
    text = (DATA / f"{name}.txt").read_text(encoding="utf-8")
    lines = text.split("\n")
    request = _section(lines, "### request")
    method, path, _ = request[0].split(" ", 2)
    headers: dict[str, str] = {}
    i = 1
    while i < len(request) and request[i]:
        key, _, value = request[i].partition(":")
        headers[key.strip().lower()] = value.strip()
        i += 1
    body = "\n".join(request[i + 1 :])
    if body.endswith("\n"):
        body = body[:-1]
    meta = next(line for line in lines if line.startswith("### curl: "))
    status = int(re.search(r"http_code=(\d+)", meta).group(1))  # type: ignore[union-attr]
    response_headers: dict[str, str] = {}
    for line in _section(lines, "### response headers"):
        if ":" in line and not line.startswith("HTTP/"):
            key, _, value = line.partition(":")
            response_headers[key.strip().lower()] = value.strip()
    raw = "\n".join(_section(lines, "### response body"))
    return Case(name, method, path, headers, body.encode(), status, response_headers, raw.strip("\n"))


def names(prefix: str = "") -> list[str]:
    return sorted(p.stem for p in DATA.glob(f"{prefix}*.txt"))


def normalize(text: str) -> str:
    """Ids and clocks replaced by placeholders (``chatcmpl_<uuid>``, ``"created":0`` …)."""
    text = re.sub(rf"\b(chatcmpl|resp|msg|call)_{UUID}", r"\1_<uuid>", text)
    text = re.sub(r'"(created|created_at)":\d+', r'"\1":0', text)
    return text


__all__ = ["DATA", "TOKEN", "UUID", "Case", "load", "names", "normalize"]

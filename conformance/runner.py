"""Load transcripts and interpret them against a driver (the core in memory, or a live gateway).

The interpreter is written once, as coroutines, and is indifferent to time: a :class:`Driver`
decides what "wait up to 2 000 ms" means. The core driver never suspends (its coroutines finish
in one step, so core mode runs without an event loop and without sleeping); the live driver uses
Trio and real sockets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway_core.device import DeviceKey

from .match import Mismatch, match, substitute

TRANSCRIPTS = Path(__file__).with_name("transcripts")

#: Events any expectation may skip over unless a step says ``"strict": true``: broadcasts the
#: gateway sends on its own schedule (a live gateway interleaves them anywhere).
BACKGROUND_EVENTS = frozenset(
    {
        "tick",
        "health",
        "presence",
        "heartbeat",
        "update.available",
        "chat.metadata.changed",
        "sessions.changed",
        "voicewake.changed",
        "voicewake.routing.changed",
    }
)

DEFAULT_WITHIN_MS = 3000

DEFAULT_CLIENT = {"version": "1.0.0-conformance", "platform": "linux"}


# --------------------------------------------------------------------------- transcript model


@dataclass
class Case:
    """One transcript file: a header and its steps."""

    id: str
    title: str
    path: Path
    header: dict[str, Any]
    steps: list[dict[str, Any]]

    @property
    def auth(self) -> str:
        return self.header.get("gateway", {}).get("auth", "token")

    @property
    def requires(self) -> list[str]:
        return list(self.header.get("requires", []))


def load_cases(root: Path = TRANSCRIPTS) -> list[Case]:
    """Every ``*.jsonl`` under ``root``, sorted by path; the first line is the header."""
    cases: list[Case] = []
    for path in sorted(root.rglob("*.jsonl")):
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise ValueError(f"{path}: empty transcript")
        records = []
        for n, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
        header = records[0]
        if "case" not in header:
            raise ValueError(f"{path}: the first line must be a header with a 'case' key")
        cases.append(
            Case(
                id=str(header["case"]),
                title=header.get("title", ""),
                path=path,
                header=header,
                steps=records[1:],
            )
        )
    return cases


# --------------------------------------------------------------------------- drivers


@dataclass
class Item:
    """Something received on a connection: a frame (parsed JSON) or the close."""

    kind: str  # "frame" | "close"
    t_ms: float
    frame: Any = None
    code: int | None = None
    reason: str = ""


class Driver(Protocol):
    """What the interpreter needs from a mode."""

    name: str

    def now_ms(self) -> float: ...
    async def open(self, conn: str, *, peer: dict[str, Any] | None, origin: str | None) -> None: ...
    async def send(self, conn: str, data: str | bytes) -> None: ...
    async def send_burst(self, conn: str, items: list[str | bytes]) -> None: ...
    async def next_item(self, conn: str, timeout_ms: float) -> Item | None: ...
    async def wait(self, ms: float) -> None: ...
    async def close(self, conn: str, code: int, reason: str) -> None: ...
    async def gateway(self, action: dict[str, Any]) -> None: ...
    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """Outcome of one case."""

    case: str
    title: str
    status: str  # "passed" | "failed" | "skipped"
    detail: str = ""
    step: int | None = None
    duration_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"case": self.case, "title": self.title, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if self.step is not None:
            out["step"] = self.step
        out["durationMs"] = round(self.duration_ms, 1)
        return out


class StepFailed(Exception):
    """A step's expectation did not hold."""


@dataclass
class _ConnLog:
    received: list[Item] = field(default_factory=list)
    last_send_ms: float = 0.0
    closed: Item | None = None


# --------------------------------------------------------------------------- frames the steps build


def build_connect(spec: dict[str, Any], variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``send_connect`` → (request frame without device proof, device spec or None).

    ``client`` may be a shorthand string ``"id/mode"``; ``params`` (if given) merges over the
    defaults; every other key except ``id``/``device``/``frame`` is a params key.
    """
    spec = dict(spec)
    device = spec.pop("device", None)
    rid = spec.pop("id", "connect-1")
    extra_frame = spec.pop("frame", {})
    params: dict[str, Any] = {"minProtocol": 4, "maxProtocol": 4}
    client = spec.pop("client", "test/test")
    if isinstance(client, str):
        cid, _, cmode = client.partition("/")
        client = {"id": cid, **DEFAULT_CLIENT, "mode": cmode or cid}
    else:
        client = {**DEFAULT_CLIENT, **client}
    params["client"] = client
    params.update(spec.pop("params", {}))
    params.update(spec)
    params = {k: v for k, v in params.items() if v is not None}
    frame = {"type": "req", "id": rid, "method": "connect", "params": substitute(params, variables)}
    frame.update(extra_frame)
    return frame, device


def sign_device(frame: dict[str, Any], device: dict[str, Any], variables: dict[str, Any]) -> None:
    """Add a device proof to a connect frame, as the transcript's ``device`` spec describes.

    Keys: ``seed`` (64 hex chars; the key pair), ``version`` (v3|v2), ``nonce`` (what to send;
    default the challenge nonce), ``signNonce`` (what to sign; default ``nonce``), ``signedAtOffsetMs``
    (added to the challenge ts), ``id`` (override the device id), ``token`` (the signed token,
    default as the protocol says: auth.token ?? auth.deviceToken ?? "").
    """
    key = DeviceKey.from_seed(bytes.fromhex(device["seed"]))
    params = frame["params"]
    client = params["client"]
    challenge_nonce = variables.get("challenge_nonce", "")
    challenge_ts = int(variables.get("challenge_ts", 0))
    nonce = substitute(device.get("nonce", challenge_nonce), variables)
    sign_nonce = substitute(device.get("signNonce", nonce), variables)
    signed_at = challenge_ts + int(device.get("signedAtOffsetMs", 0))
    auth = params.get("auth") or {}
    token = device.get("token", auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken") or "")
    proof = key.proof(
        nonce=sign_nonce,
        signed_at=signed_at,
        client_id=client["id"],
        client_mode=client["mode"],
        role=params.get("role", "operator"),
        scopes=params.get("scopes", []),
        token=substitute(token, variables),
        platform=client.get("platform"),
        device_family=client.get("deviceFamily"),
        version=device.get("version", "v3"),
    )
    params["device"] = {
        "id": device.get("id", proof.id),
        "publicKey": proof.public_key,
        "signature": proof.signature,
        "signedAt": signed_at,
        "nonce": nonce,
    }


def render(step: dict[str, Any], variables: dict[str, Any]) -> str | bytes:
    """The wire data of a ``send`` / ``send_raw`` / ``send_connect`` step."""
    if "send_raw" in step:
        text = substitute(step["send_raw"], variables)
    elif "send_connect" in step:
        frame, device = build_connect(step["send_connect"], variables)
        if device is not None:
            sign_device(frame, device, variables)
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(substitute(step["send"], variables), separators=(",", ":"), ensure_ascii=False)
    pad = step.get("pad_to")
    if pad:
        text = text + " " * max(0, int(pad) - len(text.encode()))
    if step.get("binary"):
        return step["binary_bytes"].encode("latin-1") if "binary_bytes" in step else text.encode()
    return text


# --------------------------------------------------------------------------- interpreter


class Interpreter:
    """Runs one case's steps against a driver."""

    def __init__(self, case: Case, driver: Driver, variables: dict[str, Any]) -> None:
        self.case = case
        self.driver = driver
        self.vars = dict(variables)
        self.logs: dict[str, _ConnLog] = {}

    def _log(self, conn: str) -> _ConnLog:
        return self.logs.setdefault(conn, _ConnLog())

    async def run(self) -> None:
        for index, step in enumerate(self.case.steps, 1):
            try:
                await self.step(step)
            except StepFailed as exc:
                raise StepFailed(f"step {index}: {exc}") from None
            except Mismatch as exc:
                raise StepFailed(f"step {index}: {exc}") from None
            except KeyError as exc:
                raise StepFailed(f"step {index}: {exc.args[0]}") from None

    async def step(self, step: dict[str, Any]) -> None:
        conn = step.get("conn", "a")
        d = self.driver
        if "open" in step:
            conn = step["open"] if isinstance(step["open"], str) else conn
            await d.open(conn, peer=step.get("peer"), origin=step.get("origin"))
            self._log(conn)
            if step.get("challenge", True):
                await self._expect_challenge(conn, step)
        elif any(k in step for k in ("send", "send_raw", "send_connect")):
            data = render(step, self.vars)
            self._log(conn).last_send_ms = d.now_ms()
            await d.send(conn, data)
        elif "send_burst" in step:
            items = [render(s, self.vars) for s in step["send_burst"]]
            self._log(conn).last_send_ms = d.now_ms()
            await d.send_burst(conn, items)
        elif "expect" in step:
            await self._expect_frame(conn, step)
        elif "expect_all" in step:
            await self._expect_all(conn, step)
        elif "expect_close" in step:
            await self._expect_close(conn, step)
        elif "expect_silence_ms" in step:
            await self._expect_silence(conn, step)
        elif "expect_seq" in step:
            self._expect_seq(conn, step)
        elif "wait_ms" in step:
            await d.wait(float(step["wait_ms"]))
        elif "close" in step:
            spec = step["close"] or {}
            await d.close(conn, int(spec.get("code", 1000)), spec.get("reason", ""))
        elif "gateway" in step:
            await d.gateway(step["gateway"])
        elif "set" in step:
            self.vars.update(substitute(step["set"], self.vars))
        else:
            raise StepFailed(f"unknown step {sorted(step)}")

    async def _expect_challenge(self, conn: str, step: dict[str, Any]) -> None:
        """``open`` implies: the challenge arrives first; its nonce/ts become variables."""
        expected = {
            "type": "event",
            "event": "connect.challenge",
            "payload": {"nonce": "<nonempty>", "ts": "<int>", "capabilities": "<array>"},
            "seq": "<absent>",
        }
        item = await self._next_frame(conn, step, expected, strict=True)
        self.vars["challenge_nonce"] = item.frame["payload"]["nonce"]
        self.vars["challenge_ts"] = item.frame["payload"]["ts"]
        self.vars[f"{conn}.challenge_nonce"] = item.frame["payload"]["nonce"]

    async def _next_frame(self, conn: str, step: dict[str, Any], expected: Any, strict: bool = False) -> Item:
        within = float(step.get("within_ms", DEFAULT_WITHIN_MS))
        deadline = self.driver.now_ms() + within
        target_event = expected.get("event") if isinstance(expected, dict) else None
        skip = set(BACKGROUND_EVENTS) | set(step.get("skip_events", []))
        log = self._log(conn)
        while True:
            remaining = deadline - self.driver.now_ms()
            item = await self.driver.next_item(conn, max(0.0, remaining))
            if item is None:
                raise StepFailed(f"[{conn}] no frame within {within:.0f} ms; expected {_brief(expected)}")
            log.received.append(item)
            if item.kind == "close":
                log.closed = item
                raise StepFailed(
                    f"[{conn}] connection closed ({item.code} {item.reason!r}) while expecting {_brief(expected)}"
                )
            frame = item.frame
            is_skippable = (
                not strict
                and not step.get("strict")
                and isinstance(frame, dict)
                and frame.get("type") == "event"
                and frame.get("event") in skip
                and frame.get("event") != target_event
            )
            if is_skippable:
                continue
            scratch = dict(self.vars)
            try:
                match(substitute(expected, self.vars), frame, scratch)
            except Mismatch as exc:
                # "scan": let other events go by until one matches (responses still must match).
                if step.get("scan") and isinstance(frame, dict) and frame.get("type") == "event":
                    continue
                raise StepFailed(f"[{conn}] frame mismatch at {exc}; got {_brief(frame)}") from None
            self.vars = scratch
            return item

    async def _expect_frame(self, conn: str, step: dict[str, Any]) -> None:
        item = await self._next_frame(conn, step, step["expect"])
        log = self._log(conn)
        if "after_ms" in step:
            waited = item.t_ms - log.last_send_ms
            if waited + 1 < float(step["after_ms"]):
                raise StepFailed(f"[{conn}] answered after {waited:.0f} ms, expected at least {step['after_ms']} ms")

    async def _expect_all(self, conn: str, step: dict[str, Any]) -> None:
        """Every matcher must match one of the coming frames, in any order. Events that match
        none are skipped; a response that matches none fails the step."""
        pending = list(step["expect_all"])
        within = float(step.get("within_ms", DEFAULT_WITHIN_MS))
        deadline = self.driver.now_ms() + within
        log = self._log(conn)
        while pending:
            item = await self.driver.next_item(conn, max(0.0, deadline - self.driver.now_ms()))
            if item is None:
                raise StepFailed(f"[{conn}] within {within:.0f} ms, still expecting {_brief(pending)}")
            log.received.append(item)
            if item.kind == "close":
                log.closed = item
                raise StepFailed(f"[{conn}] connection closed ({item.code} {item.reason!r}) while expecting frames")
            for i, expected in enumerate(pending):
                scratch = dict(self.vars)
                try:
                    match(substitute(expected, self.vars), item.frame, scratch)
                except Mismatch:
                    continue
                self.vars = scratch
                del pending[i]
                break
            else:
                frame = item.frame
                if not (isinstance(frame, dict) and frame.get("type") == "event"):
                    raise StepFailed(f"[{conn}] unexpected frame {_brief(frame)}; still expecting {_brief(pending)}")

    async def _expect_close(self, conn: str, step: dict[str, Any]) -> None:
        spec = substitute(step["expect_close"], self.vars)
        within = float(step.get("within_ms", DEFAULT_WITHIN_MS))
        deadline = self.driver.now_ms() + within
        log = self._log(conn)
        while True:
            if log.closed is not None:
                item = log.closed
            else:
                item_or_none = await self.driver.next_item(conn, max(0.0, deadline - self.driver.now_ms()))
                if item_or_none is None:
                    raise StepFailed(f"[{conn}] not closed within {within:.0f} ms")
                item = item_or_none
                log.received.append(item)
            if item.kind == "frame":
                frame = item.frame
                if isinstance(frame, dict) and frame.get("type") == "event" and frame.get("event") in BACKGROUND_EVENTS:
                    continue
                raise StepFailed(f"[{conn}] expected the close, got a frame {_brief(frame)}")
            log.closed = item
            if "code" in spec:
                match(spec["code"], item.code, self.vars, "close.code")
            if "reason" in spec:
                match(spec["reason"], item.reason, self.vars, "close.reason")
            if "after_ms" in step:
                waited = item.t_ms - log.last_send_ms
                if waited + 1 < float(step["after_ms"]):
                    raise StepFailed(f"[{conn}] closed after {waited:.0f} ms, expected at least {step['after_ms']} ms")
            return

    async def _expect_silence(self, conn: str, step: dict[str, Any]) -> None:
        ms = float(step["expect_silence_ms"])
        deadline = self.driver.now_ms() + ms
        log = self._log(conn)
        allow = set(step.get("allow_events", []))
        while True:
            remaining = deadline - self.driver.now_ms()
            if remaining <= 0:
                return
            item = await self.driver.next_item(conn, remaining)
            if item is None:
                return
            log.received.append(item)
            if item.kind == "close":
                log.closed = item
                raise StepFailed(
                    f"[{conn}] closed ({item.code} {item.reason!r}) during {ms:.0f} ms of expected silence"
                )
            frame = item.frame
            if isinstance(frame, dict) and frame.get("type") == "event" and frame.get("event") in allow:
                continue
            raise StepFailed(f"[{conn}] expected silence, got {_brief(frame)}")

    def _expect_seq(self, conn: str, step: dict[str, Any]) -> None:
        """Broadcast ``seq`` values seen on ``conn`` are 1, 2, 3, … with no gap."""
        seqs = [
            it.frame["seq"]
            for it in self._log(conn).received
            if it.kind == "frame" and isinstance(it.frame, dict) and "seq" in it.frame
        ]
        want_min = int(step["expect_seq"].get("min_count", 1)) if isinstance(step["expect_seq"], dict) else 1
        if len(seqs) < want_min:
            raise StepFailed(f"[{conn}] saw {len(seqs)} sequenced events, expected at least {want_min}")
        if seqs != list(range(1, len(seqs) + 1)):
            raise StepFailed(f"[{conn}] seq values {seqs} are not 1..{len(seqs)}")


def _brief(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 300 else text[:297] + "..."


def select(cases: Iterable[Case], only: str | None) -> list[Case]:
    """Filter by ``--only``: a substring or fnmatch pattern over the case id and file name."""
    import fnmatch

    out = []
    for case in cases:
        names = (case.id, case.path.stem, case.title)
        if only is None or any(only in n or fnmatch.fnmatch(n, only) for n in names):
            out.append(case)
    return out


__all__ = ["BACKGROUND_EVENTS", "Case", "Driver", "Interpreter", "Item", "Result", "StepFailed", "load_cases", "select"]

"""Outbound delivery: one worker per account sending its queued replies in strict order.

Each attempt is marked before it goes out (so a crash leaves it ambiguous, never blindly
replayed), the pure retry decision (``gateway_core.channels.delivery``) is applied after it (a 429
``retry_after`` holds the whole account) and the outcome goes into the account's status. A worker
waits for its account's transport (set by the running account) and is woken when new items are
queued or when a retry falls due.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.channels import delivery as D
from gateway_core.channels.inbound import OutboundItem
from gateway_core.channels.state import ChannelsState

from .. import _runtime
from .base import Transport

if TYPE_CHECKING:
    from .store import AsyncChannelStore

SETTLED = ("sent", "failed", "unknown")


class Outbox:
    """The accounts' outbox workers and the transports they send through."""

    def __init__(self, state: ChannelsState, log: Any) -> None:
        self.state = state
        self.log = log
        #: Set by the manager once the store is open and while its nursery runs.
        self.store: AsyncChannelStore | None = None
        self.nursery: trio.Nursery | None = None
        self.transports: dict[tuple[str, str], Transport] = {}
        self._transport_events: dict[tuple[str, str], trio.Event] = {}
        self._wake: dict[tuple[str, str], trio.Event] = {}
        self._workers: set[tuple[str, str]] = set()
        self._settled = trio.Event()

    def set_transport(self, key: tuple[str, str], transport: Transport | None) -> None:
        """The account's way out (``None`` while it is not connected); a new one wakes its worker."""
        if transport is None:
            self.transports.pop(key, None)
            return
        self.transports[key] = transport
        event = self._transport_events.pop(key, None)
        if event is not None:
            event.set()
        self.wake(key)

    def ensure_worker(self, channel: str, account_id: str) -> None:
        """Start the account's worker unless it runs already (or there is no nursery yet)."""
        key = (channel, account_id)
        if key in self._workers or self.nursery is None:
            return
        self._workers.add(key)
        self.nursery.start_soon(self._deliver, key)

    def queued(self, items: Iterable[OutboundItem]) -> None:
        """Items were put in the outbox: make sure their accounts' workers run and look."""
        for key in {(i.channel, i.account_id) for i in items}:
            self.ensure_worker(*key)
            self.wake(key)

    def wake(self, key: tuple[str, str]) -> None:
        event = self._wake.pop(key, None)
        if event is not None:
            event.set()

    async def _wait_wake(self, key: tuple[str, str], until_ms: int | None) -> None:
        event = self._wake.setdefault(key, trio.Event())
        timeout = 60.0 if until_ms is None else max(0.0, (until_ms - _runtime.wall_ms()) / 1000)
        with trio.move_on_after(timeout):
            await event.wait()

    async def await_delivery(self, keys: list[str], timeout_s: float) -> dict[str, Any]:
        """The outbox rows of ``keys`` once all are settled, or as they are after ``timeout_s``."""
        assert self.store is not None
        rows: dict[str, Any] = {}
        with trio.move_on_after(timeout_s):
            while True:
                settled = self._settled
                rows = await self.store.call("outbox_get", keys)
                if all(rows.get(k, {}).get("state") in SETTLED for k in keys):
                    return rows
                await settled.wait()
        return rows

    async def _deliver(self, key: tuple[str, str]) -> None:
        """Send the account's queued messages in order, one attempt at a time."""
        assert self.store is not None
        channel, account_id = key
        rules = self.state.rules.get(channel)
        while True:
            transport = self.transports.get(key)
            if transport is None:
                event = self._transport_events.setdefault(key, trio.Event())
                await event.wait()
                continue
            row = await self.store.call("outbox_head", channel, account_id)
            if row is None:
                await self._wait_wake(key, None)
                continue
            now = _runtime.wall_ms()
            if row["next_at"] > now:
                await self._wait_wake(key, row["next_at"])
                continue
            await self.store.call("outbox_sending", row["seq"])
            item = OutboundItem(
                channel=channel, account_id=account_id, target=row["target"], text=row["text"], key=row["key"], kind=row["kind"],
                group=row["grp"], index=row["idx"], count=row["cnt"], reply_to=row["reply_to"], thread_id=row["thread_id"],
                parse_mode=row["parse_mode"],
            )
            try:
                outcome = await transport.send(item)
            except Exception as exc:  # noqa: BLE001 - a transport bug is an ambiguous attempt
                outcome = D.Outcome(kind="ambiguous", detail=f"{type(exc).__name__}: {exc}")
            now = _runtime.wall_ms()
            decision = D.decide(outcome, attempts=row["attempts"] + 1, created_ms=row["created_at"], now_ms=now)
            notice = self.notice_for(row, rules) if decision.notice and row["kind"] != "notice" else None
            await self.store.call("outbox_settle", row["seq"], decision, outcome.message_id, notice)
            if decision.state == "sent":
                self.state.patch(channel, account_id, {"lastOutboundAt": now})
            elif decision.state in ("failed", "unknown"):
                self.log.warn(channel, f"[{account_id}] send {row['key']} {decision.state}: {decision.error}")
            if outcome.kind == "rate_limited":
                self.log.info(channel, f"[{account_id}] rate limited; retrying in {outcome.retry_after_s or 0:g}s")
            settled, self._settled = self._settled, trio.Event()
            settled.set()

    def notice_for(self, row: dict[str, Any], rules: Any = None) -> OutboundItem:
        """The unconfirmed-reply notice for an outbox row whose delivery is not known."""
        rules = rules or self.state.rules.get(row["channel"])
        text = D.UNCONFIRMED_NOTICE
        if rules is not None:
            chunks = rules.render(text, row["target"], {})
            text = chunks[0] if chunks else text
        return OutboundItem(
            channel=row["channel"], account_id=row["account_id"], target=row["target"], text=text,
            key=f"notice:{row['key']}", kind="notice", thread_id=row.get("thread_id"),
            parse_mode=rules.parse_mode if rules is not None else None,
        )

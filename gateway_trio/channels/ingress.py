"""Inbound messages: queued durably, then handed to the pure pipeline one per conversation.

The next message of a conversation goes when the previous one holds its session lane (the
pipeline's :class:`~gateway_core.channels.effects.IngressAdopted` output), so a conversation's
messages reach the agent in order while different conversations proceed side by side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway_core.channels.inbound import Inbound
from gateway_core.channels.pipeline import IngressRow, conversation_key, inbound_job

from .. import _runtime

if TYPE_CHECKING:
    from .store import AsyncChannelStore


class Ingress:
    """The per-conversation queues of accepted inbound messages."""

    def __init__(self, app: Any, flush: Callable[[], None]) -> None:
        self.app = app
        self._flush = flush
        #: Set by the manager once the store is open.
        self.store: AsyncChannelStore | None = None
        self._queues: dict[str, deque[IngressRow]] = {}
        self._busy: set[str] = set()
        self._key_conv: dict[str, str] = {}

    async def submit(self, channel: str, account_id: str, msgs: list[Inbound], offset: tuple[str, str] | None = None) -> None:
        """Queue ``msgs`` durably (with the poll offset, in one transaction), then dispatch the new ones."""
        assert self.store is not None
        stored = (channel, account_id, offset[0], offset[1]) if offset is not None else None
        rows = await self.store.call("ingress_put", msgs, stored)
        for row in rows:
            self.enqueue(row)
        if rows:
            self._flush()

    def enqueue(self, row: IngressRow) -> None:
        """Queue one accepted message behind its conversation's earlier ones."""
        conv = conversation_key(row.msg)
        self._queues.setdefault(conv, deque()).append(row)
        if conv not in self._busy:
            self._dispatch_next(conv)

    def adopted(self, key: str) -> None:
        """Message ``key`` holds its session lane: its conversation's next message may go."""
        conv = self._key_conv.pop(key, None)
        if conv is not None:
            self._busy.discard(conv)
            self._dispatch_next(conv)

    def _dispatch_next(self, conv: str) -> None:
        queue = self._queues.get(conv)
        if not queue:
            self._queues.pop(conv, None)
            self._busy.discard(conv)
            return
        row = queue.popleft()
        self._busy.add(conv)
        self._key_conv[row.msg.key] = conv
        job = inbound_job(self.app, row, _runtime.now(), _runtime.wall_ms())
        self.app.spawn(job, f"inbound {row.msg.key}")

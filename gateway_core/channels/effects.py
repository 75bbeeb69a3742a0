"""Effects and outputs of the channel layer (the host performs them; see ``gateway_core.app.effects``).

Blocking effects (yielded by the inbound pipeline and the ``channels.*``/``send`` handlers):

* :class:`ChannelCall` — a call into the host's durable channel store (ingress queue, outbox,
  pairing rows), run in one transaction off the event loop;
* :class:`ChannelProbe` — live checks of some accounts (``channels.status {probe: true}``);
* :class:`ChannelControl` — start, stop or log out an account runtime;
* :class:`AwaitDelivery` — wait until outbox messages are sent (or failed), for ``send``.

Immediate outputs (queued on the app's outbox): :class:`ChannelTyping` (show "typing…" while a run
is active) and :class:`IngressAdopted` (the conversation's next queued message may go ahead: this
one holds its place in the session lane).
"""

from __future__ import annotations

from typing import Any

from ..app.effects import Effect, Output


class ChannelCall(Effect, frozen=True):
    """Call ``method`` of the host's channel store (``gateway_trio.channels.store.ChannelStore``)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}


class ChannelProbe(Effect, frozen=True):
    """Probe ``targets`` (``(channel, account)`` pairs) within ``timeout_ms``: ``{(ch, acc): probe}``."""

    targets: tuple[tuple[str, str], ...]
    timeout_ms: int


class ChannelControl(Effect, frozen=True):
    """``action`` (``start`` | ``stop`` | ``logout``) one account; the result dict of the RPC."""

    action: str
    channel: str
    account_id: str


class AwaitDelivery(Effect, frozen=True):
    """Resume when every outbox item ``keys`` has settled or after ``timeout_s``: ``{key: row}``."""

    keys: tuple[str, ...]
    timeout_s: float


class ChannelTyping(Output, frozen=True):
    """Show a typing indicator in ``target`` while run ``run_id`` is active."""

    channel: str
    account_id: str
    target: str
    run_id: str


class IngressAdopted(Output, frozen=True):
    """Inbound ``key`` holds its place in the session lane: its conversation's next message may start."""

    key: str


__all__ = ["AwaitDelivery", "ChannelCall", "ChannelControl", "ChannelProbe", "ChannelTyping", "IngressAdopted"]

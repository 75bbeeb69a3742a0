"""The normalized inbound message (http-agents-channels.md §5.3 step 2) and the outbound item.

Every channel turns its platform event into an :class:`Inbound` before anything else looks at it:
policy, commands, routing and dispatch see only these facts. ``sender_id`` is the stable identity
used for authorization (a Telegram user id, an IRC ``nick!user@host``); display names travel along
for the prompt and the logs but never decide access. ``event_id`` is the platform's own id of the
event (Telegram ``update_id``; IRC has none, so its channel makes one per connection): the durable
ingress queue is idempotent on ``(channel, account, event_id)``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import Struct

ChatType = Literal["direct", "group", "channel"]
CHAT_TYPES: Final = ("direct", "group", "channel")


class Inbound(Struct, frozen=True, kw_only=True):
    """One accepted inbound message, as facts."""

    channel: str
    account_id: str
    event_id: str
    chat_type: ChatType
    #: The conversation: the DM peer (user id / nick) or the group / channel id.
    peer_id: str
    #: Who wrote it: the stable id authorization uses.
    sender_id: str
    sender_name: str = ""
    sender_username: str = ""
    text: str = ""
    #: The platform's id of the message itself (reply threading); not the event id.
    message_id: str | None = None
    reply_to: str | None = None
    thread_id: str | None = None
    #: The platform marked the bot as addressed (a Telegram mention entity, the IRC nick in text).
    mentioned: bool = False
    #: Where a reply goes (a Telegram chat id, an IRC nick or ``#channel``).
    reply_target: str = ""
    ts: int = 0
    #: Channel-specific extras kept with the row (e.g. the bot name a Telegram command addressed).
    extra: dict[str, Any] = {}

    @property
    def is_group(self) -> bool:
        return self.chat_type != "direct"

    @property
    def key(self) -> str:
        """The ingress queue's idempotency key."""
        return f"{self.channel}:{self.account_id}:{self.event_id}"


class OutboundItem(Struct, frozen=True, kw_only=True):
    """One message to send: a chunk of a reply, a pairing code, a notice, an operator ``send``.

    ``key`` makes the durable outbox idempotent: the same key is queued (and delivered) once.
    ``group`` ties the chunks of one reply together (``index`` of ``count``).
    """

    channel: str
    account_id: str
    target: str
    text: str
    key: str
    kind: str = "reply"  # reply | pairing | notice | send | command
    group: str = ""
    index: int = 0
    count: int = 1
    reply_to: str | None = None
    thread_id: str | None = None
    #: Formatting already applied by the channel (e.g. Telegram HTML); the adapter sends as is.
    parse_mode: str | None = None


_INBOUND_ENCODER = msgspec.json.Encoder()
_INBOUND_DECODER = msgspec.json.Decoder(Inbound)


def encode_inbound(msg: Inbound) -> bytes:
    return _INBOUND_ENCODER.encode(msg)


def decode_inbound(data: bytes | str) -> Inbound:
    return _INBOUND_DECODER.decode(data)


__all__ = ["CHAT_TYPES", "ChatType", "Inbound", "OutboundItem", "decode_inbound", "encode_inbound"]

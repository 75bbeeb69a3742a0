"""Channels, pure (http-agents-channels.md §5): chat platforms in, the agent, replies out.

Modules, in the order a message meets them:

* :mod:`.inbound` — the normalized :class:`Inbound` message and the :class:`OutboundItem`;
* :mod:`.telegram`, :mod:`.irc` — the platforms' pure parts (Bot API bodies and answers; a sans-IO
  IRC client); :mod:`.a2a` — the A2A JSON-RPC side (tasks, errors, peer auth, rate limits);
* :mod:`.accounts` — sections, accounts and access settings from the config;
* :mod:`.policy` — who is admitted (DM policies, group allowlists, mention gating);
* :mod:`.pairing` — pairing requests and approvals (codes passed in, never drawn here);
* :mod:`.commands` — ``/status``, ``/new``, ``/reset``, …;
* :mod:`.routing` — bindings → agent, ``dmScope`` → session key;
* :mod:`.pipeline` — the job that takes one queued message through all of that and the agent;
* :mod:`.chunking` — message size limits and wire rendering; :mod:`.delivery` — outbox retries;
* :mod:`.status` — account snapshots and their health; :mod:`.state` — what the app keeps.

The Trio side (transports, the durable queues, supervision) is ``gateway_trio.channels``.
"""

from .delivery import Decision, Outcome
from .effects import AwaitDelivery, ChannelCall, ChannelControl, ChannelProbe, ChannelTyping, IngressAdopted
from .inbound import Inbound, OutboundItem, decode_inbound, encode_inbound
from .pipeline import IngressRow, channel_run_id, conversation_key, inbound_job, is_channel_run
from .rules import BUILTIN, ChannelRules, IrcRules, TelegramRules
from .state import ChannelsState, channels_state
from .status import ChannelMeta, health_state

__all__ = [
    "BUILTIN",
    "AwaitDelivery",
    "ChannelCall",
    "ChannelControl",
    "ChannelMeta",
    "ChannelProbe",
    "ChannelRules",
    "ChannelTyping",
    "ChannelsState",
    "Decision",
    "Inbound",
    "IngressAdopted",
    "IngressRow",
    "IrcRules",
    "Outcome",
    "OutboundItem",
    "TelegramRules",
    "channel_run_id",
    "channels_state",
    "conversation_key",
    "decode_inbound",
    "encode_inbound",
    "health_state",
    "inbound_job",
    "is_channel_run",
]

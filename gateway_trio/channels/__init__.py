"""Channels on Trio: the plugin contract, the built-in Telegram and IRC channels, the durable store
and the manager that supervises accounts (the pure side is ``gateway_core.channels``)."""

from .base import AccountContext, ChannelFailure, ChannelPlugin, Transport
from .manager import ChannelManager, bootstrap_owner_file, skip_channels
from .store import AsyncChannelStore, ChannelStore

__all__ = [
    "AccountContext",
    "AsyncChannelStore",
    "ChannelFailure",
    "ChannelManager",
    "ChannelPlugin",
    "ChannelStore",
    "Transport",
    "bootstrap_owner_file",
    "skip_channels",
]

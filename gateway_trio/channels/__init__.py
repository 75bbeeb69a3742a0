"""Channels on Trio: the plugin contract, the built-in Telegram and IRC channels, the durable store
and the manager that supervises accounts (the pure side is ``gateway_core.channels``)."""

from typing import Any

from .base import AccountContext, ChannelFailure, ChannelPlugin, Transport
from .manager import ChannelManager, bootstrap_owner_file, skip_channels


def __getattr__(name: str) -> Any:
    """The store classes load on first use (with sqlite3), not with the package."""
    if name in ("AsyncChannelStore", "ChannelStore"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

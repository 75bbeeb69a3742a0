"""Which channel plugins this gateway can run: the built-in ones and the ``openclaw.channels`` entry points.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."openclaw.channels"]
    mychat = "mychat_openclaw:MyChatChannel"

The entry point names a :class:`~gateway_trio.channels.base.ChannelPlugin` subclass (or a
zero-argument factory returning an instance). A plugin that fails to load is logged and skipped;
it never stops the gateway. A plugin whose id collides with a built-in one is ignored (the
built-in wins), so installing a package cannot silently replace the Telegram channel.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .base import ChannelPlugin

GROUP = "openclaw.channels"


def builtin() -> list[ChannelPlugin]:
    from .irc import IrcChannel
    from .telegram import TelegramChannel

    return [TelegramChannel(), IrcChannel()]


def load(log: Any = None) -> dict[str, ChannelPlugin]:
    """Built-in plugins, then the entry points' (by channel id)."""
    plugins = {p.id: p for p in builtin()}
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
            plugin = obj() if callable(obj) else obj
            if not isinstance(plugin, ChannelPlugin):
                raise TypeError(f"{ep.value} is not a ChannelPlugin")
        except Exception as exc:  # noqa: BLE001 - a broken plugin is skipped, never fatal
            if log is not None:
                log.warn("channels", f"channel plugin {ep.name} ({ep.value}) failed to load: {exc}")
            continue
        if plugin.id in plugins:
            if log is not None:
                log.warn("channels", f"channel plugin {ep.name} ignored: channel id {plugin.id!r} is built in")
            continue
        plugins[plugin.id] = plugin
        if log is not None:
            log.info("channels", f"channel plugin {plugin.id} loaded from {ep.value}")
    return plugins


__all__ = ["GROUP", "builtin", "load"]

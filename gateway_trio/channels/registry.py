"""Which channel plugins this gateway can run: the built-in ones and the ``openclaw.channels`` entry points.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."openclaw.channels"]
    mychat = "mychat_openclaw:MyChatChannel"

The entry point names a :class:`~gateway_trio.channels.base.ChannelPlugin` subclass (or a
zero-argument factory returning an instance). A plugin that fails to load is logged and skipped;
it never stops the gateway. A plugin whose id collides with a built-in one is ignored (the
built-in wins), so installing a package cannot silently replace the Telegram channel.

The gateway resolves plugins on first need (:class:`Plugins`): a built-in module is imported when
its channel is first used, and the installed packages' metadata is scanned once, when a channel
that is not built in is asked for. A gateway with no such channel configured never pays for the
scan (~15 ms of start-up) or the modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .base import ChannelPlugin

GROUP = "openclaw.channels"

#: Built-in channel id → (module, class), imported when the channel is first used.
BUILTIN: dict[str, tuple[str, str]] = {
    "telegram": ("gateway_trio.channels.telegram", "TelegramChannel"),
    "irc": ("gateway_trio.channels.irc", "IrcChannel"),
}


def entry_points(group: str) -> Any:
    """The installed entry points of ``group`` (``importlib.metadata`` is imported only here)."""
    from importlib import metadata

    return metadata.entry_points(group=group)


def _builtin(channel_id: str) -> ChannelPlugin:
    module, name = BUILTIN[channel_id]
    plugin: ChannelPlugin = getattr(importlib.import_module(module), name)()
    return plugin


class Plugins(Mapping[str, ChannelPlugin]):
    """The plugins by channel id (built-in first, then the entry points'), each resolved on first need.

    ``on_found`` is told about every plugin the entry-point scan adds (the manager registers its
    rules with the app).
    """

    def __init__(self, log: Any = None, on_found: Callable[[ChannelPlugin], None] | None = None) -> None:
        self.log = log
        self.on_found = on_found
        self._builtin: dict[str, ChannelPlugin] = {}
        self._found: dict[str, ChannelPlugin] = {}
        self.scanned = False

    def __getitem__(self, channel_id: str) -> ChannelPlugin:
        if channel_id in BUILTIN:
            plugin = self._builtin.get(channel_id)
            if plugin is None:
                plugin = self._builtin[channel_id] = _builtin(channel_id)
            return plugin
        self.scan()
        return self._found[channel_id]

    def __contains__(self, channel_id: object) -> bool:
        if channel_id in BUILTIN:
            return True
        self.scan()
        return channel_id in self._found

    def __iter__(self) -> Iterator[str]:
        self.scan()
        return iter([*BUILTIN, *self._found])

    def __len__(self) -> int:
        self.scan()
        return len(BUILTIN) + len(self._found)

    def scan(self) -> None:
        """Load the ``openclaw.channels`` entry points (once)."""
        if self.scanned:
            return
        self.scanned = True
        log = self.log
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
            if plugin.id in BUILTIN or plugin.id in self._found:
                if log is not None:
                    log.warn("channels", f"channel plugin {ep.name} ignored: channel id {plugin.id!r} is built in")
                continue
            self._found[plugin.id] = plugin
            if log is not None:
                log.info("channels", f"channel plugin {plugin.id} loaded from {ep.value}")
            if self.on_found is not None:
                self.on_found(plugin)


def load(log: Any = None) -> dict[str, ChannelPlugin]:
    """Every plugin now, built-in ones then the entry points' (by channel id)."""
    plugins = Plugins(log)
    return {cid: plugins[cid] for cid in plugins}


__all__ = ["BUILTIN", "GROUP", "Plugins", "load"]

"""The channel contract: what a channel plugin implements, and what the gateway gives its accounts.

A plugin is a :class:`ChannelPlugin` subclass (built in: Telegram, IRC; third-party ones are
found through the ``openclaw.channels`` entry point group, see ``registry``). It supplies:

* ``rules`` — its pure :class:`~gateway_core.channels.rules.ChannelRules` (meta, id
  normalization, pairing text, chunking and rendering);
* :meth:`~ChannelPlugin.inspect` — the account's config, inspected without secrets
  (``configured``, ``tokenSource``, ``mode``, issues), synchronously;
* :meth:`~ChannelPlugin.run_account` — the account's long-running runtime. The gateway runs it in
  its own task under the gateway's nursery, inside a cancel scope (stopping the account cancels it),
  and restarts it with backoff when it raises (:class:`ChannelFailure` with ``fatal=True`` stops
  the retries: a wrong token will not fix itself). Through its :class:`AccountContext` it patches
  its status, queues inbound messages durably (:meth:`AccountContext.submit` returns once they are
  committed, so a poll offset may advance only then), and publishes its :class:`Transport` while
  it can send;
* :meth:`~ChannelPlugin.probe` — a live check for ``channels.status {probe: true}``;
* :meth:`~ChannelPlugin.replayable` — whether a message queued before a restart may still be
  handled (IRC: not a DM from an old connection, nicks change owners).

Outbound messages never go through the plugin directly: the gateway's outbox worker takes them
from the durable outbox in order and calls the account's :meth:`Transport.send`, which reports an
:class:`~gateway_core.channels.delivery.Outcome`; retries, notices and receipts are the gateway's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from gateway_core.channels import accounts as A
from gateway_core.channels.delivery import Outcome
from gateway_core.channels.inbound import Inbound, OutboundItem
from gateway_core.channels.rules import ChannelRules


class ChannelFailure(Exception):
    """An account runtime cannot go on. ``fatal``: do not retry (bad credentials, bad config)."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal


class Transport(ABC):
    """How a running account sends (published by the runtime while it can)."""

    @abstractmethod
    async def send(self, item: OutboundItem) -> Outcome:
        """Send one message; never raises for platform failures (they are outcomes)."""

    async def typing(self, target: str) -> None:  # noqa: B027 - optional, a no-op unless overridden
        """Show "typing…" in ``target`` (optional; failures are ignored)."""

    #: Whether :meth:`typing` does anything (the gateway keeps it alive only then).
    supports_typing: bool = False


class AccountContext:
    """What the gateway gives one account runtime (one per start)."""

    def __init__(
        self,
        *,
        channel: str,
        account_id: str,
        config: dict[str, Any],
        submit: Callable[[list[Inbound], tuple[str, str] | None], Any],
        get_offset: Callable[[str], Any],
        patch: Callable[[dict[str, Any]], None],
        set_transport: Callable[[Transport | None], None],
        log: Any,
        now_ms: Callable[[], int],
        env: dict[str, str],
    ) -> None:
        self.channel = channel
        self.account_id = account_id
        #: The whole gateway config at start (the account's effective settings: :attr:`account`).
        self.config = config
        self.section = A.section(config, channel) or {}
        self.account = A.account_config(A.section(config, channel), account_id)
        self.is_default = account_id == A.default_account_id(A.section(config, channel))
        self.env = env
        self._submit = submit
        self._get_offset = get_offset
        self._patch = patch
        self._set_transport = set_transport
        self._log = log
        self.now_ms = now_ms

    async def submit(self, msgs: list[Inbound], offset: tuple[str, str] | None = None) -> None:
        """Queue ``msgs`` durably (and, in the same transaction, the offset ``(name, value)``);
        returns once committed. Duplicates (same event id) are ignored."""
        await self._submit(msgs, offset)

    async def offset(self, name: str) -> str | None:
        return await self._get_offset(name)

    def set_status(self, **patch: Any) -> None:
        self._patch(patch)

    def patch(self, patch: dict[str, Any]) -> None:
        self._patch(patch)

    def set_transport(self, transport: Transport | None) -> None:
        self._set_transport(transport)

    def log(self, level: str, message: str) -> None:
        getattr(self._log, level, self._log.info)(self.channel, f"[{self.account_id}] {message}")


class ChannelPlugin(ABC):
    """One kind of channel."""

    rules: ChannelRules
    #: Seconds between restarts of a failing account (the last value repeats).
    restart_backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

    @property
    def id(self) -> str:
        return self.rules.meta.id

    def account_ids(self, config: dict[str, Any] | None) -> list[str]:
        return A.account_ids(A.section(config, self.id))

    @abstractmethod
    def inspect(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str]) -> dict[str, Any]:
        """Secret-free facts about the account's config: at least ``configured``; also e.g.
        ``tokenSource``, ``mode`` and ``issues`` (status issues, §5.6)."""

    @abstractmethod
    async def run_account(self, ctx: AccountContext) -> None:
        """Run the account until cancelled (or until it fails: raise)."""

    async def probe(self, config: dict[str, Any] | None, account_id: str, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
        return {"ok": False, "error": "probe not supported"}

    def replayable(self, msg: Inbound) -> bool:
        return True


__all__ = ["AccountContext", "ChannelFailure", "ChannelPlugin", "Transport"]

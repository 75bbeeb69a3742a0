"""The host's effects: what a job's ``yield`` asks for, carried out on Trio.

Files and log tails run off the event loop (``trio.to_thread``), sleeps and run waits on Trio's
clock, the agent runtime's effects (model streams, the session store, lanes) in
:class:`~gateway_trio.agent_host.AgentHost`. An ``OSError`` becomes :class:`EffectFailed` with the
reason in words; the host path stays in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from gateway_core import SharedSecret
from gateway_core.agents.effects import TurnWritten
from gateway_core.app import EffectFailed, KeepDecisions, ReadFile, ResolveSecrets, Sleep, TailLog, WaitRun, WriteFile
from gateway_core.services import StorageError

from . import _runtime
from .runtime import record_filter, tail
from .state import atomic_write, describe_os_error

if TYPE_CHECKING:
    from .app import Gateway
    from .runtime import GatewaySettings

#: ``logs.tail`` reads at once, gateway-wide: each holds up to 1 MB of lines (2-3 MB as str).
LOG_READERS = 1


def _read_optional(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _write(path: str, data: bytes, backup: bool, mode: int) -> None:
    target = Path(path)
    if backup and target.exists():
        atomic_write(target.with_name(target.name + ".bak"), target.read_bytes())
    atomic_write(target, data, mode)


def failure(kind: str, exc: OSError) -> EffectFailed:
    """An OSError as the wire may see it: the reason in words, never the host path."""
    return EffectFailed(kind, describe_os_error(exc), str(exc))


class Effects:
    """Performs one gateway's effects (``perform``); run waits are woken by :meth:`run_settled`."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.log_readers = trio.CapacityLimiter(LOG_READERS)
        self._run_events: dict[str, trio.Event] = {}

    def run_settled(self, run_id: str) -> None:
        event = self._run_events.pop(run_id, None)
        if event is not None:
            event.set()

    def now(self, effect: Any, owner: int) -> Any:
        """The effect's answer when it needs no waiting, else ``_runtime.LATER`` (then :meth:`perform`)."""
        agents = self.gw.agents
        if agents.handles(effect):
            return agents.now(effect, owner)
        if type(effect) is TurnWritten:  # answered at once unless a streaming route follows the run
            return _runtime.LATER if effect.run_id in self.gw.watches else None
        return _runtime.LATER

    async def perform(self, effect: Any, owner: int) -> Any:
        gw = self.gw
        if gw.agents.handles(effect):
            return await gw.agents.perform(effect, owner)
        if type(effect) is TurnWritten:
            await gw.turn_written(effect)
            return None
        if gw.channels.handles(effect):
            return await gw.channels.perform(effect)
        if isinstance(effect, Sleep):
            await trio.sleep(effect.seconds)
            return None
        if isinstance(effect, WaitRun):
            event = self._run_events.setdefault(effect.run_id, trio.Event())
            with trio.move_on_after(effect.timeout_s):
                await event.wait()
            return event.is_set()
        if isinstance(effect, ReadFile):
            try:
                return await trio.to_thread.run_sync(_read_optional, effect.path)
            except OSError as exc:
                raise failure("storage", exc) from None
        if isinstance(effect, WriteFile):
            try:
                await trio.to_thread.run_sync(_write, effect.path, effect.data, effect.backup, effect.mode)
            except OSError as exc:
                gw.storage.failed("config", exc)  # the cause once in the log, with its path
                raise failure("storage", exc) from None
            gw.storage.ok("config")
            return None
        if isinstance(effect, TailLog):
            # Only this gateway's records: the file may be shared by every gateway on the machine.
            path = gw.log.path
            keep = record_filter(state_dir=gw.settings.paths.state_dir, since_epoch_ms=effect.since_ms)
            try:
                return await trio.to_thread.run_sync(
                    lambda: tail(path, cursor=effect.cursor, limit=effect.limit, max_bytes=effect.max_bytes, keep=keep),
                    limiter=self.log_readers,
                    abandon_on_cancel=True,
                )
            except OSError as exc:
                raise failure("io", exc) from None
        if isinstance(effect, ResolveSecrets):  # exec SecretRefs run commands: off the loop
            return await trio.to_thread.run_sync(self.resolve_secrets, abandon_on_cancel=True)
        if isinstance(effect, KeepDecisions):
            services = gw.services
            services.apply(effect.decisions)
            try:
                await services.persist(services.staged)
            except StorageError as exc:
                raise EffectFailed("storage", str(exc)) from None
            return None
        raise EffectFailed("unsupported", f"{type(effect).__name__} is not supported by this host")

    def resolve_secrets(self) -> SharedSecret | None:
        reload_state = self.gw.reload_state
        resolver: Callable[[], GatewaySettings] | None = reload_state.resolve_again if reload_state is not None else None
        if resolver is None:
            return None
        try:
            new = resolver()
        except Exception as exc:  # noqa: BLE001 - any resolution failure keeps the old credential
            raise EffectFailed("secrets", str(getattr(exc, "message", exc))) from None
        return SharedSecret(mode=new.auth_mode, token=new.token, password=new.password)  # type: ignore[arg-type]


__all__ = ["LOG_READERS", "Effects", "failure"]

"""The in-memory host for channel tests: the conformance simulator plus the channel effects.

:class:`ChannelSim` is ``conformance.core_driver.SimHost`` (the real app and handlers, the offline
model, the in-memory session store, a virtual clock) that also performs the channel effects
against a real :class:`~gateway_trio.channels.store.ChannelStore` in a temporary directory, called
synchronously (no event loop, no threads). Outputs the channel layer queues are recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from pathlib import Path
from typing import Any

from conformance.core_driver import SimHost
from gateway_core.agents import roster as R
from gateway_core.app import Ctx, Job
from gateway_core.channels.effects import (
    AwaitDelivery,
    ChannelCall,
    ChannelControl,
    ChannelProbe,
    ChannelTyping,
    IngressAdopted,
)
from gateway_core.channels.inbound import Inbound
from gateway_core.channels.pipeline import IngressRow, inbound_job
from gateway_trio.channels.store import ChannelStore


class ChannelSim(SimHost):
    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        super().__init__("token", "T", "")
        codes = (f"{a}{b}{c}XYZ23" for a, b, c in itertools.product("ABCDEFGH", "JKLMNPQR", "STUVWXYZ"))
        self.channel_store = ChannelStore(root, now_ms=lambda: self.wall_ms, codes=codes)
        self.adopted: list[str] = []
        self.typing: list[ChannelTyping] = []
        self.controls: list[ChannelControl] = []
        self.set_config(config)

    def set_config(self, config: dict[str, Any]) -> None:
        full = {"gateway": {"auth": {"mode": "token", "token": "T"}}, **config}
        self.app.config = full
        self.app.roster = R.roster(full)

    def close(self) -> None:
        self.channel_store.close()

    # ------------------------------------------------------------------ the channel effects

    def _perform(self, job: Job) -> None:  # noqa: D401 - extends the simulator's effect table
        effect = job.pending
        if isinstance(effect, ChannelCall):
            try:
                value = getattr(self.channel_store, effect.method)(*effect.args, **effect.kwargs)
            except Exception as exc:  # noqa: BLE001 - back into the job, as the host does
                job.step(now=self.now, wall_ms=self.wall_ms, exc=exc)
            else:
                job.step(value, now=self.now, wall_ms=self.wall_ms)
            self._perform(job)
        elif isinstance(effect, ChannelProbe):
            job.step({t: {"ok": True} for t in effect.targets}, now=self.now, wall_ms=self.wall_ms)
            self._perform(job)
        elif isinstance(effect, ChannelControl):
            self.controls.append(effect)
            job.step({"channel": effect.channel, "accountId": effect.account_id, "stopped": True}, now=self.now, wall_ms=self.wall_ms)
            self._perform(job)
        elif isinstance(effect, AwaitDelivery):
            job.step(self.channel_store.outbox_get(list(effect.keys)), now=self.now, wall_ms=self.wall_ms)
            self._perform(job)
        else:
            super()._perform(job)

    def _output(self, output: Any) -> None:
        if isinstance(output, IngressAdopted):
            self.adopted.append(output.key)
        elif isinstance(output, ChannelTyping):
            self.typing.append(output)
        else:
            super()._output(output)

    # ------------------------------------------------------------------ driving

    def inbound(self, *msgs: Inbound, replay: bool = False) -> None:
        """Queue ``msgs`` durably and run their pipeline jobs (as the manager does)."""
        rows = self.channel_store.ingress_put(list(msgs))
        if replay:
            rows = self.channel_store.pending_ingress()
        for row in rows:
            self.run_row(row)

    def run_row(self, row: IngressRow) -> None:
        self.app.spawn(inbound_job(self.app, row, self.now, self.wall_ms))
        self.pump()

    def run(self, gen: Generator[Any, Any, Any], until: float = 60.0) -> Any:
        """Run a generator of effects to its end (virtual time up to ``until`` s); its return value."""
        box: list[Any] = []

        def capture() -> Generator[Any, Any, None]:
            box.append((yield from gen))

        job = Job(Ctx(self.app, None, "test", "test", self.now, self.wall_ms), capture())
        job.step(None, now=self.now, wall_ms=self.wall_ms)
        self._perform(job)
        self.pump()
        self.advance_to(self.now + until)
        assert box, "the generator did not finish"
        return box[0]

    def outbox(self) -> list[dict[str, Any]]:
        db = self.channel_store._q  # read-only peek for assertions
        cols = ("key", "target", "text", "kind", "state", "reply_to")
        rows = db.execute("SELECT key, target, text, kind, state, reply_to FROM outbox ORDER BY seq")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def ingress(self) -> list[tuple[str, str, str | None]]:
        return self.channel_store._q.execute("SELECT key, status, outcome FROM ingress ORDER BY seq").fetchall()

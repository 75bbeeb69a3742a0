"""What the HTTP routes ask of the gateway: start and watch a turn, abort it, drive a core job from
the route's own task, leave work behind, deliver to a channel, report readiness.

A mixin of :class:`~gateway_trio.app.Gateway` (the one host object); kept apart so the routes'
surface is readable on its own. Time comes from ``_runtime``; every job's effects are performed by
the gateway's ``_drive``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import trio

from gateway_core.agents.effects import TurnWritten
from gateway_core.agents.loop import TurnSpec
from gateway_core.app import Ctx, Job

from . import _runtime

if TYPE_CHECKING:

    from gateway_core.app import GatewayApp

    from .agent_host import AgentHost
    from .turns import RunWatch, Watches


class RouteHost:
    """The HTTP routes' entry points into the gateway (see the module docstring)."""

    app: GatewayApp
    watches: Watches
    _jobs: trio.Nursery | None
    #: Run ids whose job the calling route drives itself (:meth:`drive_turn`): the job, once spawned.
    _claims: dict[str, Job | None]
    _folding: set[str]
    agents: AgentHost

    def flush(self) -> None:  # pragma: no cover - provided by Gateway
        raise NotImplementedError

    async def _drive(self, job: Job) -> None:  # pragma: no cover - provided by Gateway
        raise NotImplementedError

    def start_turn(self, spec: TurnSpec, run_id: str) -> RunWatch:
        """Start a turn for an HTTP route and watch it (events, then the result)."""
        from gateway_core.app.handlers.runs import start_route_turn

        watch = self.watches.add(run_id)
        self._folding.add(run_id)  # its job folds the quick writes into the turn's commit
        try:
            start_route_turn(self.app, spec, run_id, now=_runtime.now(), wall_ms=_runtime.wall_ms())
            self.flush()
        finally:
            self._folding.discard(run_id)
        return watch

    async def drive_turn(self, spec: TurnSpec, run_id: str) -> Any:
        """Start a turn for an HTTP route and drive it in the calling task; the run's result. For a
        route that only needs the end (a non-streaming answer): no task of its own, no watch, no
        wake-up between them. Stop it with :meth:`abort_run` (it still settles); cancelling the
        caller cancels the run's job as a gateway stop does."""
        from gateway_core.app.handlers.runs import start_route_turn

        self._claims[run_id] = None
        try:
            with self.folding_writes():  # its row and its run begun go with the turn's own commit
                run = start_route_turn(self.app, spec, run_id, now=_runtime.now(), wall_ms=_runtime.wall_ms())
                self.flush()
                job = self._claims.get(run_id)
                if job is not None:
                    await self._drive(job)
        finally:
            self._claims.pop(run_id, None)
        return run.result

    async def turn_written(self, effect: TurnWritten) -> None:
        """Perform ``TurnWritten`` for a run a streaming route follows: its watch gets the result
        now, and the route has its turn (it writes the end) before the run's final events are
        built. The run waits two scheduling passes for that, never for the client's socket."""
        if effect.run_id in self.watches:
            self.watches.settled(effect.run_id, effect.result)
            await _runtime.one_pass()  # the route, woken by its watch, writes its end first

    @contextmanager
    def folding_writes(self) -> Iterator[None]:
        """While inside, the store writes nobody waits for that this task makes (a new session's
        row, a run begun) wait for its turn's own commit (``CachedSessionStore.fold_tasks``)."""
        store = self.agents.store
        task = trio.lowlevel.current_task()
        if store is not None:
            store.fold_tasks.add(task)
        try:
            yield
        finally:
            if store is not None:
                store.fold_tasks.discard(task)

    def abort_run(self, run_id: str) -> None:
        """The route's client went away: stop the run now (the upstream request is closed)."""
        run = self.app.runs.get(run_id)
        if run is not None and run.active:
            run.abort_requested = True
            self.app.interrupt(run_id, "client-disconnect")
            self.flush()

    async def run_job(self, make: Callable[[Ctx], Generator[Any, Any, Any]], method: str) -> Any:
        """Drive a core job from a route's task (``make(ctx)`` gives its generator) and return its
        value; its exception is raised here."""
        box: dict[str, Any] = {}
        ctx = Ctx(self.app, None, method, method, _runtime.now(), _runtime.wall_ms())

        def capture() -> Generator[Any, Any, None]:
            try:
                box["value"] = yield from make(ctx)
            except Exception as exc:  # noqa: BLE001 - handed back to the route below
                box["error"] = exc

        job = Job(ctx, capture())
        job.step(None, now=_runtime.now(), wall_ms=_runtime.wall_ms())
        self.flush()
        if job.pending is not None:
            await self._drive(job)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def background(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the gateway's nursery (work a route leaves behind, e.g. a hook's delivery)."""
        if self._jobs is not None:
            self._jobs.start_soon(fn, *args)

    async def deliver(self, channel: str, to: str, text: str, *, account_id: str | None = None) -> dict[str, Any]:
        """Send ``text`` to ``to`` on a chat channel through its durable outbox (hooks' ``deliver``);
        the ``send`` method's answer, or its refusal raised."""
        from gateway_core.app.handlers.channels import send
        from gateway_core.params import PARAMS_SCHEMAS
        from gateway_core.validation import convert

        raw: dict[str, Any] = {"channel": channel, "to": to, "message": text, "idempotencyKey": _runtime.new_uuid()}
        if account_id:
            raw["accountId"] = account_id
        params = convert(raw, PARAMS_SCHEMAS["send"])
        return await self.run_job(lambda ctx: send(ctx, params), "send")

    def readiness_failing(self) -> tuple[str, ...]:
        """What ``/readyz`` reports as failing besides draining: unhealthy channel accounts."""
        from gateway_core.channels.state import channels_state, not_ready

        return tuple(not_ready(channels_state(self.app), self.app.config, _runtime.wall_ms()))

"""``Gateway._drive``'s cancel scopes (Trio's virtual clock): a run's deadline bounds its model
calls only. A deadline that falls just as the last model wait ends must not cancel the effect
after it (the turn's own write); an interrupt still stops whatever the run waits on next.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import trio
import trio.testing
from shell_harness import make_gateway

from gateway_core.agents.effects import ModelNext, RunAborted, RunDeadline
from gateway_core.app import Ctx, Job, Sleep
from gateway_trio import _runtime


def _job(gw: Any, gen: Generator[Any, Any, None]) -> Job:
    job = Job(Ctx(gw.app, None, "test", "test", _runtime.now(), _runtime.wall_ms()), gen)
    job.step(None, now=_runtime.now(), wall_ms=_runtime.wall_ms())
    return job


def _host(gw: Any, clock: trio.testing.MockClock | None = None) -> list[str]:
    """Every effect awaited. A model wait ends half a second before its ``until``, and the clock
    then jumps past it: the run's deadline fires in the very pass where the wait's task is woken
    with its answer (so the wait returns, and the run's scope is left cancelled). A ``Sleep``
    stands for the turn's write (a checkpoint)."""
    done: list[str] = []

    def now(effect: Any, owner: int) -> Any:
        return _runtime.LATER

    async def perform(effect: Any, owner: int) -> Any:
        if isinstance(effect, ModelNext):
            assert effect.until is not None and clock is not None
            answered = trio.Event()

            async def upstream() -> None:
                await trio.sleep_until(effect.until - 0.5)
                answered.set()
                clock.jump(1.0)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(upstream)
                await answered.wait()
            done.append("model")
            return "ended"
        assert isinstance(effect, Sleep)
        await trio.sleep(effect.seconds)
        done.append("written")
        return "written"

    gw.effects.now = now
    gw.effects.perform = perform
    return done


def test_a_deadline_falling_as_the_model_wait_ends_does_not_cancel_the_write(tmp_path: Path) -> None:
    seen: list[Any] = []
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        gw = make_gateway(tmp_path)
        done = _host(gw, clock)

        def turn() -> Generator[Any, Any, None]:
            until = trio.current_time() + 5
            seen.append((yield ModelNext(1, until=until)))
            try:
                seen.append((yield Sleep(0)))
            except RunDeadline:
                seen.append("deadline at the write")

        with trio.fail_after(60):
            await gw._drive(_job(gw, turn()))
        assert done == ["model", "written"]

    trio.run(main, clock=clock)
    assert seen == ["ended", "written"]


def test_an_interrupt_stops_the_next_wait_and_a_deadline_the_model_wait(tmp_path: Path) -> None:
    seen: list[Any] = []
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        gw = make_gateway(tmp_path)
        _host(gw, clock)

        def turn() -> Generator[Any, Any, None]:
            try:
                yield Sleep(10)
            except RunAborted:
                seen.append("aborted")
            try:
                yield ModelNext(1, until=trio.current_time() - 1)  # already past: stopped at once
            except RunDeadline:
                seen.append("deadline")

        job = _job(gw, turn())

        async def interrupt() -> None:
            await trio.sleep(1)
            owner = id(job)
            gw._interrupted.add(owner)
            gw._waiting[owner].cancel()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(interrupt)
                await gw._drive(job)

    trio.run(main, clock=clock)
    assert seen == ["aborted", "deadline"]

"""The ``agent`` and ``chat`` events of one run (protocol.md §13.4–§13.5; recordings ws01–ws03).

One :class:`RunEvents` per run stamps every event with the run's own ``seq`` (from 1, shared by
both event names: a ``chat`` event carries the seq of the ``agent`` event it accompanies) and the
run's keys. ``chat.send`` runs also report their start-up phases (``run_status`` / ``status``).

Live text is paced (protocol.md §13.5: "deltas are paced (~75 ms) and coalesced; dropIfSlow"):
the first delta goes out at once, later ones within :data:`TEXT_PACE_S` of the run's clock
(``ctx.now``, the host's time) since the last ``assistant``/``chat`` delta pair are held and go out
joined with the next delta past the pace, or before any other event of the run, or when the model
call ends, or when the pace runs out first (:attr:`RunEvents.text_due_at`, which the turn hands
the host as ``ModelNext.flush_at``: a model that pauses does not hold the text back). ``chat``
deltas are published ``drop_if_slow`` (a slow client misses one and gets the next cumulative
text); ``agent`` events, finals and everything else are never dropped (as published).
Each pair carries the cumulative text, so the cost per pair is the answer's length — at a bounded
rate, not per upstream delta. The text is kept as parts and joined only when a pair is sent.

Routes that stream a run (``/v1/chat/completions``, ``/v1/responses``) need every delta as it
comes: runs on the ``http`` surface also publish each one as a :data:`ROUTE_TEXT` event addressed
to no connection (``to`` empty), which only the host's route watchers read.
"""

from __future__ import annotations

from typing import Any

from ..app.runs import Run
from .store import Usage

#: How long live text is held at most, on the run's clock, before the next delta sends it (seconds).
TEXT_PACE_S = 0.075
#: The per-delta event for the route watching an ``http`` run: ``{runId, delta}``, to no connection.
ROUTE_TEXT = "agent.text"
_NOBODY: frozenset[str] = frozenset()


class RunEvents:
    def __init__(self, ctx: Any, run: Run, *, surface: str, route_text: bool = True) -> None:
        self.ctx = ctx
        self.run = run
        self.surface = surface
        #: An ``http`` run's deltas go to a route as :data:`ROUTE_TEXT` (not when it needs only the end).
        self.route_text = route_text and surface == "http"
        self.session_id: str | None = None
        self.item = 1
        self._parts: list[str] = []  # the assistant text so far, joined lazily (see text)
        self._held: list[str] = []  # deltas not sent to the connections yet
        self._sent_at: float | None = None  # ctx.now of the last delta pair sent

    @property
    def text_due_at(self) -> float | None:
        """When the held text must go out (the run's clock), or ``None`` when none is held."""
        if not self._held or self._sent_at is None or not self.heard:
            return None  # unheard: no deadline (the host would need a timer per read); see assistant
        return self._sent_at + TEXT_PACE_S

    @property
    def text(self) -> str:
        """The assistant text so far (joined once per call, then kept as one part)."""
        parts = self._parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    # ------------------------------------------------------------------ plumbing

    @property
    def heard(self) -> bool:
        """Whether any connection could receive this run's events. With none connected (an HTTP
        route's run on a gateway no client watches) they are not built, only counted: the run's
        ``seq`` moves exactly as if they were sent."""
        return bool(self.ctx.app.conns)

    def _base(self) -> dict[str, Any]:
        return {"runId": self.run.run_id, "sessionKey": self.run.session_key, "agentId": self.run.agent_id}

    def _agent(self, stream: str, data: dict[str, Any], *, with_session: bool = False, **extra: Any) -> int:
        if self._held and stream != "assistant":
            self.flush_text()
        seq = self.run.next_seq()
        if not self.heard:
            return seq
        payload: dict[str, Any] = {**self._base(), "stream": stream, "data": data, "seq": seq, "ts": self.ctx.wall_ms}
        if with_session and self.session_id is not None:
            payload["sessionId"] = self.session_id
        if self.surface == "chat":
            payload["isHeartbeat"] = False
        payload.update(extra)
        self.ctx.publish("agent", payload)
        return seq

    def _chat(self, state: str, **fields: Any) -> None:
        if self._held and state != "delta":
            self.flush_text()
        if not self.heard:
            return
        self.ctx.publish("chat", {**self._base(), "seq": self.run.seq, "state": state, **fields}, drop_if_slow=state == "delta")

    def _message(self, text: str) -> dict[str, Any]:
        return {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": self.ctx.wall_ms}

    # ------------------------------------------------------------------ the run's story

    def status(self, phase: str) -> None:
        """A start-up phase (``chat.send`` only, as published)."""
        if self.surface != "chat":
            return
        self.flush_text()
        self.run.next_seq()
        self._chat("status", phase=phase)
        seq = self.run.seq
        self.ctx.publish(
            "agent",
            {**self._base(), "stream": "run_status", "data": {"phase": phase}, "seq": seq, "ts": self.ctx.wall_ms,
             "isHeartbeat": False},
        )

    def lifecycle(self, data: dict[str, Any], **extra: Any) -> None:
        self._agent("lifecycle", data, with_session=True, **extra)

    def assistant(self, delta: str) -> None:
        """The model said ``delta`` more: to the watching route now, to the connections paced."""
        if not delta:
            return
        now = self.ctx.now
        sent_at = self._sent_at
        if self._held and sent_at is not None and now - sent_at >= TEXT_PACE_S and not self.heard:
            # Nobody heard the held text, so no deadline sent it (text_due_at): count the flush
            # it would have made then, as of then; seq moves as if it had.
            self.flush_text()
            self._sent_at = sent_at + TEXT_PACE_S
        self._parts.append(delta)
        self._held.append(delta)
        if self.route_text:
            self.ctx.publish(ROUTE_TEXT, {"runId": self.run.run_id, "delta": delta}, to=_NOBODY)
        if self._sent_at is None or now - self._sent_at >= TEXT_PACE_S:
            self.flush_text()

    def flush_text(self) -> None:
        """Send the held deltas as one ``assistant``/``chat`` delta pair (the text so far in both)."""
        if not self._held:
            return
        self._sent_at = self.ctx.now
        if not self.heard:
            self._held.clear()
            self.run.next_seq()
            return
        delta = "".join(self._held)
        self._held.clear()
        text = self.text
        self._agent("assistant", {"text": text, "delta": delta, "itemId": f"{self.run.run_id}:{self.item}"})
        self._chat("delta", deltaText=delta, message=self._message(text))

    def tool(self, call: Any, output: Any) -> None:
        self._agent("tool", {"phase": "result", "name": call.name, "toolCallId": call.id, "args": call.arguments, "result": output})

    def usage(self, usage: Usage) -> None:
        self._agent("usage", {"outputTokens": usage.output})

    def finishing(self, stop_reason: str) -> None:
        if self._counted_only():
            return
        self.lifecycle(
            {"phase": "finishing", "stopReason": stop_reason, "aborted": False, "livenessState": "working",
             "endedAt": self.ctx.wall_ms}
        )

    def _counted_only(self) -> bool:
        """Nobody could hear a lifecycle event: count it (and the held text) instead of building it."""
        if self.heard:
            return False
        self.flush_text()
        self.run.next_seq()
        return True

    def end(self, result: Any) -> None:
        if self._counted_only():
            return
        disposition = "silent" if result.silent else "visible"
        self.lifecycle(
            {
                "phase": "end",
                "stopReason": result.stop_reason,
                "aborted": False,
                "livenessState": "working",
                "startedAt": self.run.started_at,
                "endedAt": self.ctx.wall_ms,
                "replayInvalid": False,
                "terminalReply": {"disposition": disposition, "text": "" if result.silent else result.text},
                "terminalReceipt": {
                    "runId": self.run.run_id,
                    "sessionId": self.session_id,
                    "turnId": self.run.run_id,
                    "requested": {"provider": result.provider, "model": result.model},
                    "effective": {"provider": result.provider, "model": result.model, "responseModel": result.model},
                    "successfulToolNames": [],
                    "rerouted": False,
                    "terminalDisposition": disposition,
                },
                "executionSettled": True,
            }
        )

    def chat_final(self, result: Any) -> None:
        fields: dict[str, Any] = {"stopReason": result.stop_reason}
        if not result.silent:
            fields["message"] = self._message(result.text)
        self._chat("final", **fields)

    def error(self, result: Any) -> None:
        self.lifecycle(
            {"phase": "error", "startedAt": self.run.started_at, "endedAt": self.ctx.wall_ms, "error": result.error,
             "executionSettled": True}
        )
        fields: dict[str, Any] = {"errorMessage": result.error}
        if result.error_detail:
            fields["errorDetail"] = result.error_detail
        self._chat("error", **fields)

    def aborted(self, result: Any) -> None:
        self.lifecycle(
            {"phase": "end", "status": "cancelled", "aborted": True, "stopReason": result.stop_reason,
             "startedAt": self.run.started_at, "endedAt": self.ctx.wall_ms}
        )
        fields: dict[str, Any] = {"stopReason": result.stop_reason}
        if result.text:
            fields["message"] = self._message(result.text)
        self._chat("aborted", **fields)


__all__ = ["ROUTE_TEXT", "TEXT_PACE_S", "RunEvents"]

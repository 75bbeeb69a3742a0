"""The ``agent`` and ``chat`` events of one run (protocol.md §13.4–§13.5; recordings ws01–ws03).

One :class:`RunEvents` per run stamps every event with the run's own ``seq`` (from 1, shared by
both event names: a ``chat`` event carries the seq of the ``agent`` event it accompanies) and the
run's keys. ``chat.send`` runs also report their start-up phases (``run_status`` / ``status``).
"""

from __future__ import annotations

from typing import Any

from ..app.runs import Run
from .store import Usage


class RunEvents:
    def __init__(self, ctx: Any, run: Run, *, surface: str) -> None:
        self.ctx = ctx
        self.run = run
        self.surface = surface
        self.session_id: str | None = None
        self.item = 1
        self._text = ""

    # ------------------------------------------------------------------ plumbing

    def _base(self) -> dict[str, Any]:
        return {"runId": self.run.run_id, "sessionKey": self.run.session_key, "agentId": self.run.agent_id}

    def _agent(self, stream: str, data: dict[str, Any], *, with_session: bool = False, **extra: Any) -> int:
        seq = self.run.next_seq()
        payload: dict[str, Any] = {**self._base(), "stream": stream, "data": data, "seq": seq, "ts": self.ctx.wall_ms}
        if with_session and self.session_id is not None:
            payload["sessionId"] = self.session_id
        if self.surface == "chat":
            payload["isHeartbeat"] = False
        payload.update(extra)
        self.ctx.publish("agent", payload)
        return seq

    def _chat(self, state: str, **fields: Any) -> None:
        self.ctx.publish("chat", {**self._base(), "seq": self.run.seq, "state": state, **fields})

    def _message(self, text: str) -> dict[str, Any]:
        return {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": self.ctx.wall_ms}

    # ------------------------------------------------------------------ the run's story

    def status(self, phase: str) -> None:
        """A start-up phase (``chat.send`` only, as published)."""
        if self.surface != "chat":
            return
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

    def assistant(self, text: str, delta: str) -> None:
        self._text = text
        self._agent("assistant", {"text": text, "delta": delta, "itemId": f"{self.run.run_id}:{self.item}"})
        self._chat("delta", deltaText=delta, message=self._message(text))

    def tool(self, call: Any, output: Any) -> None:
        self._agent("tool", {"phase": "result", "name": call.name, "toolCallId": call.id, "args": call.arguments, "result": output})

    def usage(self, usage: Usage) -> None:
        self._agent("usage", {"outputTokens": usage.output})

    def finishing(self, stop_reason: str) -> None:
        self.lifecycle(
            {"phase": "finishing", "stopReason": stop_reason, "aborted": False, "livenessState": "working",
             "endedAt": self.ctx.wall_ms}
        )

    def end(self, result: Any) -> None:
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


__all__ = ["RunEvents"]

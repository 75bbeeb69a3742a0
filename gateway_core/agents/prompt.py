"""Prompt assembly: the system prompt, the stored history as model messages, the current turn.

Pure. The system prompt names the agent and the model it runs on and appends the agent's own
prompt and the request's extra system prompt (system/developer messages, instructions). History
comes from the session store's records; only user, assistant and tool entries are replayed.
"""

from __future__ import annotations

import json
from typing import Any

from ..providers.types import ChatMessage, ContentPart, ImagePart, TextPart, ToolCall
from .roster import Agent
from .store import MessageRecord

#: How many stored messages a turn replays at most (newest kept).
HISTORY_LIMIT = 200


def system_prompt(agent: Agent, *, model_ref: str, extra: str | None = None, tools: list[str] | None = None) -> str:
    """The system prompt of one turn."""
    lines = [
        f"You are {agent.identity_name or agent.name}, an AI assistant answering through the OpenClaw gateway.",
        "Answer the user's current message. Be direct and accurate.",
    ]
    if tools:
        lines.append("Tools you can call: " + ", ".join(tools) + ".")
    if agent.system_prompt:
        lines += ["", agent.system_prompt.strip()]
    if extra:
        lines += ["", extra.strip()]
    lines += [
        "",
        f"Current model identity: {model_ref}. If asked what model you are, answer with this value for the current run.",
    ]
    return "\n".join(lines)


def _content(value: Any) -> str | list[ContentPart]:
    if isinstance(value, str):
        return value
    parts: list[ContentPart] = []
    for p in value or ():
        if isinstance(p, dict) and p.get("type") == "text":
            parts.append(TextPart(str(p.get("text", ""))))
        elif isinstance(p, dict) and p.get("type") == "image":
            parts.append(ImagePart(url=p.get("url"), data=p.get("data"), mime=p.get("mimeType")))
    return parts


def history_messages(records: list[MessageRecord]) -> list[ChatMessage]:
    """Stored records as model messages (tool calls and results included)."""
    out: list[ChatMessage] = []
    for rec in records:
        if rec.role == "user":
            out.append(ChatMessage(role="user", content=_content(rec.content)))
        elif rec.role == "assistant":
            calls = [
                ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments", "{}"))
                for c in rec.meta.get("toolCalls") or ()
                if isinstance(c, dict)
            ]
            text = _content(rec.content)
            if isinstance(text, list) and not text:
                text = ""
            out.append(ChatMessage(role="assistant", content=text if text or not calls else None, tool_calls=calls))
        elif rec.role == "tool":
            out.append(
                ChatMessage(
                    role="tool",
                    content=_content(rec.content) if not isinstance(rec.content, str) else rec.content,
                    tool_call_id=rec.meta.get("toolCallId"),
                    name=rec.meta.get("toolName"),
                )
            )
    return out


def user_parts(text: str, images: list[dict[str, Any]] | None = None) -> str | list[dict[str, Any]]:
    """The stored form of a user message: its text, or text and image parts."""
    if not images:
        return text
    return [{"type": "text", "text": text}, *({"type": "image", **img} for img in images)]


def tool_result_text(value: Any) -> str:
    """A built-in tool's result as the text the model reads."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


__all__ = ["HISTORY_LIMIT", "history_messages", "system_prompt", "tool_result_text", "user_parts"]

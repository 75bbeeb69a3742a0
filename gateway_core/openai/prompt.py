"""From an OpenAI message history to one agent message (http-agents-channels.md §2.4; observed §1.2–§1.4).

The agent keeps its own transcript, so a client's whole history is *flattened* into the turn's
message. ``system``/``developer`` texts leave the history and become the extra system prompt
(joined by blank lines). Every other message becomes an entry ``Sender: body``:

==========================  ====================================================
message                     sender, body
==========================  ====================================================
``user``                    ``User``, its text parts joined by ``\\n``
``assistant``               ``Assistant``, its text, then one line per tool call:
                            ``tool_call id=<id> name=<name> arguments=<json>``
``tool`` (``tool_call_id``)  ``Tool:<tool_call_id>``, its text (may be empty)
``function`` (``name``)     ``Tool:<name>``, its text (``null`` content is ``""``)
==========================  ====================================================

The *current* entry is the last ``user``/``tool`` entry (else the last one). Alone (and not a
tool result) it is the message as is; otherwise the message is ``[Chat messages since your last
reply - for context]``, the earlier entries one per line, a blank line, ``[Current message -
respond to this]`` and the current entry. Empty entries are skipped, except tool results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

HISTORY_MARKER: Final = "[Chat messages since your last reply - for context]"
CURRENT_MARKER: Final = "[Current message - respond to this]"
IMAGE_ONLY: Final = "User sent image(s) with no text."
FILE_ONLY: Final = "User sent file(s) with no text."
REQUIRED_PROMPT: Final = "You must call one of the available tools before responding."
DEFAULT_IMAGE_MIMES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif")


class Entry(NamedTuple):
    role: str  # user | assistant | tool
    sender: str
    body: str


def build_message(entries: Sequence[Entry]) -> str:
    """The agent message for ordered conversation entries (``""`` when there are none)."""
    if not entries:
        return ""
    current = next((i for i in range(len(entries) - 1, -1, -1) if entries[i].role in ("user", "tool")), len(entries) - 1)
    history = [f"{e.sender}: {e.body}" for e in entries[:current]]
    now = entries[current]
    if not history and now.role != "tool":
        return now.body
    text = "\n".join(history)
    if not text.strip():
        return f"{now.sender}: {now.body}"
    return "\n".join([HISTORY_MARKER, text, "", CURRENT_MARKER, f"{now.sender}: {now.body}"])


def tool_call_line(call_id: str, name: str, arguments: str) -> str:
    return f"tool_call id={call_id} name={name} arguments={arguments}"


def message_text(content: Any) -> str | None:
    """A message's text: a string, or ``text``/``input_text`` parts joined by ``\\n`` (``None``: no text form)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts: list[str | None] = []
    for part in content:
        if not isinstance(part, dict):
            parts.append(None)
            continue
        if part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            parts.append(part["input_text"] if isinstance(part.get("input_text"), str) else None)
    joined = "\n".join(p for p in parts if p)
    return joined if joined.strip() or all(p is not None for p in parts) else None


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return ""


def _assistant_calls(value: Any) -> list[str]:
    lines: list[str] = []
    for call in value if isinstance(value, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        call_id, name = _str(call.get("id")), _str(fn.get("name"))
        if call_id and name:
            lines.append(tool_call_line(call_id, name, _arguments(fn.get("arguments"))))
    return lines


class ChatPrompt(NamedTuple):
    message: str
    extra_system: str | None
    #: The image URLs of the latest user message (the active turn); ``None``: an image part without a URL.
    image_urls: list[str] | None


def active_turn(messages: list[Any]) -> tuple[int, list[str] | None]:
    """Index of the last user message that is the active turn (``-1`` if a tool result came last), its image URLs."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if not isinstance(msg, dict):
            continue
        role = _str(msg.get("role"))
        if role not in ("user", "tool", "function"):
            continue
        if role != "user":
            return -1, []
        return i, _image_urls(msg.get("content"))
    return -1, []


def _image_urls(content: Any) -> list[str] | None:
    urls: list[str] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict) or part.get("type") != "image_url":
            continue
        ref = part.get("image_url")
        url = ref if isinstance(ref, str) else ref.get("url") if isinstance(ref, dict) else None
        if not isinstance(url, str) or not url.strip():
            return None
        urls.append(url.strip())
    return urls


def chat_prompt(messages_value: Any) -> ChatPrompt:
    """Flatten a chat completion ``messages`` array (non-arrays count as empty)."""
    messages = messages_value if isinstance(messages_value, list) else []
    active, urls = active_turn(messages)
    has_image = bool(urls)
    system: list[str] = []
    entries: list[Entry] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            continue
        role = _str(msg.get("role"))
        raw = msg.get("content")
        text = "" if role == "function" and raw is None else message_text(raw)
        content = text.strip() if text is not None else None
        if not role:
            continue
        if role in ("system", "developer"):
            if content:
                system.append(content)
            continue
        kind = "tool" if role == "function" else role
        if kind not in ("user", "assistant", "tool"):
            continue
        calls = _assistant_calls(msg.get("tool_calls")) if kind == "assistant" else []
        first = IMAGE_ONLY if kind == "user" and not content and has_image and i == active else content
        body = "\n".join(p for p in (first, *calls) if p)
        name, call_id = _str(msg.get("name")), _str(msg.get("tool_call_id"))
        is_result = (
            kind == "tool"
            and bool(name if role == "function" else call_id)
            and content is not None
            and (role != "function" or raw is None or isinstance(raw, str))
        )
        if not body and not is_result:
            continue
        sender = {"assistant": "Assistant", "user": "User"}.get(kind) or (
            f"Tool:{call_id}" if call_id else f"Tool:{name}" if name else "Tool"
        )
        entries.append(Entry(kind, sender, body))
    return ChatPrompt(build_message(entries), "\n\n".join(system) if system else None, urls)


# --------------------------------------------------------------------------- images (chat completions)

_DATA_URL: Final = re.compile(r"^data:([^,]*?),(.*)$", re.IGNORECASE | re.DOTALL)


class ImageRules(NamedTuple):
    """``gateway.http.endpoints.chatCompletions.images`` (defaults as published)."""

    allow_url: bool = False
    max_parts: int = 8
    max_bytes: int = 10 * 1024 * 1024
    max_total_bytes: int = 20 * 1024 * 1024
    mimes: tuple[str, ...] = DEFAULT_IMAGE_MIMES


def base64_bytes(data: str) -> int:
    """Decoded size of base64 text (padding and whitespace aware, like the gateway's estimate)."""
    clean = re.sub(r"\s", "", data)
    pad = len(clean) - len(clean.rstrip("="))
    return max(0, len(clean) * 3 // 4 - min(pad, 2))


DEFAULT_IMAGE_RULES: Final = ImageRules()


def resolve_images(urls: list[str] | None, rules: ImageRules = DEFAULT_IMAGE_RULES) -> list[dict[str, Any]]:
    """The active turn's images as ``{type, data, mimeType}`` (base64) or ``{type, url}``.

    Any problem raises :class:`ValueError` (the route answers 400 ``Invalid image_url content in
    `messages`.``): a part without a URL, too many parts, a URL source while ``allow_url`` is off,
    a data URL that is not base64 or has no payload, a MIME type outside ``mimes``, too many bytes.
    Fetching allowed URLs is the host's business (SSRF guard, redirects, timeout).
    """
    if urls is None:
        raise ValueError("image_url part is missing a valid URL")
    if len(urls) > rules.max_parts:
        raise ValueError(f"Too many image_url parts ({len(urls)}; limit {rules.max_parts})")
    out: list[dict[str, Any]] = []
    total = 0
    for url in urls:
        found = _DATA_URL.match(url)
        if found is None:
            if not rules.allow_url:
                raise ValueError("image URL sources are disabled")
            out.append({"type": "image", "url": url})
            continue
        meta = [p.strip() for p in found.group(1).strip().split(";") if p.strip()]
        data = found.group(2)
        if not any(p.lower() == "base64" for p in meta):
            raise ValueError("image_url data URI must be base64 encoded")
        if not data.strip():
            raise ValueError("image_url data URI is missing payload data")
        mime = next((p.lower() for p in meta if "/" in p), "")
        if mime not in rules.mimes:
            raise ValueError(f"image MIME type not allowed: {mime or 'unknown'}")
        size = base64_bytes(data)
        if size > rules.max_bytes:
            raise ValueError(f"image too large ({size}; limit {rules.max_bytes})")
        total += size
        if total > rules.max_total_bytes:
            raise ValueError(f"Total image payload too large ({total}; limit {rules.max_total_bytes})")
        out.append({"type": "image", "data": data.strip(), "mimeType": mime})
    return out


# --------------------------------------------------------------------------- responses input items


class ResponsesPrompt(NamedTuple):
    message: str
    extra_system: str | None
    #: Index in ``input`` of the active user message (its images/files count), or ``-1``.
    active: int


def _item_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") in ("input_text", "output_text") and p.get("text"))


def _placeholder(content: Any) -> str:
    if isinstance(content, list) and any(p.get("type") == "input_image" for p in content):
        return IMAGE_ONLY
    if isinstance(content, list) and any(p.get("type") == "input_file" for p in content):
        return FILE_ONLY
    return ""


def responses_prompt(input_value: str | list[dict[str, Any]]) -> ResponsesPrompt:
    """Flatten a (validated) Responses ``input``: a string is the message itself."""
    if isinstance(input_value, str):
        return ResponsesPrompt(input_value, None, -1)
    active = -1
    for i in range(len(input_value) - 1, -1, -1):
        item = input_value[i]
        if item.get("type") == "function_call_output":
            break
        if item.get("type") == "message" and item.get("role") == "user":
            active = i
            break
    system: list[str] = []
    entries: list[Entry] = []
    for i, item in enumerate(input_value):
        kind = item.get("type")
        if kind == "message":
            body = _item_text(item["content"]).strip() or (_placeholder(item["content"]) if i == active else "")
            if not body:
                continue
            if item["role"] in ("system", "developer"):
                system.append(body)
            elif item["role"] == "assistant":
                entries.append(Entry("assistant", "Assistant", body))
            else:
                entries.append(Entry("user", "User", body))
        elif kind == "function_call":
            call_id = item.get("call_id") if item.get("call_id") is not None else item.get("id") or ""
            entries.append(Entry("assistant", "Assistant", tool_call_line(call_id, item["name"], item["arguments"])))
        elif kind == "function_call_output":
            entries.append(Entry("tool", f"Tool:{item['call_id']}", item["output"]))
    return ResponsesPrompt(build_message(entries), "\n\n".join(system) if system else None, active)


__all__ = [
    "CURRENT_MARKER",
    "FILE_ONLY",
    "HISTORY_MARKER",
    "IMAGE_ONLY",
    "REQUIRED_PROMPT",
    "DEFAULT_IMAGE_RULES",
    "ChatPrompt",
    "Entry",
    "ImageRules",
    "message_text",
    "ResponsesPrompt",
    "active_turn",
    "base64_bytes",
    "build_message",
    "chat_prompt",
    "resolve_images",
    "responses_prompt",
    "tool_call_line",
]

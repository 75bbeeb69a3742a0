"""The built-in ``offline`` provider (http-agents-channels.md §3.4): answers with no network at all.

``offline/echo`` quotes the user's last message back and says plainly that no model provider is
configured and how to add one. The reply streams as four :class:`TextDelta` s, then usage (rough
whitespace token counts) and the end, so every streaming path runs offline and deterministically.
``offline/offline-sha256`` is a deterministic embedder (vectors from SHA-256, unit length) for
memory search without a provider; its vectors carry no meaning beyond identity of text.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, Final

from .types import ModelRequest, StreamEnd, StreamEvent, TextDelta, UsageReport

PROVIDER: Final = "offline"
#: Adapter names that select the offline provider (§3.4 calls it ``offline-echo``).
APIS: Final = frozenset({"offline", "offline-echo"})
ECHO_MODEL: Final = "echo"
EMBED_MODEL: Final = "offline-sha256"
EMBED_DIMENSIONS: Final = 64
MAX_QUOTE_CHARS: Final = 2000

#: Catalog entries in the ``models.providers.<id>.models[]`` shape, for models.list and /v1/models.
CATALOG: Final[list[dict[str, Any]]] = [
    {
        "id": ECHO_MODEL,
        "name": "Offline echo (no model provider configured)",
        "reasoning": False,
        "input": ["text"],
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        "contextWindow": 8192,
        "maxTokens": 1024,
        "compat": {"supportsTools": False},
    }
]

HOW_TO_CONFIGURE: Final = (
    "No model provider is configured, so this answer comes from the built-in offline echo model "
    "(offline/echo); nothing was sent to an AI model."
)
CONFIG_HINT: Final = (
    "To use a real model, add a provider under models.providers.<id> in the config "
    '(baseUrl, apiKey, api: "openai-completions" or "anthropic-messages") '
    'and set agents.defaults.model.primary to "<id>/<model>". Or run:'
)
SETUP_COMMAND: Final = "openclaw setup --provider-base-url URL --provider-api-key-env VAR --model provider/model"


def count_tokens(text: str) -> int:
    """The offline provider's token count: whitespace-separated words."""
    return len(text.split())


def _last_user_text(req: ModelRequest) -> str:
    for msg in reversed(req.messages):
        if msg.role == "user":
            return msg.text()
    return ""


def _quote(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1] + "…"
    if not text:
        return "You sent no text."
    if "\n" not in text:
        return f'You said: "{text}"'
    return "You said:\n" + "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def echo_chunks(req: ModelRequest) -> list[str]:
    """The reply as its four streamed pieces (joined, they are the whole reply)."""
    about = HOW_TO_CONFIGURE
    if req.tools:
        names = ", ".join(t.name for t in req.tools[:10]) + (", …" if len(req.tools) > 10 else "")
        about += f" Tools offered ({names}) are never called by this model."
    return [_quote(_last_user_text(req)) + "\n\n", about + "\n\n", CONFIG_HINT + "\n", SETUP_COMMAND]


def echo_reply(req: ModelRequest) -> str:
    """The whole reply text."""
    return "".join(echo_chunks(req))


def prompt_tokens(req: ModelRequest) -> int:
    """Whitespace tokens of everything sent: system prompt, messages, tool calls."""
    total = count_tokens(req.system or "")
    for msg in req.messages:
        total += count_tokens(msg.text())
        for call in msg.tool_calls:
            total += count_tokens(call.name) + count_tokens(call.arguments)
    return total


def echo_events(req: ModelRequest) -> list[StreamEvent]:
    """The full event stream of one offline call."""
    chunks = echo_chunks(req)
    reply = "".join(chunks)
    inp, out = prompt_tokens(req), count_tokens(reply)
    digest = hashlib.sha256(reply.encode()).hexdigest()[:24]
    events: list[StreamEvent] = [TextDelta(c) for c in chunks]
    events.append(UsageReport(input=inp, output=out, total=inp + out))
    events.append(StreamEnd(finish_reason="stop", response_id=f"offline-{digest}", response_model=req.model or ECHO_MODEL))
    return events


def hash_embedding(text: str, dimensions: int = EMBED_DIMENSIONS) -> list[float]:
    """A unit vector of ``dimensions`` floats from SHA-256 blocks of ``text`` (same text → same vector)."""
    if dimensions < 1:
        raise ValueError("dimensions must be >= 1")
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(u / 2147483648.0 - 1.0 for u in struct.unpack("<8I", digest))
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embed(inputs: str | list[str], dimensions: int | None = None) -> list[list[float]]:
    """Vectors for ``inputs`` (a string counts as one input)."""
    items = [inputs] if isinstance(inputs, str) else inputs
    return [hash_embedding(text, dimensions or EMBED_DIMENSIONS) for text in items]

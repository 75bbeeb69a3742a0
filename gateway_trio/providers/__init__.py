"""Model provider adapters under Trio (our h11 client, loaded with the first model call, not at start).

The agent loop's entry points: :class:`ProviderHub` (``hub.stream(request)``, ``hub.embed``),
:func:`stream_with_failover` (retries, cooldowns and fallbacks by the pure policy) and
:func:`adapter_for`. Requests, events and errors are the neutral types of
:mod:`gateway_core.providers`.

    async with ProviderHub() as hub:                       # one per gateway process
        primary = ModelRequest(provider="upstream", api="openai-completions", model="scripted",
                               base_url="http://127.0.0.1:8000/v1", api_key=key, system=prompt,
                               messages=[ChatMessage(role="user", content="hi")], max_tokens=4096,
                               idle_timeout_s=20)
        turn = TurnBuilder()
        async with stream_with_failover(hub, [primary, fallback]) as events:
            async for event in events:                     # TextDelta, ToolCallDelta, UsageReport, StreamEnd
                turn.feed(event)
        result = turn.result()                             # text, tool_calls, usage, finish_reason
"""

from .adapters import (
    ADAPTERS,
    Adapter,
    AnthropicMessagesAdapter,
    HttpAdapter,
    OfflineAdapter,
    OpenAICompletionsAdapter,
    adapter_for,
)
from .failover import Attempt, FailoverStream, stream_with_failover
from .hub import ProviderHub

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AnthropicMessagesAdapter",
    "Attempt",
    "FailoverStream",
    "HttpAdapter",
    "OfflineAdapter",
    "OpenAICompletionsAdapter",
    "ProviderHub",
    "adapter_for",
    "stream_with_failover",
]

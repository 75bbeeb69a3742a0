"""Model provider adapters under Trio (httpx + httpx-sse, imported lazily on first use).

The agent loop's entry points: :class:`ProviderHub` (``hub.stream(request)``, ``hub.embed``),
:func:`stream_with_failover` (retries, cooldowns and fallbacks by the pure policy) and
:func:`adapter_for`. Requests, events and errors are the neutral types of
:mod:`gateway_core.providers`.
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

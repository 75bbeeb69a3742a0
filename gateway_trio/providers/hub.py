"""One place that owns the adapters: one per provider configuration, each with its pooled client.

The agent loop asks the hub, never an adapter class directly: ``hub.stream(request)`` picks the
adapter for ``request.api`` and the pooled client for ``(provider, api, base_url)``. A changed
``baseUrl`` (hot reload) gets a new adapter; :meth:`ProviderHub.forget` closes the old one. The
hub also holds the credential :class:`~gateway_core.providers.retry.Cooldowns` that
:func:`~gateway_trio.providers.failover.stream_with_failover` consults.
"""

from __future__ import annotations

from typing import Any

from gateway_core.providers.retry import Cooldowns
from gateway_core.providers.types import AssistantTurn, EmbeddingsRequest, EmbeddingsResult, ModelRequest

from .adapters import Adapter, adapter_for

Key = tuple[str, str, str]


class ProviderHub:
    """Adapters keyed by ``(provider, api, base_url)``; use ``async with ProviderHub() as hub`` or ``aclose()``."""

    def __init__(self) -> None:
        self._adapters: dict[Key, Adapter] = {}
        self.cooldowns = Cooldowns()

    def adapter(self, provider: str, api: str, base_url: str) -> Adapter:
        """The adapter for one provider configuration (created on first use)."""
        key = (provider, api, base_url)
        found = self._adapters.get(key)
        if found is None:
            found = self._adapters[key] = adapter_for(api)()
        return found

    def stream(self, request: ModelRequest) -> Any:
        """``async with hub.stream(request) as events`` — see :class:`~.adapters.Adapter`."""
        return self.adapter(request.provider, request.api, request.base_url).stream(request)

    async def complete(self, request: ModelRequest) -> AssistantTurn:
        """The whole turn of one call (no retries)."""
        return await self.adapter(request.provider, request.api, request.base_url).complete(request)

    async def embed(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        """Embeddings through the request's provider."""
        return await self.adapter(request.provider, request.api, request.base_url).embed(request)

    async def forget(self, provider: str | None = None) -> None:
        """Close and drop one provider's adapters (all when ``None``), e.g. after a config change."""
        keys = [k for k in self._adapters if provider is None or k[0] == provider]
        for key in keys:
            await self._adapters.pop(key).aclose()
        self.cooldowns.clear(provider)

    async def aclose(self) -> None:
        await self.forget(None)

    async def __aenter__(self) -> ProviderHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

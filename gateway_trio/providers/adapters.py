"""The adapters: ``openai-completions``, ``anthropic-messages`` and ``offline``, all with one shape.

``async with adapter.stream(request) as events: async for event in events: …`` yields the
neutral events of :mod:`gateway_core.providers.types`; every failure is a
:class:`~gateway_core.providers.errors.ProviderError` naming the model. Leaving the ``async with``
early (a ``break``, an exception, a Trio cancel scope) closes the upstream request and its socket
at once; a finished stream hands its connection back to the pool (keep-alive).

A network adapter owns one pooled :class:`~.client.HTTPClient` (created on first use): use one adapter
per provider configuration (:class:`~gateway_trio.providers.hub.ProviderHub` does) and
``aclose()`` it when done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from gateway_core.providers import anthropic_messages as am
from gateway_core.providers import offline
from gateway_core.providers import openai_completions as oc
from gateway_core.providers.errors import CONFIG, PROTOCOL, ProviderError, error_from_stream
from gateway_core.providers.types import (
    AssistantTurn,
    EmbeddingsRequest,
    EmbeddingsResult,
    ModelRequest,
    StreamEvent,
    TurnBuilder,
)

from . import _http
from .client import HTTPClient, HTTPError, Response


class Adapter:
    """The common surface. Subclasses set ``api`` and implement :meth:`stream`."""

    api: ClassVar[str] = ""

    def stream(self, request: ModelRequest) -> Any:
        """An async context manager giving an async iterator of :data:`StreamEvent` s."""
        raise NotImplementedError

    async def complete(self, request: ModelRequest) -> AssistantTurn:
        """The whole turn (the stream consumed and folded)."""
        builder = TurnBuilder()
        async with self.stream(request) as events:
            async for event in events:
                builder.feed(event)
        return builder.result()

    async def embed(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        """Vectors for ``request.inputs``."""
        raise ProviderError(CONFIG, f"the {self.api} adapter has no embeddings", provider=request.provider,
                            model=request.model)

    async def aclose(self) -> None:
        """Release pooled connections."""


def _labeller(provider: str, model: str) -> Callable[[ProviderError], ProviderError]:
    return lambda err: err.with_model(provider, model)


class HttpAdapter(Adapter):
    """An adapter that talks HTTP through one pooled client."""

    def __init__(self) -> None:
        self._client: HTTPClient | None = None

    def http(self) -> HTTPClient:
        """The pooled client, created on first use."""
        if self._client is None:
            self._client = _http.new_client()
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _post_events(
        self,
        request: ModelRequest,
        url: str,
        headers: dict[str, str],
        body: dict[str, Any],
        *,
        whole: Callable[[Any], list[StreamEvent]],
        sse: Callable[[Response], _http.SSEEvents],
    ) -> _PostEvents:
        """``async with``: POST ``body``; the events of a streamed (SSE) or whole (JSON) answer."""
        return _PostEvents(self.http(), request, url, headers, body, whole, sse)

    async def _post_json(self, url: str, headers: dict[str, str], body: dict[str, Any], idle_s: float) -> Any:
        try:
            async with self.http().request("POST", url, body=_http.encode_json(body), headers=headers,
                                           idle_s=idle_s) as response:
                await _http.raise_for_status(response)
                return await _http.read_json(response)
        except (HTTPError, ValueError) as exc:
            raise _http.map_exception(exc, idle_s, url) from exc


class _PostEvents:
    """One streamed POST as an async context manager (a class, not a generator: it is on every
    model call's path). Entering sends the request and reads the status: failures while connecting
    and reading it become labelled :class:`ProviderError` s. Exceptions the consumer raises inside
    the ``async with`` pass through untouched; leaving closes the events, then the response."""

    __slots__ = ("_args", "_events", "_exchange")

    def __init__(
        self, client: HTTPClient, request: ModelRequest, url: str, headers: dict[str, str], body: dict[str, Any],
        whole: Callable[[Any], list[StreamEvent]], sse: Callable[[Response], _http.SSEEvents],
    ) -> None:
        self._args = (client, request, url, headers, body, whole, sse)
        self._exchange: Any = None
        self._events: _http.SSEEvents | _http.ListEvents | None = None

    async def __aenter__(self) -> _http.SSEEvents | _http.ListEvents:
        client, request, url, headers, body, whole, sse = self._args
        exchange = client.request("POST", url, body=_http.encode_json(body), headers=headers,
                                  idle_s=request.idle_timeout_s)
        sent = False
        try:
            response = await exchange.__aenter__()
            sent = True
            await _http.raise_for_status(response)
            if _http.is_json(response):
                events: _http.SSEEvents | _http.ListEvents = _http.ListEvents(whole(await _http.read_json(response)))
            else:
                events = sse(response)
        except BaseException as exc:
            if sent:  # the answer's head came: its response is closed before the failure goes up
                await exchange.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, ProviderError):
                raise exc.with_model(request.provider, request.model) from None
            if isinstance(exc, HTTPError | ValueError):
                raise _http.map_exception(exc, request.idle_timeout_s, url).with_model(request.provider, request.model) from exc
            raise
        self._exchange, self._events = exchange, events
        return events

    async def __aexit__(self, *exc: object) -> None:
        events, exchange, self._events, self._exchange = self._events, self._exchange, None, None
        try:
            if events is not None:
                await events.aclose()
        finally:
            if exchange is not None:
                await exchange.__aexit__(*exc)


class OpenAICompletionsAdapter(HttpAdapter):
    """Any OpenAI-compatible ``/chat/completions`` server (OpenAI, vLLM, llama.cpp, LM Studio, LiteLLM…)."""

    api = oc.API

    def stream(self, request: ModelRequest) -> Any:
        url = oc.chat_url(request)
        parser = oc.ChatStreamParser()
        label = _labeller(request.provider, request.model)

        def sse(response: Response) -> _http.SSEEvents:
            return _http.SSEEvents(
                response, parse=parser.parse_chunk, finish=parser.finish, is_last=lambda _obj: False,
                idle_s=request.idle_timeout_s, url=url, label=label,
            )

        return self._post_events(
            request, url, oc.request_headers(request.api_key, request.headers), oc.build_chat_body(request),
            whole=oc.parse_completion, sse=sse,
        )

    async def embed(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        url = oc.embeddings_url(request.base_url)
        body = oc.build_embeddings_body(request.model, request.inputs, request.dimensions)
        try:
            obj = await self._post_json(url, oc.request_headers(request.api_key, request.headers), body,
                                        request.idle_timeout_s)
            if isinstance(obj, dict) and "error" in obj and "data" not in obj:
                raise error_from_stream(obj)
            vectors = oc.parse_embeddings(obj, request.count)
        except ProviderError as err:
            raise err.with_model(request.provider, request.model) from None
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        return EmbeddingsResult(
            model=obj.get("model") if isinstance(obj.get("model"), str) else request.model,
            vectors=vectors,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            total_tokens=int(usage.get("total_tokens") or 0),
        )


class AnthropicMessagesAdapter(HttpAdapter):
    """The Anthropic Messages API, and compatible endpoints (MiniMax, Synthetic, proxies)."""

    api = am.API

    def stream(self, request: ModelRequest) -> Any:
        url = am.messages_url(request.base_url)
        parser = am.MessagesStreamParser()
        label = _labeller(request.provider, request.model)

        def sse(response: Response) -> _http.SSEEvents:
            return _http.SSEEvents(
                response, parse=parser.parse_event, finish=parser.finish,
                is_last=lambda obj: isinstance(obj, dict) and obj.get("type") == "message_stop",
                idle_s=request.idle_timeout_s, url=url, label=label,
            )

        return self._post_events(
            request, url, am.request_headers(request.api_key, request.headers), am.build_messages_body(request),
            whole=am.parse_message, sse=sse,
        )


class OfflineAdapter(Adapter):
    """The built-in ``offline`` provider: no network, deterministic (``offline/echo``)."""

    api = "offline"

    @asynccontextmanager
    async def _events(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        events = _http.ListEvents(offline.echo_events(request))
        try:
            yield events
        finally:
            await events.aclose()

    def stream(self, request: ModelRequest) -> Any:
        return self._events(request)

    async def embed(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        import trio

        await trio.lowlevel.checkpoint()
        if request.dimensions is not None and request.dimensions < 1:
            raise ProviderError(PROTOCOL, "dimensions must be >= 1", provider=request.provider, model=request.model)
        vectors = offline.embed(request.inputs, request.dimensions)
        return EmbeddingsResult(model=request.model or offline.EMBED_MODEL, vectors=vectors)


#: api name → adapter class.
ADAPTERS: dict[str, type[Adapter]] = {
    oc.API: OpenAICompletionsAdapter,
    am.API: AnthropicMessagesAdapter,
    **dict.fromkeys(offline.APIS, OfflineAdapter),
}


def adapter_for(api: str) -> type[Adapter]:
    """The adapter class for a ``models.providers.<id>.api`` value (unknown → ``config`` error)."""
    try:
        return ADAPTERS[api]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ProviderError(CONFIG, f'model provider api "{api}" is not supported here (supported: {known})') from None

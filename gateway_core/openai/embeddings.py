"""``POST /v1/embeddings`` (http-agents-channels.md §1.6.3; observed in http-openai-observed.md §1.5, §5).

The ``model`` names an agent; the vectors come from that agent's memory-search embedder:
``memory.search.provider`` (per agent: ``agents.entries.<id>.memorySearch.provider``) and
``memory.search.model``, overridden by ``x-openclaw-model`` (owner/admin only). A
``provider/model`` override must name the configured provider; a bare id is a model of it.

=================================================  ===========================================
request                                            answer (400 ``invalid_request_error``)
=================================================  ===========================================
schema (``input: [1,2]``, ``dimensions: 0``, …)    ``<path>: <zod message>``
``model`` absent or blank                          ``Missing `model`.``
``model`` not agent syntax                         ``Invalid `model`. Use `openclaw` or …``
``input`` absent                                   ```input` must be a string or an array of strings.``
``[]``, ``""``, or an empty element                ```input` must contain at least one non-empty string.``
more than 128 inputs                               ``Too many inputs (max 128).``
one input over 8192 characters                     ``Input too long (max 8192 chars).``
more than 65536 characters in all                  ``Total input too large (max 65536 chars).``
unknown agent / fleet without owner                ``Unknown agent '<id>'.`` / §2.1
``x-openclaw-model: other/m``                      ``This agent does not allow that embedding …``
=================================================  ===========================================

The answer echoes ``model``; usage is always zero; ``encoding_format:"base64"`` is little-endian
float32 encoded here (never sent upstream). With no embedding provider configured the built-in
offline embedder answers, and the answer's ``model`` says so: ``offline/offline-sha256``.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

from ..agents.roster import resolve_target
from ..providers import offline
from ..providers.openai_completions import to_base64
from ..providers.types import EmbeddingsRequest
from . import schema as z
from .chat import MODEL_HEADER, RequestContext, check_override_authority, read_json
from .models import INVALID_MODEL, header, is_agent_model, resolve_agent
from .wire import Answer, Refused, internal_error, invalid_request, js_floats, json_answer

MAX_INPUTS: Final = 128
MAX_INPUT_CHARS: Final = 8192
MAX_TOTAL_CHARS: Final = 65536
BODY_LIMIT: Final = 5 * 1024 * 1024
OFFLINE_MODEL: Final = f"{offline.PROVIDER}/{offline.EMBED_MODEL}"
OTHER_PROVIDER: Final = "This agent does not allow that embedding provider on `/v1/embeddings`."

EMBEDDINGS_SCHEMA: Final = z.Obj(
    {
        "model": z.Str().opt(),
        "input": z.Union(z.Str(), z.Arr(z.Str())).opt(),
        "encoding_format": z.Enum("float", "base64").opt(),
        "dimensions": z.Num(integer=True, positive=True).opt(),
        "user": z.Str().opt(),
    }
)


class EmbeddingsPlan(Struct, frozen=True, kw_only=True):
    model: str  # echoed
    agent_id: str
    texts: tuple[str, ...]
    base64: bool
    dimensions: int | None
    #: The embedder: ``offline`` for the built-in one, else the configured provider id.
    provider: str
    provider_model: str

    @property
    def offline(self) -> bool:
        return self.provider == offline.PROVIDER

    def request(self, config: dict[str, Any] | None, keys: dict[str, str | None] | None = None) -> EmbeddingsRequest | None:
        """The provider call to make (``None`` for the offline embedder, or a provider that is not configured)."""
        if self.offline:
            return None
        target = resolve_target(f"{self.provider}/{self.provider_model or 'default'}", config, keys)
        if target is None:
            return None
        return EmbeddingsRequest(
            provider=self.provider, api=target.api, model=self.provider_model, inputs=list(self.texts),
            dimensions=self.dimensions, base_url=target.base_url, api_key=target.api_key, headers=target.headers,
            idle_timeout_s=target.timeout_s,
        )

    def offline_vectors(self) -> list[list[float]]:
        return offline.embed(list(self.texts), self.dimensions)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _memory_search(config: dict[str, Any] | None, agent_id: str) -> dict[str, Any]:
    cfg = config or {}
    base = ((cfg.get("memory") or {}).get("search") or {}) if isinstance(cfg.get("memory"), dict) else {}
    entry = (((cfg.get("agents") or {}).get("entries") or {}).get(agent_id) or {}) if isinstance(cfg.get("agents"), dict) else {}
    own = entry.get("memorySearch") if isinstance(entry, dict) and isinstance(entry.get("memorySearch"), dict) else {}
    return {**(base if isinstance(base, dict) else {}), **own}


def plan_embeddings(body: bytes, ctx: RequestContext) -> EmbeddingsPlan:
    """Validate an embeddings request and pick its embedder; raises :class:`Refused`."""
    check_override_authority(ctx.headers, ctx.sender_is_owner)
    payload = read_json(body)
    problem = z.first_issue(EMBEDDINGS_SCHEMA, payload)
    if problem is not None:
        raise Refused(invalid_request(problem))
    model = (payload.get("model") or "").strip()
    if not model:
        raise Refused(invalid_request("Missing `model`."))
    if not is_agent_model(model):
        raise Refused(invalid_request(INVALID_MODEL))
    raw = payload.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list):
        raise Refused(invalid_request("`input` must be a string or an array of strings."))
    if not texts or any(t == "" for t in texts):
        raise Refused(invalid_request("`input` must contain at least one non-empty string."))
    if len(texts) > MAX_INPUTS:
        raise Refused(invalid_request(f"Too many inputs (max {MAX_INPUTS})."))
    total = 0
    for text in texts:
        size = _utf16(text)
        if size > MAX_INPUT_CHARS:
            raise Refused(invalid_request(f"Input too long (max {MAX_INPUT_CHARS} chars)."))
        total += size
        if total > MAX_TOTAL_CHARS:
            raise Refused(invalid_request(f"Total input too large (max {MAX_TOTAL_CHARS} chars)."))
    agent_id = resolve_agent(ctx.roster, model, ctx.headers)
    search = _memory_search(ctx.config, agent_id)
    configured = search.get("provider") if isinstance(search.get("provider"), str) else None
    if configured == "auto":
        configured = "openai"
    wanted = header(ctx.headers, MODEL_HEADER) or (search.get("model").strip() if isinstance(search.get("model"), str) else "")
    provider = configured or offline.PROVIDER
    provider_model = wanted
    if "/" in wanted:
        head, _, tail = wanted.partition("/")
        if not tail.strip():
            raise Refused(invalid_request("Unsupported embedding model reference."))
        if head.lower() != provider:
            raise Refused(invalid_request(OTHER_PROVIDER))
        provider_model = tail.strip()
    dims = payload.get("dimensions")
    if dims is None and isinstance(search.get("outputDimensionality"), int):
        dims = search["outputDimensionality"]
    return EmbeddingsPlan(
        model=model, agent_id=agent_id, texts=tuple(texts), base64=payload.get("encoding_format") == "base64",
        dimensions=dims, provider=provider, provider_model=provider_model or (offline.EMBED_MODEL if provider == offline.PROVIDER else ""),
    )


def embeddings_answer(plan: EmbeddingsPlan, vectors: list[list[float]]) -> Answer:
    """200 with the vectors (floats as JavaScript prints them, or base64 float32 LE)."""
    data = [
        {"object": "embedding", "index": i, "embedding": to_base64(v) if plan.base64 else js_floats(v)}
        for i, v in enumerate(vectors)
    ]
    return json_answer(200, {"object": "list", "data": data, "model": OFFLINE_MODEL if plan.offline else plan.model,
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})


def embeddings_failure() -> Answer:
    """The provider failed (or is not usable): 500 ``internal error``."""
    return internal_error()


__all__ = ["BODY_LIMIT", "EMBEDDINGS_SCHEMA", "OFFLINE_MODEL", "OTHER_PROVIDER", "EmbeddingsPlan", "embeddings_answer",
           "embeddings_failure", "plan_embeddings"]

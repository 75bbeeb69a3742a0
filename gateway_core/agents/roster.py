"""Agents and models from the config (http-agents-channels.md §3.1–§3.2, §3.4): who answers, with what.

Pure. The roster comes from ``agents.entries`` (current) or ``agents.list`` (the array form), else
it is the one implicit agent ``main``. A model ref is ``provider/model`` (the model part may hold
more slashes). With no provider and no primary model configured, every agent runs on the built-in
``offline/echo``; as soon as a primary is set, it is used, with its fallbacks.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from ..providers import offline
from ..providers.types import Compat, compat_from_config
from .keys import DEFAULT_AGENT_ID, normalize_agent_id

#: http-agents-channels.md §7: the run budget when nothing is configured (the docs disagree; §7 proposes 600).
DEFAULT_RUN_TIMEOUT_S = 600
#: http-agents-channels.md §2.4 step 7: max(8, 4 × CPUs) runs at once.
MIN_MAX_CONCURRENT = 8
DEFAULT_PROVIDER_TIMEOUT_S = 120.0
OFFLINE_REF = f"{offline.PROVIDER}/{offline.ECHO_MODEL}"


class Agent(Struct, frozen=True, kw_only=True):
    """One configured agent."""

    id: str
    name: str
    default: bool = False
    primary: str | None = None
    fallbacks: tuple[str, ...] = ()
    workspace: str | None = None
    identity_name: str | None = None
    system_prompt: str | None = None


class ModelTarget(Struct, frozen=True, kw_only=True):
    """A model ref resolved against ``models.providers``: everything a call needs but the messages."""

    provider: str
    model: str
    api: str
    base_url: str = ""
    api_key: str | None = None
    headers: dict[str, str] = {}
    timeout_s: float = DEFAULT_PROVIDER_TIMEOUT_S
    max_tokens: int | None = None
    context_window: int | None = None
    compat: Compat = Compat()
    name: str | None = None
    input: tuple[str, ...] = ("text",)
    #: The model is in the provider's catalog (an uncatalogued override still works, §9.9).
    known: bool = True

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model_spec(value: Any) -> tuple[str | None, tuple[str, ...]]:
    """``"p/m"`` (a strict primary) or ``{primary, fallbacks}``."""
    if isinstance(value, str) and value:
        return value, ()
    if isinstance(value, dict):
        primary = value.get("primary") if isinstance(value.get("primary"), str) else None
        fallbacks = tuple(f for f in value.get("fallbacks") or () if isinstance(f, str) and f)
        return primary, fallbacks
    return None, ()


class Roster(Struct, frozen=True, kw_only=True):
    """The configured agents and which one is the default."""

    agents: tuple[Agent, ...]
    default_id: str

    def get(self, agent_id: str) -> Agent | None:
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        return None

    @property
    def default(self) -> Agent:
        found = self.get(self.default_id)
        assert found is not None
        return found

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.agents]


def roster(config: dict[str, Any] | None) -> Roster:
    """The agents of ``config``: ``agents.entries``, else ``agents.list``, else the implicit ``main``."""
    agents_cfg = _obj(_obj(config).get("agents"))
    defaults = _obj(agents_cfg.get("defaults"))
    d_primary, d_fallbacks = _model_spec(defaults.get("model"))
    raw: list[dict[str, Any]] = []
    entries = agents_cfg.get("entries")
    if isinstance(entries, dict):
        raw = [{**_obj(v), "id": k} for k, v in entries.items()]
    elif isinstance(agents_cfg.get("list"), list):
        raw = [_obj(v) for v in agents_cfg["list"] if isinstance(v, dict) and isinstance(v.get("id"), str)]
    if not raw:
        raw = [{"id": DEFAULT_AGENT_ID}]
    out: list[Agent] = []
    for item in raw:
        aid = normalize_agent_id(str(item["id"]))
        primary, fallbacks = _model_spec(item.get("model"))
        if primary is None:
            primary, fallbacks = d_primary, d_fallbacks
        identity = _obj(item.get("identity"))
        out.append(
            Agent(
                id=aid,
                name=str(item.get("name") or identity.get("name") or aid),
                default=item.get("default") is True,
                primary=primary,
                fallbacks=fallbacks,
                workspace=item.get("workspace") if isinstance(item.get("workspace"), str) else defaults.get("workspace"),
                identity_name=identity.get("name") if isinstance(identity.get("name"), str) else None,
                system_prompt=item.get("systemPrompt") if isinstance(item.get("systemPrompt"), str) else None,
            )
        )
    marked = [a for a in out if a.default]
    if marked:
        default_id = marked[0].id
    elif len(out) == 1:
        default_id = out[0].id
    elif any(a.id == DEFAULT_AGENT_ID for a in out):
        default_id = DEFAULT_AGENT_ID
    else:
        default_id = out[0].id
    return Roster(agents=tuple(out), default_id=default_id)


def split_ref(ref: str) -> tuple[str, str]:
    """``provider/model`` → ``(provider, model)``; the model part may contain slashes."""
    provider, _, model = ref.partition("/")
    return provider, model


def providers(config: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _obj(_obj(_obj(config).get("models")).get("providers")).items() if isinstance(v, dict)}


def resolve_target(ref: str, config: dict[str, Any] | None, keys: dict[str, str | None] | None = None) -> ModelTarget | None:
    """``ref`` against ``models.providers`` (plus the built-in ``offline``); ``None`` if the provider is unknown.

    ``keys`` holds the providers' API keys as the host resolved them (env substitutions, SecretRefs).
    """
    provider, model = split_ref(ref)
    if not provider or not model:
        return None
    if provider == offline.PROVIDER and provider not in providers(config):
        entry = next((m for m in offline.CATALOG if m["id"] == model), None)
        return ModelTarget(
            provider=provider,
            model=model,
            api="offline",
            max_tokens=entry["maxTokens"] if entry else None,
            context_window=entry["contextWindow"] if entry else None,
            name=entry["name"] if entry else None,
            known=entry is not None,
        )
    pcfg = providers(config).get(provider)
    if pcfg is None:
        return None
    entry = next((m for m in pcfg.get("models") or () if isinstance(m, dict) and m.get("id") == model), None)
    headers = {str(k): str(v) for k, v in _obj(pcfg.get("headers")).items()}
    timeout = pcfg.get("timeoutSeconds")
    key = (keys or {}).get(provider)
    if key is None and isinstance(pcfg.get("apiKey"), str) and not str(pcfg["apiKey"]).startswith("${"):
        key = pcfg["apiKey"]
    return ModelTarget(
        provider=provider,
        model=model,
        api=str(pcfg.get("api") or "openai-completions"),
        base_url=str(pcfg.get("baseUrl") or pcfg.get("baseURL") or ""),
        api_key=key,
        headers=headers,
        timeout_s=float(timeout) if isinstance(timeout, int | float) and timeout > 0 else DEFAULT_PROVIDER_TIMEOUT_S,
        max_tokens=entry.get("maxTokens") if entry else None,
        context_window=entry.get("contextWindow") if entry else None,
        compat=compat_from_config(_obj(entry.get("compat")) if entry else None),
        name=entry.get("name") if entry else None,
        input=tuple(entry.get("input") or ("text",)) if entry else ("text",),
        known=entry is not None,
    )


def model_chain(
    agent: Agent, config: dict[str, Any] | None, keys: dict[str, str | None] | None = None, override: str | None = None
) -> list[ModelTarget]:
    """The models a turn tries, in order: the override alone, else primary then fallbacks, else offline."""
    refs = [override] if override else ([agent.primary, *agent.fallbacks] if agent.primary else [OFFLINE_REF])
    out = [t for t in (resolve_target(r, config, keys) for r in refs if r) if t is not None]
    return out


def catalog(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every configured model (``models.list``): providers' catalogs, plus offline/echo when no primary is set."""
    out: list[dict[str, Any]] = []
    for pid, pcfg in providers(config).items():
        for m in pcfg.get("models") or ():
            if isinstance(m, dict) and isinstance(m.get("id"), str):
                out.append(_catalog_row(pid, m))
    configured = any(a.primary for a in roster(config).agents)
    if not configured or not out:
        out.extend(_catalog_row(offline.PROVIDER, m) for m in offline.CATALOG)
    return out


def _catalog_row(provider: str, m: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": m["id"], "name": m.get("name") or m["id"], "provider": provider}
    for key in ("contextWindow", "reasoning", "input"):
        if key in m:
            row[key] = m[key]
    return row


def run_timeout_s(config: dict[str, Any] | None) -> float:
    value = _obj(_obj(_obj(config).get("agents")).get("defaults")).get("timeoutSeconds")
    if isinstance(value, int | float) and value >= 0:
        return float(value) if value > 0 else float("inf")
    return float(DEFAULT_RUN_TIMEOUT_S)


def max_concurrent(config: dict[str, Any] | None, cpus: int) -> int:
    value = _obj(_obj(_obj(config).get("agents")).get("defaults")).get("maxConcurrent")
    if isinstance(value, int) and value >= 1:
        return value
    return max(MIN_MAX_CONCURRENT, 4 * max(1, cpus))


__all__ = [
    "OFFLINE_REF",
    "Agent",
    "ModelTarget",
    "Roster",
    "catalog",
    "max_concurrent",
    "model_chain",
    "providers",
    "resolve_target",
    "roster",
    "run_timeout_s",
    "split_ref",
]

"""Agent-first model ids, agent selection, ``x-openclaw-model``, and the ``/v1/models`` payloads.

http-agents-channels.md §1.6.1–§1.6.2, §2.1–§2.2; observed in http-openai-observed.md §2, §3.3.
The OpenAI ``model`` field names an *agent*, never an LLM:

=====================  ===========================================================
``model`` (any case)   agent
=====================  ===========================================================
``openclaw``           the default agent
``openclaw/default``   the default agent
``openclaw/<id>``      ``<id>`` (``[a-z0-9][a-z0-9_-]{0,63}``, case-insensitive)
``openclaw:<id>``      ``<id>`` (valid in requests, but not listed by ``/v1/models``)
``agent:<id>``         ``<id>``
omitted / blank        the default agent (``openclaw`` is echoed)
anything else          400 ``Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.``
=====================  ===========================================================

The ``x-openclaw-agent-id`` header (alias ``x-openclaw-agent``) wins over ``model``. An unknown or
malformed agent is 400 ``Unknown agent '<id>'.``.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import unquote

from ..agents import keys
from ..agents.roster import Roster, providers, split_ref
from .wire import Answer, Refused, invalid_request, json_answer

INVALID_MODEL: Final = "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`."
INVALID_OVERRIDE: Final = "Invalid `x-openclaw-model`."
MULTIPLE_AGENTS: Final = (
    "Multiple agents are configured, but this operation has no explicit owner. Select an agent explicitly; "
    "CLI callers can pass --agent <id>, channels can add a binding, and ambient services can set their agentId target."
)
_ID: Final = r"[a-z0-9][a-z0-9_-]{0,63}"
_AGENT_MODEL: Final = re.compile(rf"^(?:openclaw[:/]|agent:)(?P<id>{_ID})$", re.IGNORECASE)
DEFAULT_ALIASES: Final = frozenset({"openclaw", "openclaw/default"})
AGENT_HEADERS: Final = ("x-openclaw-agent-id", "x-openclaw-agent")


def unknown_agent(agent_id: str) -> str:
    return f"Unknown agent '{agent_id}'."


def is_agent_model(model: str | None) -> bool:
    """Agent-id syntax (``openclaw``, ``openclaw/default``, ``openclaw/<id>``, ``openclaw:<id>``, ``agent:<id>``)."""
    raw = (model or "").strip()
    if not raw:
        return False
    return raw.lower() in DEFAULT_ALIASES or bool(_AGENT_MODEL.match(raw))


def agent_in_model(model: str | None) -> str | None:
    """The agent id a model names, lower-cased; ``None`` for the default aliases and for non-agent ids."""
    raw = (model or "").strip()
    if not raw or raw.lower() in DEFAULT_ALIASES:
        return None
    found = _AGENT_MODEL.match(raw)
    return found.group("id").lower() if found else None


def header(headers: dict[str, str], name: str) -> str | None:
    """A request header (``headers`` keys lower-case), trimmed; ``None`` when absent or blank."""
    value = headers.get(name)
    value = value.strip() if isinstance(value, str) else None
    return value or None


def resolve_agent(roster: Roster, model: str | None, headers: dict[str, str]) -> str:
    """§2.1: the agent a request addresses; raises :class:`Refused` (400) with the published texts."""
    if model is not None and model.strip() and not is_agent_model(model):
        raise Refused(invalid_request(INVALID_MODEL))
    raw = next((v for v in (header(headers, h) for h in AGENT_HEADERS) if v), None)
    if raw is not None:
        if not keys.is_agent_id(raw.lower()):
            raise Refused(invalid_request(unknown_agent(raw)))
        agent = raw.lower()
        if roster.get(agent) is None:
            raise Refused(invalid_request(unknown_agent(agent)))
        return agent
    named = agent_in_model(model)
    if named is not None:
        if roster.get(named) is None:
            raise Refused(invalid_request(unknown_agent(named)))
        return named
    return default_agent(roster)


def default_agent(roster: Roster) -> str:
    """The marked default, else the only agent (the implicit ``main``); a fleet without one is refused."""
    if len(roster.agents) > 1 and not any(a.default for a in roster.agents):
        raise Refused(invalid_request(MULTIPLE_AGENTS))
    return roster.default_id


# --------------------------------------------------------------------------- /v1/models


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []}


def listed_ids(roster: Roster) -> list[str]:
    """``openclaw``, ``openclaw/default``, the default agent, then ``openclaw/<id>`` per agent (roster order)."""
    ids = ["openclaw", "openclaw/default"]
    marked = [a for a in roster.agents if a.default] or (list(roster.agents) if len(roster.agents) == 1 else [])
    for agent in [*marked[:1], *roster.agents]:
        ref = f"openclaw/{agent.id}"
        if ref not in ids:
            ids.append(ref)
    return ids


def models_list(roster: Roster) -> Answer:
    """``GET /v1/models``: 200 ``{"object":"list","data":[…]}`` (backend models are never listed)."""
    return json_answer(200, {"object": "list", "data": [model_object(i) for i in listed_ids(roster)]})


def _decode_component(encoded: str) -> str | None:
    """``decodeURIComponent``: ``None`` on a malformed escape or bytes that are not UTF-8."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", encoded):
        return None
    try:
        return unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None


def model_detail(roster: Roster, encoded_id: str) -> Answer:
    """``GET /v1/models/{id}``; ``encoded_id`` is the raw path after ``/v1/models/`` (may hold ``/``)."""
    if not encoded_id:
        return invalid_request("Missing model id.")
    decoded = _decode_component(encoded_id)
    if decoded is None:
        return invalid_request("Invalid model id encoding.")
    if not is_agent_model(decoded):
        return invalid_request("Invalid model id.")
    not_found = json_answer(404, {"error": {"message": f"Model '{decoded}' not found.", "type": "invalid_request_error"}})
    if decoded.strip().lower() not in DEFAULT_ALIASES:
        agent = agent_in_model(decoded)
        if agent is None or roster.get(agent) is None:
            return not_found
    if decoded not in listed_ids(roster):
        return not_found
    return json_answer(200, model_object(decoded))


# --------------------------------------------------------------------------- x-openclaw-model


def model_override(
    config: dict[str, Any] | None,
    roster: Roster,
    agent_id: str,
    raw: str | None,
    *,
    allowed: tuple[str, ...] | None = None,
) -> str | None:
    """§2.2: the backend model an ``x-openclaw-model`` value selects, as ``provider/model``.

    The caller checks authority first (shared-secret callers and ``operator.admin``; else 403
    :func:`~gateway_core.openai.wire.missing_scope` ``operator.admin``). Resolution of a bare id: a
    configured alias (``agents.defaults.models.<ref>.alias``), then the one provider whose catalog
    has it, then the agent's default provider. An uncatalogued model of a known provider is
    accepted (b08, discovery in ``models.mode: merge``). ``allowed`` is the agent's model
    allowlist (``agents.defaults.modelPolicy.allow`` or per-agent), when one is configured.
    """
    value = (raw or "").strip()
    if not value:
        return None
    if any(ch.isspace() for ch in value) or value.startswith("/") or value.endswith("/"):
        raise Refused(invalid_request(INVALID_OVERRIDE))
    ref = _resolve_ref(config, roster, agent_id, value)
    if ref is None:
        raise Refused(invalid_request(INVALID_OVERRIDE))
    if allowed is not None and ref not in allowed and ref.split("/", 1)[0] + "/*" not in allowed:
        raise Refused(invalid_request(f"Model '{ref}' is not allowed for agent '{agent_id}'."))
    return ref


def _resolve_ref(config: dict[str, Any] | None, roster: Roster, agent_id: str, value: str) -> str | None:
    known = providers(config)
    if "/" in value:
        provider, model = split_ref(value)
        provider = provider.lower()
        return f"{provider}/{model}" if provider and model else None
    aliases = _aliases(config)
    if value.lower() in aliases:
        return aliases[value.lower()]
    owners = [pid for pid, p in known.items() if any(isinstance(m, dict) and m.get("id") == value for m in p.get("models") or ())]
    if len(owners) == 1:
        return f"{owners[0]}/{value}"
    agent = roster.get(agent_id)
    primary = agent.primary if agent is not None else None
    if primary and "/" in primary:
        return f"{split_ref(primary)[0]}/{value}"
    return None


def _aliases(config: dict[str, Any] | None) -> dict[str, str]:
    models = ((config or {}).get("agents") or {}).get("defaults", {}).get("models")
    out: dict[str, str] = {}
    if isinstance(models, dict):
        for ref, entry in models.items():
            alias = entry.get("alias") if isinstance(entry, dict) else None
            if isinstance(alias, str) and alias.strip() and isinstance(ref, str) and "/" in ref:
                out[alias.strip().lower()] = ref
    return out


__all__ = [
    "AGENT_HEADERS",
    "DEFAULT_ALIASES",
    "INVALID_MODEL",
    "INVALID_OVERRIDE",
    "MULTIPLE_AGENTS",
    "agent_in_model",
    "default_agent",
    "header",
    "is_agent_model",
    "listed_ids",
    "model_detail",
    "model_object",
    "model_override",
    "models_list",
    "resolve_agent",
    "unknown_agent",
]

"""Client tools and ``tool_choice`` (http-agents-channels.md §1.6.4–§1.6.5; observed §3.5, §3.6, §9.3).

Client tools are handed to the agent; the upstream model always gets ``tool_choice: "auto"``. A
forcing choice becomes system-prompt text instead, and is checked after the run:

=================================  ===============  ===============================================
``tool_choice``                    tools kept       extra system prompt / after the run
=================================  ===============  ===============================================
absent, ``"auto"``                 all              none
``"none"``                         none             none
``"required"``                     all (≥ 1)        "You must call one of the available tools
                                                    before responding." / a tool call is required
``{type:function, name}``          that one         "You must call the <name> tool before
                                                    responding." / a call of <name> is required
=================================  ===============  ===============================================

An unsatisfied requirement is 502 ``api_error`` (stream: an error frame): ``tool_choice=required
was not satisfied by the agent response`` or ``tool_choice required a <name> tool call, but the
agent did not produce one``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..providers.types import ToolCall, ToolSpec


class Requirement(NamedTuple):
    """A forcing ``tool_choice``: ``name`` is ``None`` for ``required``."""

    name: str | None

    @property
    def prompt(self) -> str:
        if self.name is None:
            return "You must call one of the available tools before responding."
        return f"You must call the {self.name} tool before responding."

    @property
    def unsatisfied_message(self) -> str:
        if self.name is None:
            return "tool_choice=required was not satisfied by the agent response"
        return f"tool_choice required a {self.name} tool call, but the agent did not produce one"

    def satisfied(self, calls: Sequence[ToolCall]) -> bool:
        if not calls:
            return False
        return self.name is None or any(c.name == self.name for c in calls)


Choice = Requirement | str | None  # None (auto), "none", or a Requirement


def chat_tools(value: Any) -> list[ToolSpec]:
    """``tools`` of a chat completion; :class:`ValueError` carries the published reason."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("tools must be an array")
    out: list[ToolSpec] = []
    for tool in value:
        if not isinstance(tool, dict):
            raise ValueError("each tool must be an object")
        if tool.get("type") != "function":
            raise ValueError("only function tools are supported")
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise ValueError("tool.function is required")
        name = fn.get("name").strip() if isinstance(fn.get("name"), str) else ""
        if not name:
            raise ValueError("tool.function.name is required")
        params = fn.get("parameters")
        out.append(
            ToolSpec(
                name=name,
                description=fn["description"] if isinstance(fn.get("description"), str) else "",
                parameters=params if isinstance(params, dict) else {},
            )
        )
    return out


def chat_choice(value: Any) -> Choice:
    """``tool_choice`` of a chat completion; :class:`ValueError` carries the published reason."""
    if value is None or value == "auto":
        return None
    if value == "none":
        return "none"
    if value == "required":
        return Requirement(None)
    if not isinstance(value, dict):
        raise ValueError("tool_choice must be a string or object")
    kind = value.get("type")
    if kind == "function":
        fn = value.get("function")
        name = fn.get("name").strip() if isinstance(fn, dict) and isinstance(fn.get("name"), str) else ""
        if not name:
            raise ValueError("tool_choice.function.name is required")
        return Requirement(name)
    if not isinstance(kind, str):
        raise ValueError("unsupported tool_choice type")
    raise ValueError(f"tool_choice {kind} is not supported")


def responses_choice(value: Any) -> Choice:
    """A (validated) Responses ``tool_choice``: ``{type:function,name}`` or ``{…,function:{name}}``."""
    if not value or value == "auto":
        return None
    if value == "none":
        return "none"
    if value == "required":
        return Requirement(None)
    name = (value["name"] if "name" in value else value["function"]["name"]).strip()
    if not name:
        raise ValueError("tool_choice.name is required")
    return Requirement(name)


def apply_choice(tools: list[ToolSpec], choice: Choice) -> tuple[list[ToolSpec], Requirement | None]:
    """The tools the agent gets and the requirement to check afterwards."""
    if choice is None:
        return tools, None
    if choice == "none":
        return [], None
    assert isinstance(choice, Requirement)
    kept = tools if choice.name is None else [t for t in tools if t.name == choice.name]
    if not kept:
        if choice.name is not None:
            raise ValueError(f"tool_choice requested unknown tool: {choice.name}")
        raise ValueError("tool_choice=required but no tools were provided")
    return kept, choice


__all__ = ["Choice", "Requirement", "apply_choice", "chat_choice", "chat_tools", "responses_choice"]

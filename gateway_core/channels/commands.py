"""Chat commands (§5.3 step 3): messages starting with ``/`` that the gateway answers itself.

:func:`parse` recognises ``/status``, ``/new``, ``/reset``, ``/help`` and ``/whoami`` (Telegram's
``/status@botname`` form too; a command addressed to another bot is not ours). They run before the
agent, for senders the access policy admitted; the gateway's answers use the published wording
where it is known (``✅ New session started.``). ``/new`` and ``/reset`` with text after them
reset the session and then hand that text to the agent. Unknown slash words are not commands:
the agent gets them as text.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

COMMANDS: Final[dict[str, str]] = {
    "status": "Show the session, agent and model status.",
    "new": "Start a new session.",
    "reset": "Reset the current session.",
    "help": "Show available commands.",
    "whoami": "Show your sender id.",
}
NEW_SESSION: Final = "\u2705 New session started."


class Command(Struct, frozen=True):
    name: str
    args: str = ""


def parse(text: str, bot_username: str | None = None) -> Command | None:
    """The command in ``text`` (``None``: not one of ours)."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    word, _, rest = stripped[1:].partition(" ")
    name, at, addressed = word.partition("@")
    if at and (bot_username is None or addressed.lower() != bot_username.lower().lstrip("@")):
        return None
    name = name.lower()
    if name not in COMMANDS:
        return None
    return Command(name, rest.strip())


def help_text() -> str:
    return "\n".join(["Commands:", *(f"/{name} — {about}" for name, about in COMMANDS.items())])


def status_text(facts: dict[str, Any]) -> str:
    """``/status``: what the sender's conversation runs on (facts from the host's session row)."""
    lines = [f"\U0001f99e OpenClaw {facts.get('version', '')}".rstrip()]
    lines.append(f"\U0001f9e0 Model: {facts.get('model') or 'unknown'}")
    lines.append(f"\U0001f916 Agent: {facts.get('agent')}")
    lines.append(f"\U0001f9f5 Session: {facts.get('sessionKey')}")
    lines.append(f"\U0001f4ac Messages: {facts.get('messages', 0)}")
    if facts.get("channel"):
        lines.append(f"\U0001f4e1 Channel: {facts['channel']} ({facts.get('accountId', 'default')})")
    return "\n".join(lines)


__all__ = ["COMMANDS", "NEW_SESSION", "Command", "help_text", "parse", "status_text"]

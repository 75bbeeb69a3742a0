"""The inbound pipeline (§5.3): one durably queued message → policy → commands → agent → outbox.

:func:`inbound_job` makes the gateway-level job that handles one ingress row. The host queued the
row durably before calling it (step 1) and spawns at most one job per conversation at a time until
the job reports :class:`~.effects.IngressAdopted` (it holds its place in the session lane), so a
conversation's messages reach the agent in order. The job:

1. evaluates the access policy (:mod:`.policy`) — drops, mention skips and pairing requests end
   here (a new pairing request queues its code for the sender, once);
2. answers chat commands (:mod:`.commands`): ``/new`` and ``/reset`` reset the session,
   ``/status``, ``/help``, ``/whoami`` answer from the gateway;
3. routes by bindings to an agent and a session key (:mod:`.routing`; a fleet without an owner
   fails closed);
4. runs the turn with the same machinery as the WebSocket methods (``agents.loop.run_turn``: the
   session lane queues it behind an active run), with the conversation as ``lastRoute`` unless a
   non-owner DM must not move it (§5.3 step 5);
5. completes the ingress row and queues the reply's chunks in the durable outbox **in one
   transaction** (``ingress_done``); ``NO_REPLY`` queues nothing; a failed run queues the
   published apology.

Exactly once: the run id is derived from the row's key. A row replayed after a crash first looks
for a finished turn with that run id in the session store and delivers its reply instead of
running the agent again; the ingress queue is idempotent by platform event id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Generator
from typing import Any, Final

from msgspec import Struct, structs

from ..agents import roster as R
from ..agents.effects import StoreCall
from ..agents.loop import TurnResult, TurnSpec, run_turn
from ..app.effects import Effect, EffectFailed
from ..app.gateway import Ctx, GatewayApp, Job
from ..app.runs import Run
from . import accounts as A
from . import commands, policy, routing
from .effects import ChannelCall, ChannelTyping, IngressAdopted
from .inbound import Inbound, OutboundItem
from .rules import ChannelRules
from .state import channels_state

RUN_PREFIX: Final = "ch-"
AGENT_FAILED: Final = "\u26a0\ufe0f Agent couldn't generate a response. Please try again."
HISTORY_SCAN: Final = 50


class IngressRow(Struct, frozen=True, kw_only=True):
    """A queued inbound message as the host hands it over (``attempts`` > 0: a replay)."""

    seq: int
    msg: Inbound
    attempts: int = 0


def channel_run_id(key: str) -> str:
    """The run id of an ingress row's turn (stable across restarts)."""
    return RUN_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def is_channel_run(run_id: str) -> bool:
    """Runs the channel ingress replays itself after a crash (the store's carry-over must skip them)."""
    return run_id.startswith(RUN_PREFIX)


def conversation_key(msg: Inbound) -> str:
    """Messages with the same key are handled in arrival order."""
    return f"{msg.channel}:{msg.account_id}:{msg.peer_id}:{msg.thread_id or ''}"


def inbound_job(app: GatewayApp, row: IngressRow, now: float, wall_ms: int) -> Job:
    ctx = Ctx(app, None, f"ingress:{row.msg.key}", "channel.inbound", now, wall_ms)
    return Job(ctx, handle(ctx, row))


def _mention_patterns(config: dict[str, Any], agent_id: str | None) -> list[str]:
    out: list[str] = []
    messages = (config.get("messages") or {}) if isinstance(config.get("messages"), dict) else {}
    group_chat = messages.get("groupChat") if isinstance(messages.get("groupChat"), dict) else {}
    out += [p for p in group_chat.get("mentionPatterns") or () if isinstance(p, str)]
    entries = ((config.get("agents") or {}).get("entries") or {}) if isinstance(config.get("agents"), dict) else {}
    if agent_id and isinstance(entries, dict) and isinstance(entries.get(agent_id), dict):
        gc = entries[agent_id].get("groupChat") or {}
        out += [p for p in (gc.get("mentionPatterns") or ()) if isinstance(p, str)] if isinstance(gc, dict) else []
    return out


def _pattern_mentioned(patterns: list[str], text: str) -> bool:
    for pattern in patterns:
        try:
            if re.search(pattern, text, re.IGNORECASE):
                return True
        except re.error:
            continue
    return False


#: Reply threading tags an agent may write (``[[reply_to_current]]``, ``[[reply_to:<id>]]``).
REPLY_TAG: Final = re.compile(r"\[\[\s*reply_to(?:_current|\s*:\s*([^\]\s]+))\s*\]\]")


def reply_threading(text: str, msg: Inbound, mode: str) -> tuple[str, list[str | None]]:
    """The text without its reply tags, and which message each chunk replies to, as a rule:
    ``replyToMode`` ``off`` (default) threads only when the agent wrote a tag, ``first`` threads
    the first chunk to the triggering message, ``all`` every chunk. A tag names the message
    (``[[reply_to_current]]``: the triggering one) and threads the first chunk at least.
    Returned as ``[first, rest]``."""
    target: str | None = None
    tagged = False
    for found in REPLY_TAG.finditer(text):
        tagged = True
        target = found.group(1) or msg.message_id
    if tagged:
        text = REPLY_TAG.sub("", text).strip()
    if not tagged and mode in ("first", "all"):
        target = msg.message_id
    first = target if (tagged or mode in ("first", "all")) else None
    return text, [first, target if mode == "all" else None]


def _items(msg: Inbound, rules: ChannelRules, account: dict[str, Any], text: str, key: str, kind: str) -> list[OutboundItem]:
    mode = account.get("replyToMode") if isinstance(account.get("replyToMode"), str) else "off"
    text, (first, rest) = reply_threading(text, msg, mode)
    chunks = rules.render(text, msg.reply_target, account)
    return [
        OutboundItem(
            channel=msg.channel, account_id=msg.account_id, target=msg.reply_target, text=chunk,
            key=f"{key}:{i}", kind=kind, group=key, index=i, count=len(chunks), thread_id=msg.thread_id,
            parse_mode=rules.parse_mode, reply_to=first if i == 0 else rest,
        )
        for i, chunk in enumerate(chunks)
    ]


def _after_first(gen: Generator[Effect, Any, Any], on_first: Callable[[], None]) -> Generator[Effect, Any, Any]:
    """``yield from gen``, calling ``on_first`` once ``gen`` ran up to its first effect (for a turn:
    once it has asked for its session lane)."""
    try:
        effect = next(gen)
    except StopIteration as stop:
        on_first()
        return stop.value
    on_first()
    while True:
        try:
            value = yield effect
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - forwarded into the delegate, as yield from does
            try:
                effect = gen.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                effect = gen.send(value)
            except StopIteration as stop:
                return stop.value


def handle(ctx: Ctx, row: IngressRow) -> Generator[Effect, Any, str]:
    """The job: returns how the row ended (``dropped``, ``pairing``, ``command``, ``ok``, …)."""
    app = ctx.app
    msg = row.msg
    adopted = [False]

    def adopt() -> None:
        if not adopted[0]:
            adopted[0] = True
            app.outbox.append(IngressAdopted(msg.key))

    try:
        return (yield from _process(ctx, row, adopt))
    except EffectFailed as failure:
        ctx.log("error", msg.channel, f"{msg.channel}: inbound {msg.key} failed: {failure.detail or failure.message}")
        try:
            yield ChannelCall("ingress_fail", (msg.key, failure.message))
        except EffectFailed:
            pass
        return "failed"
    finally:
        adopt()


def _done(msg: Inbound, items: list[OutboundItem], outcome: str) -> ChannelCall:
    return ChannelCall("ingress_done", (msg.key,), {"items": items, "outcome": outcome})


def _process(ctx: Ctx, row: IngressRow, adopt: Callable[[], None]) -> Generator[Effect, Any, str]:
    app = ctx.app
    state = channels_state(app)
    msg = row.msg
    rules = state.rules.get(msg.channel) or ChannelRules()
    config = app.config
    sec = A.section(config, msg.channel)
    account = A.account_config(sec, msg.account_id)
    default_account = A.default_account_id(sec)
    access = A.access_config(config, msg.channel, msg.account_id, group_fallback_to_allow_from=rules.group_fallback_to_allow_from)
    picked = routing.route(config, app.roster, msg, default_account)
    agent_id = picked.agent_id if isinstance(picked, routing.Route) else None
    if msg.is_group and not msg.mentioned and _pattern_mentioned(_mention_patterns(config, agent_id), msg.text):
        msg = structs.replace(msg, mentioned=True)
    paired: list[str] = []
    if not msg.is_group and access.dm_policy in ("pairing", "allowlist"):
        paired = yield ChannelCall("pairing_allowed", (msg.channel, msg.account_id))
    admission = policy.decide(
        msg, access, paired, identities=rules.identities(msg, account), normalize=rules.normalize, aliases=rules.aliases
    )
    if admission.action in ("drop", "skip"):
        ctx.log("info", msg.channel, f"{msg.channel}: {admission.reason}")
        yield _done(msg, [], "skipped" if admission.action == "skip" else "dropped")
        return admission.action
    if admission.action == "pairing":
        up = yield ChannelCall("pairing_upsert", (msg.channel, msg.account_id, rules.pairing_id(msg), rules.pairing_meta(msg)))
        items: list[OutboundItem] = []
        if up.created:
            items = [OutboundItem(channel=msg.channel, account_id=msg.account_id, target=msg.reply_target,
                                  text=rules.pairing_message(msg, up.code), key=f"{msg.key}:pairing", kind="pairing",
                                  group=f"{msg.key}:pairing", parse_mode=rules.parse_mode)]
            ctx.log("info", msg.channel, f"{msg.channel}: pairing request from {msg.sender_id} (account {msg.account_id})")
        else:
            ctx.log("info", msg.channel, f"{msg.channel}: {admission.reason} (pairing pending)")
        yield _done(msg, items, "pairing")
        return "pairing"
    if isinstance(picked, routing.Unrouted):
        ctx.log("warn", msg.channel, f"{msg.channel}: {picked.reason}; fix: {picked.fix}")
        state.patch(msg.channel, msg.account_id, {"lastError": picked.reason})
        yield _done(msg, [], "unrouted")
        return "unrouted"
    route = picked
    text = msg.text
    cmd = commands.parse(msg.text, rules.bot_name(msg))
    replies: list[str] = []
    if cmd is not None:
        if cmd.name in ("new", "reset"):
            yield StoreCall("reset", (route.session_key, ctx.wall_ms))
            replies.append(commands.NEW_SESSION)
            text = cmd.args
        elif cmd.name == "status":
            record = yield StoreCall("get", (route.session_key,))
            agent = app.roster.get(route.agent_id)
            replies.append(commands.status_text({
                "version": app.facts.version,
                "model": (record.last_model if record is not None and record.last_model else None) or (agent.primary if agent else None) or R.OFFLINE_REF,
                "agent": route.agent_id,
                "sessionKey": route.session_key,
                "messages": record.message_count if record is not None else 0,
                "channel": msg.channel,
                "accountId": msg.account_id,
            }))
            text = ""
        elif cmd.name == "help":
            replies.append(commands.help_text())
            text = ""
        elif cmd.name == "whoami":
            replies.append(f"{rules.meta.label} id: {msg.sender_id}")
            text = ""
        if not text.strip():
            items = _items(msg, rules, account, "\n\n".join(replies), f"{msg.key}:command", "command")
            yield _done(msg, items, "command")
            return "command"
    run_id = channel_run_id(msg.key)
    if row.attempts > 0:
        prior = yield from _prior_reply(route.session_key, run_id)
        if prior is not None:
            items = _command_items(msg, rules, account, replies) + _reply_items(msg, rules, account, prior, run_id)
            yield _done(msg, items, "replayed")
            return "replayed"
    agent = app.roster.get(route.agent_id) or app.roster.default
    spec = TurnSpec(
        agent=agent,
        session_key=route.session_key,
        message=text,
        surface="agent",
        channel=msg.channel,
        extra_system=_context(msg, rules),
        timeout_s=R.run_timeout_s(config),
        sender={"channel": msg.channel, "accountId": msg.account_id, "id": msg.sender_id,
                **({"name": msg.sender_name} if msg.sender_name else {}),
                **({"username": msg.sender_username} if msg.sender_username else {})},
        route=_last_route(msg, access, route, rules),
    )
    run = app.runs.add(
        Run(run_id=run_id, session_key=route.session_key, agent_id=agent.id, kind="channel", started_at=ctx.wall_ms), ctx.wall_ms
    )
    state.run_started(msg.channel, msg.account_id, run_id, ctx.wall_ms)
    app.outbox.append(ChannelTyping(msg.channel, msg.account_id, msg.reply_target, run_id))
    try:
        result: TurnResult = yield from _after_first(run_turn(ctx, run, spec), adopt)
    finally:
        state.run_ended(msg.channel, msg.account_id, run_id, ctx.wall_ms)
    items = _command_items(msg, rules, account, replies) + _reply_items(msg, rules, account, result, run_id)
    yield _done(msg, items, result.status)
    return result.status


def _command_items(msg: Inbound, rules: ChannelRules, account: dict[str, Any], replies: list[str]) -> list[OutboundItem]:
    if not replies:
        return []
    return _items(msg, rules, account, "\n\n".join(replies), f"{msg.key}:command", "command")


def _reply_items(msg: Inbound, rules: ChannelRules, account: dict[str, Any], result: TurnResult, run_id: str) -> list[OutboundItem]:
    if result.status == "ok":
        if result.silent or not result.text.strip():
            return []
        return _items(msg, rules, account, result.text, f"{msg.key}:reply", "reply")
    if result.status in ("error", "timeout"):
        return _items(msg, rules, account, AGENT_FAILED, f"{msg.key}:reply", "reply")
    return []  # aborted: nobody asked for an answer any more


def _prior_reply(session_key: str, run_id: str) -> Generator[Effect, Any, TurnResult | None]:
    """The finished turn of ``run_id`` in the store, if the crash came after it was written."""
    record = yield StoreCall("get", (session_key,))
    if record is None:
        return None
    history = yield StoreCall("messages", (record.session_id,), {"limit": HISTORY_SCAN})
    mine = [m for m in history if m.run_id == run_id]
    if not mine:
        return None
    last = mine[-1]
    meta = last.meta or {}
    if last.role != "assistant":
        return TurnResult(status="ok", text="")
    text = "".join(p.get("text", "") for p in last.content if isinstance(p, dict)) if isinstance(last.content, list) else str(last.content)
    if meta.get("stopReason") == "error":
        return TurnResult(status="error", error=text)
    return TurnResult(status="ok", text=text, silent=bool(meta.get("silent")))


def _context(msg: Inbound, rules: ChannelRules) -> str:
    who = msg.sender_name or msg.sender_username or msg.sender_id
    handle = f" (@{msg.sender_username})" if msg.sender_username and msg.sender_username != who else ""
    if msg.is_group:
        where = f"{rules.meta.label} {msg.chat_type} {msg.peer_id}"
        return f"Conversation: {where}; this message is from {who}{handle}, id {msg.sender_id}."
    return f"Conversation: {rules.meta.label} direct message from {who}{handle}, id {msg.sender_id}."


def _last_route(msg: Inbound, access: A.AccessConfig, route: routing.Route, rules: ChannelRules) -> dict[str, Any] | None:
    """The reply target recorded as the session's ``lastRoute`` (``None``: leave it as it is)."""
    if not msg.is_group and route.dm_scope == "main":
        owners = [e for e in access.allow_from if e.strip() != "*"]
        if len(owners) == 1 and rules.normalize(policy.strip_channel_prefix(owners[0], msg.channel, rules.aliases)) != rules.normalize(msg.sender_id):
            return None
    out: dict[str, Any] = {"channel": msg.channel, "to": msg.reply_target, "accountId": msg.account_id}
    if msg.thread_id:
        out["threadId"] = msg.thread_id
    return out


__all__ = [
    "AGENT_FAILED",
    "RUN_PREFIX",
    "IngressRow",
    "channel_run_id",
    "conversation_key",
    "handle",
    "inbound_job",
    "is_channel_run",
]

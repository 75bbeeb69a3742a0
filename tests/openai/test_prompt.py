"""Prompt flattening details and the chat image rules (http-agents-channels.md §2.4; observed §1.2, §3.5)."""

from __future__ import annotations

import base64
import json

import pytest
from support import context

from gateway_core.openai.chat import plan_chat
from gateway_core.openai.prompt import ImageRules, chat_prompt, resolve_images, responses_prompt
from gateway_core.openai.wire import Refused

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 60).decode()


def image_message(*urls: str, text: str | None = None) -> dict:
    parts = [{"type": "text", "text": text}] if text else []
    return {"role": "user", "content": parts + [{"type": "image_url", "image_url": {"url": u}} for u in urls]}


def test_image_only_user_message() -> None:
    plan = plan_chat(json.dumps({"messages": [image_message(PNG)]}).encode(), context())
    assert plan.message == "User sent image(s) with no text."
    assert plan.images == ({"type": "image", "data": PNG.split(",", 1)[1], "mimeType": "image/png"},)


def test_images_come_only_from_the_latest_user_message() -> None:
    messages = [image_message(PNG, text="old"), {"role": "assistant", "content": "seen"}, {"role": "user", "content": "now"}]
    plan = plan_chat(json.dumps({"messages": messages}).encode(), context())
    assert plan.images == () and plan.message.endswith("User: now")


@pytest.mark.parametrize(
    "urls",
    [["https://example.com/a.png"], ["data:image/png,abc"], ["data:image/png;base64,"], ["data:image/bmp;base64,AAAA"], [PNG] * 9],
)
def test_refused_images(urls: list[str]) -> None:
    with pytest.raises(Refused) as refused:
        plan_chat(json.dumps({"messages": [image_message(*urls, text="look")]}).encode(), context())
    assert refused.value.answer.json()["error"]["message"] == "Invalid image_url content in `messages`."


def test_image_rules_are_configurable() -> None:
    assert resolve_images(["https://example.com/a.png"], ImageRules(allow_url=True)) == [{"type": "image", "url": "https://example.com/a.png"}]
    with pytest.raises(ValueError, match="too large"):
        resolve_images([PNG], ImageRules(max_bytes=10))


def test_flattening_edge_cases() -> None:
    p = chat_prompt([{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""}])
    assert p.message.endswith('Assistant: tool_call id=c1 name=f arguments={"a":1}\n\n[Current message - respond to this]\nTool:c1: ')
    assert chat_prompt([{"role": "tool", "tool_call_id": "c9", "content": "r"}]).message == "Tool:c9: r"
    assert chat_prompt([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": ""}]}]).message == "a"
    assert chat_prompt("not a list").message == ""


def test_responses_items_flatten() -> None:
    items = [{"type": "message", "role": "user", "content": "q"},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "42"}]
    got = responses_prompt(items)
    assert got.message == ("[Chat messages since your last reply - for context]\nUser: q\nAssistant: tool_call id=c1 name=f arguments={}"
                           "\n\n[Current message - respond to this]\nTool:c1: 42")
    assert got.active == -1  # a tool result came after the user message: its media does not count

"""The SSE encoders do work per delta, not per text so far, and still show the text trimmed.

The trimmed text used to be recomputed from the whole text at every delta (``js_trim`` of the text
so far, then a prefix check against what streamed): O(N²) characters for N deltas. The work is
counted here through ``js_trim`` itself, and the incremental trimming is checked against the
whole-text definition on generated deltas (whitespace of every kind JavaScript trims).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import context, ok

from gateway_core.openai import chat_render
from gateway_core.openai.chat import plan_chat
from gateway_core.openai.chat_render import ChatStream, ShownText
from gateway_core.openai.jsonbody import JS_WHITESPACE, js_trim
from gateway_core.openai.responses import plan_responses
from gateway_core.openai.responses_render import ResponsesStream


def chat_stream() -> ChatStream:
    payload = {"stream": True, "messages": [{"role": "user", "content": "hi"}]}
    return ChatStream(plan_chat(json.dumps(payload).encode(), context()))


def responses_stream() -> ResponsesStream:
    return ResponsesStream(plan_responses(json.dumps({"model": "openclaw", "stream": True, "input": "hi"}).encode(), context()))


@pytest.mark.parametrize("make", [chat_stream, responses_stream], ids=["chat", "responses"])
def test_trimming_work_is_linear_in_the_text(make: object, monkeypatch: pytest.MonkeyPatch) -> None:
    trimmed = [0]

    def counting_trim(text: str) -> str:
        trimmed[0] += len(text)
        return js_trim(text)

    monkeypatch.setattr(chat_render, "js_trim", counting_trim)
    stream = make()  # type: ignore[operator]
    stream.open()
    deltas = [f" word{i}\n" for i in range(3000)]
    for d in deltas:
        stream.assistant(delta=d)
    text = "".join(deltas)
    stream.finish(ok(text))
    assert trimmed[0] <= 2 * len(text), trimmed[0]  # per delta this was about 3000 * len(text) / 2


whitespace = st.sampled_from([" ", "\n", "\t", "\u00a0", "\u3000", "\ufeff", "\u2028"])
visible = st.sampled_from(["a", "é", "😀", "x"])
deltas = st.lists(st.text(st.one_of(whitespace, visible), max_size=6), max_size=30)


@settings(max_examples=300, deadline=None)
@given(deltas)
def test_pieces_are_the_trimmed_text_as_it_grows(parts: list[str]) -> None:
    shown = ShownText()
    sent = ""
    so_far = ""
    for p in parts:
        so_far += p
        sent += shown.update(delta=p)
        whole = js_trim(so_far)
        assert sent == whole.rstrip(JS_WHITESPACE) and whole.startswith(sent)  # all but trailing whitespace
    final = shown.final(so_far, "fallback")
    expected = js_trim(so_far) if sent else (js_trim(so_far) or "fallback")
    assert final == expected and sent + shown.tail(final) == final
    assert shown.text == so_far and shown.streamed == sent


def test_a_held_stream_sends_nothing_and_keeps_the_text() -> None:
    shown = ShownText(hold=True)
    assert [shown.update(delta=d) for d in ("a", " b", " c ")] == ["", "", ""]
    assert shown.text == "a b c " and shown.final("from the result ", "x") == "from the result"

"""Our refusals against the published gateway's, body for body (needs ``OPENCLAW_REFERENCE_BIN``).

Almost every body below is refused before any model call (the few it accepts are answered by the
scripted upstream, and then our planner must accept them too). The published gateway runs once for
the module (§0.1 config); each body goes to it and to our planner, and the status and the exact
answer bytes must agree. A second check runs the reference's own
Node ``JSON.parse`` over malformed documents and compares its messages with :mod:`jsonbody`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agent_gateways import NEEDS_REFERENCE, REFERENCE, TOKEN, agent_gateway, observed_config
from support import CONFIG, context

from gateway_core.openai.chat import plan_chat
from gateway_core.openai.embeddings import plan_embeddings
from gateway_core.openai.jsonbody import BadJson, parse_body
from gateway_core.openai.responses import plan_responses
from gateway_core.openai.wire import Refused

pytestmark = NEEDS_REFERENCE

U = ',"messages":[{"role":"user","content":"x"}]'
CHAT = [
    '{"model":"openclaw",', "[1]", '"x"', "null", '{"messages":"x"}', '{"model":5' + U + "}", '{"stream":"yes"' + U + "}",
    '{"max_tokens":1.5' + U + "}", '{"max_tokens":-3' + U + "}", '{"max_tokens":"3"' + U + "}",
    '{"max_completion_tokens":0,"max_tokens":0' + U + "}", '{"max_tokens":9007199254740993' + U + "}",
    '{"temperature":"hot"' + U + "}", '{"top_p":2' + U + "}", '{"frequency_penalty":3' + U + "}", '{"presence_penalty":-3' + U + "}",
    '{"seed":1.5' + U + "}", '{"stop":5' + U + "}", '{"stop":["a","b","c","d","e"]' + U + "}", '{"stop":[""]' + U + "}",
    '{"response_format":"json"' + U + "}", '{"response_format":{"type":"xml"}' + U + "}",
    '{"stream_options":{"include_usage":"y"}' + U + "}", '{"user":5' + U + "}", '{"tools":[{"type":"custom"}]' + U + "}",
    '{"tools":[{"type":"function"}]' + U + "}", '{"tools":[{"type":"function","function":{"name":" "}}]' + U + "}",
    '{"tools":[5]' + U + "}", '{"tool_choice":"required"' + U + "}", '{"tool_choice":"bogus"' + U + "}",
    '{"tool_choice":{"type":"allowed_tools"}' + U + "}", '{"tool_choice":{"type":"function"}' + U + "}",
    '{"tool_choice":5' + U + "}", '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}',
    '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}', '{"messages":[{"role":"user","content":"  "}]}',
    '{"model":"openclaw/"' + U + "}", '{"model":"openclaw/ghost"' + U + "}", '{"model":"agent:Main!"' + U + "}",
    '{"messages":[{"role":"tool","content":"x"}]}', '{"messages":[{"role":"bot","content":"x"}]}', "{}", "  \n ",
    '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGk="}}]}]}',
]
RESPONSES = [
    '{"model":"openclaw"}', "{}", '{"model":5,"input":"x"}', '{"model":"openclaw","input":5}',
    '{"model":"openclaw","input":"x","a":1,"b":2}', '{"model":"openclaw","input":[{"type":"bogus"}]}',
    '{"model":"openclaw","input":[{"type":"message","role":"bogus","content":"x"}]}',
    '{"model":"openclaw","input":[{"type":"message","role":"user","content":5}]}',
    '{"model":"openclaw","input":[{"type":"message","role":"user","content":"x","extra":1}]}',
    '{"model":"openclaw","input":[{"type":"message","role":"user","content":"x","phase":"final_answer"}]}',
    '{"model":"openclaw","input":[{"role":"user","content":"x"}]}',
    '{"model":"openclaw","input":[{"type":"message","role":"user","content":[{"type":"input_text"}]}]}',
    '{"model":"openclaw","input":[{"type":"function_call_output","call_id":"a"}]}',
    '{"model":"openclaw","input":[{"type":"function_call","name":"f","arguments":"{}","extra":true}]}',
    '{"model":"openclaw","input":"x","tools":[{"type":"function","name":""}]}', '{"model":"openclaw","input":"x","tools":[{"type":"function"}]}',
    '{"model":"openclaw","input":"x","tools":[{"type":"function","name":"f","parameters":[]}]}',
    '{"model":"openclaw","input":"x","tool_choice":"bogus"}', '{"model":"openclaw","input":"x","tool_choice":{"type":"function","name":"nope"}}',
    '{"model":"openclaw","input":"x","tool_choice":"required"}', '{"model":"openclaw","input":"x","text":{"format":{"type":"json_object"}}}',
    '{"model":"openclaw","input":"x","temperature":3}', '{"model":"openclaw","input":"x","top_p":-1}',
    '{"model":"openclaw","input":"x","max_output_tokens":0}', '{"model":"openclaw","input":"x","max_output_tokens":2.5}',
    '{"model":"openclaw","input":"x","metadata":{"a":1}}', '{"model":"openclaw","input":"x","reasoning":{"effort":"max"}}',
    '{"model":"openclaw","input":"x","truncation":"x"}', '{"model":"openclaw","input":"x","stream":"yes"}',
    '{"model":"openclaw","input":[]}', '{"model":"openclaw","input":""}',
    '{"model":"openclaw","input":[{"type":"message","role":"system","content":"only sys"}]}',
    '{"model":"openclaw","input":"x","user":5}', '{"model":"openclaw","input":"x","previous_response_id":5}',
    '{"model":"gpt-4o","input":"x"}', '{"model":"openclaw/ghost","input":"x"}', '{"model":"openclaw","input":"x","include":[]}',
    '{"model":"openclaw","input":[{"type":"message","role":"user","content":[{"type":"input_image","source":{"type":"url","url":"nope"}}]}]}',
]
EMBEDDINGS = [
    '{"model":"openclaw","input":"x","encoding_format":"hex"}', '{"model":"openclaw","input":"x","dimensions":0}',
    '{"model":"openclaw","input":"x","dimensions":1.5}', '{"model":5,"input":"x"}', '{"model":"openclaw"}',
    '{"model":"openclaw","input":["a",""]}', '{"model":"openclaw/nope","input":"a"}', '{"model":"openclaw","input":["a",5]}',
    '{"input":"a"}', '{"model":"  ","input":"a"}', '{"model":"text-embedding-3-small","input":"a"}', '{"model":"openclaw","input":[]}',
]
PLANNERS = {"/v1/chat/completions": plan_chat, "/v1/responses": plan_responses, "/v1/embeddings": plan_embeddings}
CASES = [(p, b) for p, bodies in (("/v1/chat/completions", CHAT), ("/v1/responses", RESPONSES), ("/v1/embeddings", EMBEDDINGS)) for b in bodies]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with agent_gateway("reference", tmp_path_factory.mktemp("ref")) as (port, _upstream):
        yield port


def ours(path: str, body: bytes) -> tuple[int, str]:
    try:
        PLANNERS[path](body, context())
    except Refused as refused:
        return refused.answer.status, refused.answer.body.decode()
    return 200, "(planned)"


@pytest.mark.parametrize(("path", "body"), CASES, ids=[f"{p.rsplit('/', 1)[-1]}:{i}" for i, (p, _) in enumerate(CASES)])
def test_refusals_match_the_published_gateway(reference: int, path: str, body: str) -> None:
    got = httpx.post(f"http://127.0.0.1:{reference}{path}", content=body.encode(),
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    expected = (200, "(planned)") if got.status_code == 200 else (got.status_code, got.text)
    assert ours(path, body.encode()) == expected


MALFORMED = [
    '{"model":"openclaw",', "{", '{"a":1,}', "[1,2", '{"a" 1}', '{"a":}', "abc", '{"a":1}x', '"abc', '{"a":"\x01"}', '{"a":-}',
    '{"a":1.}', '{"a":1e}', "{a:1}", "[1,]", '{"a":tru}', "nul", '{"a":"\\x"}', '{"a":"\\u12"}', "01", "[01]", "-", "1.", "1e+",
    '"\\', '"\\u', "tx", "t", "NaN", "undefined", "[object Object]", '{"a":undefined}', '"😀" x', '["😀", x]',
    "x" * 30, "[1,2,3,4,5,6,7,8,9,0,1,2,3,4,]", "{\n\"a\" 1}", "{\r\n\"a\" 1}", "{\r\"a\" 1}", "[+1]", "[.5]", "[1.5.]",
    '{"é":"😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",]', "'single'", '{"a":1}}', "[[[[", '{"a":{"b":[1,{"c":}]}}', "\ufeff{}",
]


def _node() -> tuple[str, Path] | None:
    launcher = Path(REFERENCE or "")
    text = launcher.read_text(errors="replace") if launcher.is_file() else ""
    found = re.search(r'PATH="([^"]+?)/bin:', text)
    return (found.group(1) + "/bin/node", launcher) if found else None


def test_json_errors_match_node() -> None:
    node = _node()
    if node is None:
        pytest.skip("the reference launcher does not name its Node")
    script = ('const l=JSON.parse(require("fs").readFileSync(0,"utf8"));'
              'console.log(JSON.stringify(l.map(s=>{try{JSON.parse(s.trim());return null}catch(e){return e.message}})))')
    done = subprocess.run([node[0], "-e", script], input=json.dumps(MALFORMED), capture_output=True, text=True, timeout=60, check=True)
    expected = json.loads(done.stdout)
    got = []
    for text in MALFORMED:
        try:
            parse_body(text.encode())
            got.append(None)
        except BadJson as bad:
            got.append(bad.message)
    assert got == expected


def test_config_is_the_recorded_one() -> None:
    reference_cfg = observed_config(1, "http://127.0.0.1:2/v1")
    assert reference_cfg["agents"] == CONFIG["agents"] and reference_cfg["memory"] == CONFIG["memory"]

"""``/v1/models`` and ``/v1/embeddings`` against the recordings, byte for byte."""

from __future__ import annotations

import pytest
from recordings import load
from support import CONFIG, context

from gateway_core.agents.roster import roster
from gateway_core.openai.embeddings import OFFLINE_MODEL, embeddings_answer, plan_embeddings
from gateway_core.openai.models import model_detail, models_list
from gateway_core.openai.wire import Refused, method_not_allowed

ROSTER = roster(CONFIG)


def test_models_list_is_the_recorded_bytes() -> None:
    case = load("a01_models_bearer")
    answer = models_list(ROSTER)
    assert (answer.status, answer.body.decode()) == (200, case.response_body)
    assert len(answer.body) == 294


@pytest.mark.parametrize(
    "name",
    ["a04_model_openclaw", "a05_model_default_encoded", "a06_model_main_literal_slash", "a07_model_unknown_agent",
     "a08_model_not_agent_syntax", "a09_model_empty_id", "a10_model_colon_form", "a13_model_bad_percent",
     "a14_model_upstream_ref"],
)
def test_model_detail_is_the_recorded_bytes(name: str) -> None:
    case = load(name)
    answer = model_detail(ROSTER, case.path.removeprefix("/v1/models/"))
    assert (answer.status, answer.body.decode()) == (case.status, case.response_body)


def test_models_post_is_plain_405() -> None:
    case = load("a12_models_post_405")
    answer = method_not_allowed("GET")
    assert (answer.status, answer.body.decode(), dict(answer.headers)["Content-Type"]) == (
        405, case.response_body, case.response_headers["content-type"])


@pytest.mark.parametrize(
    "name",
    ["e05_embeddings_missing_model", "e06_embeddings_bad_model", "e07_embeddings_empty_input",
     "e08_embeddings_empty_string", "e10_embeddings_x_openclaw_model_other_provider", "e13_embeddings_input_numbers"],
)
def test_embedding_refusals_are_the_recorded_bytes(name: str) -> None:
    case = load(name)
    with pytest.raises(Refused) as refused:
        plan_embeddings(case.body, context(case.headers))
    assert (refused.value.answer.status, refused.value.answer.body.decode()) == (case.status, case.response_body)


@pytest.mark.parametrize(
    ("name", "provider_model"),
    [("e01_embeddings_string", "embed-model"), ("e02_embeddings_array", "embed-model"),
     ("e03_embeddings_base64", "embed-model"), ("e04_embeddings_dimensions", "embed-model"),
     ("e09_embeddings_x_openclaw_model_same_provider", "other-embed"), ("e11_embeddings_x_openclaw_model_bare", "bare-embed")],
)
def test_embedding_answers_are_the_recorded_bytes(name: str, provider_model: str) -> None:
    """The upstream's floats go out unchanged (JavaScript number text), or as base64 float32 LE."""
    from gateway_core.providers.openai_completions import from_base64

    case = load(name)
    plan = plan_embeddings(case.body, context(case.headers))
    assert (plan.provider, plan.provider_model, plan.offline) == ("upstream", provider_model, False)
    request = plan.request(CONFIG)
    assert request is not None and request.model == provider_model and request.base_url.endswith("/v1")
    recorded = case.json["data"]
    vectors = [from_base64(d["embedding"]) if isinstance(d["embedding"], str) else d["embedding"] for d in recorded]
    answer = embeddings_answer(plan, vectors)
    assert (answer.status, answer.body.decode()) == (200, case.response_body)


def test_offline_embedder_is_marked_in_the_model() -> None:
    config = {k: v for k, v in CONFIG.items() if k != "memory"}
    plan = plan_embeddings(b'{"model":"openclaw","input":["alpha","beta"],"dimensions":8}', context(config=config))
    assert plan.offline and plan.request(config) is None
    body = embeddings_answer(plan, plan.offline_vectors()).json()
    assert body["model"] == OFFLINE_MODEL == "offline/offline-sha256"
    assert [len(d["embedding"]) for d in body["data"]] == [8, 8]
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model":"openclaw","input":' + b'["a"]' [:-1] + b',"a"' * 128 + b"]}", "Too many inputs (max 128)."),
        (b'{"model":"openclaw","input":"' + b"x" * 8193 + b'"}', "Input too long (max 8192 chars)."),
        (b'{"model":"openclaw","input":[' + b",".join([b'"' + b"x" * 8000 + b'"'] * 9) + b"]}", "Total input too large (max 65536 chars)."),
        (b'{"model":"openclaw"}', "`input` must be a string or an array of strings."),
        (b'{"model":"openclaw/nope","input":"a"}', "Unknown agent 'nope'."),
        (b'{"model":"openclaw","input":"x","encoding_format":"hex"}', 'encoding_format: Invalid option: expected one of "float"|"base64"'),
    ],
)
def test_embedding_limits(body: bytes, message: str) -> None:
    with pytest.raises(Refused) as refused:
        plan_embeddings(body, context())
    assert refused.value.answer.json() == {"error": {"message": message, "type": "invalid_request_error"}}

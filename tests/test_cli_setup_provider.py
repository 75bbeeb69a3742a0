"""``openclaw setup --provider-base-url URL --provider-api-key-env NAME --model MODEL [--provider-id ID]``:
a fresh HOME set up by flags alone talks to a real (scripted) OpenAI-compatible upstream through
the gateway; the key stays in the environment (an env SecretRef), the rest of an existing config
is kept, and bad flags (2) or a config that would be invalid (78) write nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from agent_gateways import REFERENCE, reference_gateway
from gateway_proc import GatewayProcess, free_port, make_home, openclaw
from upstream import ScriptedUpstream

from openclaw_cli.setup_cmd import SetupError, derived_provider_id, provider_from_flags

KEY = "sk-setup-provider-key"
TOKEN = "setup-provider-token-0123"


def setup(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return openclaw(home, "setup", *args, env=env)


def config(home: Path) -> dict[str, Any]:
    return json.loads((home / ".openclaw" / "openclaw.json").read_text())


def _fresh_setup(home: Path, port: int, base_url: str) -> None:
    out = setup(home, "--gateway-port", str(port), "--gateway-token", TOKEN, "--provider-base-url", base_url,
                "--provider-api-key-env", "UPSTREAM_KEY", "--model", "scripted")
    assert out.returncode == 0, out.stderr
    provider = derived_provider_id(base_url)
    assert f"Model provider {provider}: {base_url} (openai-completions, API key from $UPSTREAM_KEY)" in out.stdout
    assert f"Default model: {provider}/scripted" in out.stdout
    assert "Note: $UPSTREAM_KEY is not set here" in out.stdout  # the CLI's env has no key; the gateway's will
    cfg = config(home)
    assert cfg["models"]["providers"] == {provider: {
        "baseUrl": base_url, "api": "openai-completions",
        "apiKey": {"source": "env", "provider": "default", "id": "UPSTREAM_KEY"},
        "models": [{"id": "scripted", "name": "scripted"}],
    }}
    assert cfg["agents"]["defaults"]["model"] == {"primary": f"{provider}/scripted"}
    assert KEY not in json.dumps(cfg)


def test_a_fresh_home_set_up_by_flags_answers_through_the_upstream(tmp_path: Path) -> None:
    with ScriptedUpstream(api_key=KEY) as up:
        port = free_port()
        home = make_home(tmp_path)
        _fresh_setup(home, port, up.base_url)
        with GatewayProcess(tmp_path, home, env={"UPSTREAM_KEY": KEY}) as gw:
            gw.wait_ready(port, timeout=30)
            out = openclaw(home, "agent", "--message", "hi", timeout=120)
            assert out.returncode == 0, f"{out.stderr}\n{gw.output()}"
        (request,) = up.chat_requests()
        assert request.credential == "ok" and request.body["model"] == "scripted"
        assert out.stdout.strip() == f"upstream-reply-{request.n}: hi"


@pytest.mark.skipif(not REFERENCE, reason="OPENCLAW_REFERENCE_BIN is not set: install the published gateway with "
                    "../shared/tools/install-reference.sh")
def test_the_published_gateway_runs_the_config_setup_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedUpstream(api_key=KEY) as up:
        port = free_port()
        ours = make_home(tmp_path / "ours")
        _fresh_setup(ours, port, up.base_url)
        monkeypatch.setenv("UPSTREAM_KEY", KEY)  # the published gateway inherits the test's environment
        with reference_gateway(tmp_path / "ref", config(ours), port) as (home, _proc):
            out = openclaw(home, "agent", "--message", "hi", timeout=180)
            assert out.returncode == 0, out.stderr
        requests = up.chat_requests()
        assert requests and all(r.credential == "ok" and r.body["model"] == "scripted" for r in requests)
        assert out.stdout.strip().startswith("upstream-reply-") and out.stdout.strip().endswith(": hi")


def test_an_existing_config_is_kept(tmp_path: Path) -> None:
    existing = {
        "gateway": {"mode": "local", "port": 19555, "auth": {"mode": "token", "token": TOKEN}},
        "channels": {"telegram": {"botToken": "123:abc"}},
        "models": {"mode": "merge", "providers": {
            "other": {"baseUrl": "http://127.0.0.1:1/v1", "api": "openai-completions", "models": [{"id": "o"}]},
            "vllm": {"baseUrl": "http://old.invalid/v1", "api": "openai-completions", "timeoutSeconds": 30,
                     "models": [{"id": "first", "name": "First"}]},
        }},
        "agents": {"defaults": {"model": {"primary": "other/o", "fallbacks": ["other/o"]}, "models": {"other/o": {}}}},
    }
    home = make_home(tmp_path, existing)
    out = setup(home, "--provider-base-url", "http://127.0.0.1:8000/v1/", "--model", "meta-llama/Llama-3-8B",
                "--provider-id", "vllm", "--provider-api-key-env", "VLLM_KEY", env={"VLLM_KEY": "x"})
    assert out.returncode == 0, out.stderr
    assert "Note:" not in out.stdout  # the variable is set
    cfg = config(home)
    assert cfg["gateway"] == existing["gateway"] and cfg["channels"] == existing["channels"]
    assert cfg["models"]["mode"] == "merge" and cfg["models"]["providers"]["other"] == existing["models"]["providers"]["other"]
    assert cfg["models"]["providers"]["vllm"] == {
        "baseUrl": "http://127.0.0.1:8000/v1", "api": "openai-completions", "timeoutSeconds": 30,
        "apiKey": {"source": "env", "provider": "default", "id": "VLLM_KEY"},
        "models": [{"id": "first", "name": "First"}, {"id": "meta-llama/Llama-3-8B", "name": "meta-llama/Llama-3-8B"}],
    }
    defaults = cfg["agents"]["defaults"]
    assert defaults["model"] == {"primary": "vllm/meta-llama/Llama-3-8B", "fallbacks": ["other/o"]}
    assert defaults["models"] == {"other/o": {}, "vllm/meta-llama/Llama-3-8B": {}}  # the allowlist lets it in
    # PROVIDER/MODEL names the provider; running again with the same model adds no duplicate.
    again = setup(home, "--provider-base-url", "http://127.0.0.1:8000/v1", "--model", "vllm/meta-llama/Llama-3-8B",
                  "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["provider"] == {"id": "vllm", "baseUrl": "http://127.0.0.1:8000/v1", "apiKeyEnv": None}
    assert doc["model"] == "vllm/meta-llama/Llama-3-8B"
    assert len(config(home)["models"]["providers"]["vllm"]["models"]) == 2
    assert config(home)["models"]["providers"]["vllm"]["apiKey"]["id"] == "VLLM_KEY"  # no new key env: kept


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "m"], "--model needs --provider-base-url URL"),
    (["--provider-api-key-env", "K"], "--provider-api-key-env needs --provider-base-url URL"),
    (["--provider-base-url", "http://127.0.0.1:8000/v1"], "--provider-base-url needs --model MODEL"),
    (["--provider-base-url", "ftp://host/v1", "--model", "m"], "must be an http:// or https:// URL with a host"),
    (["--provider-base-url", "http://host:99999/v1", "--model", "m"], "must be an http:// or https:// URL with a host"),
    (["--provider-base-url", "http://h/v1", "--model", "m", "--provider-api-key-env", "NOT-A-NAME"], "environment variable name"),
    (["--provider-base-url", "http://h/v1", "--model", "m", "--provider-id", "bad id"], "The provider id must be"),
    (["--provider-base-url", "http://h/v1", "--model", "acme/"], "names no model id"),
])
def test_malformed_flags_are_usage_errors_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    home = make_home(tmp_path)
    out = setup(home, *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (home / ".openclaw" / "openclaw.json").exists()
    js = setup(home, *args, "--json")
    assert js.returncode == 2 and message in json.loads(js.stdout)["message"]


def test_a_config_that_would_be_invalid_is_refused_unchanged(tmp_path: Path) -> None:
    home = make_home(tmp_path, {"gateway": {"mode": "local", "auth": {"mode": "token", "token": TOKEN}}, "bogus": 1})
    before = (home / ".openclaw" / "openclaw.json").read_text()
    out = setup(home, "--provider-base-url", "http://127.0.0.1:8000/v1", "--model", "m")
    assert out.returncode == 78
    assert out.stderr.startswith("The resulting config would be invalid:") and "bogus" in out.stderr
    assert (home / ".openclaw" / "openclaw.json").read_text() == before


def test_the_provider_id() -> None:
    # What the published onboarding derived for --custom-base-url http://127.0.0.1:9/v1 (recorded).
    assert derived_provider_id("http://127.0.0.1:9/v1") == "custom-127-0-0-1-9"
    assert derived_provider_id("https://API.Example.com/v1") == "custom-api-example-com"
    assert derived_provider_id("http://[::1]:8000/v1") == "custom-1-8000"
    named = provider_from_flags("http://h/v1", None, "acme/gpt-4o", None)
    assert named is not None and (named.id, named.model, named.ref) == ("acme", "gpt-4o", "acme/gpt-4o")
    slashed = provider_from_flags("http://h/v1", None, "org/model", "vllm")
    assert slashed is not None and (slashed.id, slashed.model) == ("vllm", "org/model")
    prefixed = provider_from_flags("http://h/v1", "K", "vllm/x", "vllm")
    assert prefixed is not None and (prefixed.model, prefixed.api_key_env) == ("x", "K")
    assert provider_from_flags(None, None, None, None) is None
    with pytest.raises(SetupError) as refused:
        provider_from_flags(None, None, None, "x")
    assert refused.value.code == 2


def test_help_explains_the_provider_flags(tmp_path: Path) -> None:
    page = " ".join(openclaw(make_home(tmp_path), "setup", "--help", env={"COLUMNS": "200"}).stdout.split())
    for text in ("--provider-base-url", "--provider-api-key-env", "--model", "--provider-id", "SecretRef",
                 "agents.defaults.model.primary", "openai-completions", "exit 2 for a malformed flag, 78"):
        assert text in page, text

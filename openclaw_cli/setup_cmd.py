"""``openclaw setup`` and ``openclaw onboard``: write the config, workspace and session directories (§10.14).

``setup`` asks nothing, so it never needs a terminal: it writes a local gateway's baseline
(``gateway.mode=local``, token auth with a new token) and keeps whatever config exists. ``onboard``
is the guided form: on a terminal it asks for the mode (a local gateway, or a client of a remote
one) and what that mode needs; with ``--non-interactive`` (or when the flags already answer
everything) it takes them from the flags. Both honour ``--profile``/``--dev`` and
``OPENCLAW_STATE_DIR``/``OPENCLAW_CONFIG_PATH``, and their next-step hints keep them.

``setup --provider-base-url URL --model [PROVIDER/]MODEL [--provider-api-key-env NAME] [--provider-id ID]``
also adds an OpenAI-compatible model provider (``models.providers.<id>``, the key as an env
SecretRef, never the key itself) and makes ``<id>/MODEL`` the agents' default model. The id is
``--provider-id``, else the ``PROVIDER/`` of ``--model``, else derived from the URL's host as the
published onboarding derives it (``custom-127-0-0-1-8000``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import Parameter

Bind = Literal["loopback", "lan", "tailnet", "auto", "custom"]
Json = Annotated[bool, Parameter(name="--json", help="Machine-readable result.")]
# The flags setup and onboard share.
Workspace = Annotated[Path | None, Parameter(help="Agent workspace (default <state>/workspace).")]
GatewayPort = Annotated[int | None, Parameter(help="gateway.port to write.")]
GatewayBind = Annotated[Bind | None, Parameter(help="gateway.bind to write.")]
GatewayAuth = Annotated[Literal["token", "password"], Parameter(help="Auth mode to configure.")]
GatewayToken = Annotated[str | None, Parameter(help="Token to use (default: a new random one).")]
GatewayPassword = Annotated[str | None, Parameter(help="Password (with --gateway-auth password).")]
RemoteUrl = Annotated[str | None, Parameter(help="With --mode remote: the gateway's ws:// or wss:// URL.")]
RemoteToken = Annotated[str | None, Parameter(help="With --mode remote: its token.")]
RemotePassword = Annotated[str | None, Parameter(help="With --mode remote: its password.")]
Reset = Annotated[bool, Parameter(help="Replace an existing config instead of keeping it.")]
ProviderBaseUrl = Annotated[str | None, Parameter(
    help="Add an OpenAI-compatible model provider at this base URL (http(s)://HOST[:PORT]/v1); needs --model.")]
ProviderApiKeyEnv = Annotated[str | None, Parameter(
    help="Environment variable holding the provider's API key: written as a SecretRef "
         "{source: env, provider: default, id: NAME}, so the key never lands in the config.")]
ProviderId = Annotated[str | None, Parameter(
    help="The provider's key in models.providers (default: the PROVIDER/ of --model, else derived from the "
         "URL's host as published: custom-127-0-0-1-8000).")]
ModelOpt = Annotated[str | None, Parameter(
    help="With --provider-base-url: the provider's model id, or PROVIDER/MODEL to name the provider too (a model id "
         "that itself has a slash needs --provider-id). ID/MODEL becomes agents.defaults.model.primary.")]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROVIDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

NEEDS_TTY = (
    "Onboarding needs an interactive TTY. Use `{cmd}` for automation "
    "(or pass --mode local, or --mode remote with --remote-url)."
)


@dataclass
class Answers:
    """What onboarding writes; ``None`` keeps the existing value (or the default)."""

    mode: Literal["local", "remote"] = "local"
    #: Whether the mode was chosen (then it replaces the config's; else only fills it in).
    explicit_mode: bool = False
    workspace: Path | None = None
    gateway_port: int | None = None
    gateway_bind: str | None = None
    gateway_auth: str = "token"
    gateway_token: str | None = None
    gateway_password: str | None = None
    remote_url: str | None = None
    remote_token: str | None = None
    remote_password: str | None = None
    #: An OpenAI-compatible model provider to add (``setup --provider-base-url``), or ``None``.
    provider: Provider | None = None


@dataclass(frozen=True)
class Provider:
    """An OpenAI-compatible provider to add and make the default: ``<id>/<model>``."""

    id: str
    base_url: str
    model: str
    api_key_env: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.id}/{self.model}"


def derived_provider_id(base_url: str) -> str:
    """``custom-<host>[-<port>]`` with every run of other characters made one ``-``, as the
    published onboarding names a custom provider (``http://127.0.0.1:9/v1`` → ``custom-127-0-0-1-9``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host = f"{parts.hostname or ''}{f'-{parts.port}' if parts.port else ''}"
    slug = re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")
    return f"custom-{slug}"[:64].rstrip("-")


def provider_from_flags(base_url: str | None, api_key_env: str | None, model: str | None,
                        provider_id: str | None) -> Provider | None:
    """The provider the flags describe, ``None`` when they describe none; a usage error (exit 2)
    for an incomplete or malformed set."""
    from urllib.parse import urlsplit

    if base_url is None:
        given = [f for f, v in (("--model", model), ("--provider-api-key-env", api_key_env), ("--provider-id", provider_id)) if v]
        if given:
            raise SetupError(f"{', '.join(given)} needs --provider-base-url URL (the OpenAI-compatible provider to add).", 2)
        return None
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SetupError(f"--provider-base-url must be an http:// or https:// URL with a host, not {base_url!r}.", 2)
    if not model or not model.strip():
        raise SetupError("--provider-base-url needs --model MODEL (the provider's model id).", 2)
    if api_key_env is not None and not ENV_NAME.match(api_key_env):
        raise SetupError(f"--provider-api-key-env takes an environment variable name (letters, digits, _), not {api_key_env!r}.", 2)
    ref = model.strip()
    if provider_id is None and "/" in ref:  # PROVIDER/MODEL names the provider too (split at the first /)
        pid, model_id = ref.split("/", 1)
    else:
        pid = provider_id if provider_id is not None else derived_provider_id(base_url)
        model_id = ref.removeprefix(f"{pid}/")
    if not PROVIDER_ID.match(pid):
        raise SetupError(f"The provider id must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit), not {pid!r}.", 2)
    if not model_id.strip():
        raise SetupError(f"--model {model!r} names no model id.", 2)
    return Provider(pid, base_url.rstrip("/"), model_id.strip(), api_key_env)


def add_provider(cfg: dict[str, Any], provider: Provider) -> None:
    """Write ``models.providers.<id>`` (an existing entry keeps its other keys and models) and
    make ``<id>/<model>`` the default model (fallbacks kept; an allowlist gets the new entry)."""
    providers = _obj(_obj(cfg, "models"), "providers")
    entry = _obj(providers, provider.id)
    entry["baseUrl"] = provider.base_url
    entry.pop("baseURL", None)
    entry["api"] = "openai-completions"
    if provider.api_key_env:
        entry["apiKey"] = {"source": "env", "provider": "default", "id": provider.api_key_env}
    models = entry.get("models") if isinstance(entry.get("models"), list) else []
    if not any(isinstance(m, dict) and m.get("id") == provider.model for m in models):
        models.append({"id": provider.model, "name": provider.model})
    entry["models"] = models
    defaults = _obj(_obj(cfg, "agents"), "defaults")
    model = defaults.get("model")
    defaults["model"] = {**(model if isinstance(model, dict) else {}), "primary": provider.ref}
    if isinstance(defaults.get("models"), dict):
        defaults["models"].setdefault(provider.ref, {})


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]`` as an object (made, or replacing a non-object, when it is not one)."""
    if not isinstance(parent.get(key), dict):
        parent[key] = {}
    return parent[key]


class SetupError(Exception):
    """A refusal: ``message`` for stderr, ``code`` the exit status (2 usage, 78 config, 1 other)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def configure(answers: Answers, *, reset: bool) -> dict[str, Any]:
    """Write the config (validated first, atomically), the workspace and the sessions directory;
    returns what was written, for the report."""
    from gateway_core.config import validate_config
    from gateway_trio import runtime as _runtime
    from gateway_trio.runtime import Paths, StartupError, atomic_write, load_config

    paths = Paths.resolve(None)
    try:
        existing = None if reset else load_config(paths.config_path)
    except StartupError as exc:
        raise SetupError(exc.message.removeprefix("Gateway failed to start: "), exc.exit_code) from None
    cfg = existing or {}
    gateway = cfg.setdefault("gateway", {})
    if answers.mode == "remote":
        if not answers.remote_url:
            raise SetupError("--mode remote needs --remote-url ws://HOST:PORT.", 2)
        gateway["mode"] = "remote"
        remote = gateway.setdefault("remote", {})
        remote["url"] = answers.remote_url
        if answers.remote_token:
            remote["token"] = answers.remote_token
        if answers.remote_password:
            remote["password"] = answers.remote_password
    else:
        if answers.explicit_mode:
            gateway["mode"] = "local"
        else:
            gateway.setdefault("mode", "local")
        if answers.gateway_port is not None:
            gateway["port"] = answers.gateway_port
        if answers.gateway_bind is not None:
            gateway["bind"] = answers.gateway_bind
        auth = gateway.setdefault("auth", {})
        auth.setdefault("mode", answers.gateway_auth)
        if auth["mode"] == "token" and not auth.get("token"):
            auth["token"] = answers.gateway_token or _runtime.new_token(24)
        if auth["mode"] == "password" and not auth.get("password"):
            if not answers.gateway_password:
                raise SetupError("--gateway-auth password needs --gateway-password.", 2)
            auth["password"] = answers.gateway_password
    ws = (answers.workspace or paths.state_dir / "workspace").expanduser()
    cfg.setdefault("agents", {}).setdefault("defaults", {}).setdefault("workspace", str(ws))
    if answers.provider is not None:
        add_provider(cfg, answers.provider)
    issues = validate_config(cfg)
    if issues:
        raise SetupError("The resulting config would be invalid:\n" + "\n".join(f"  {i}" for i in issues), 78)
    atomic_write(paths.config_path, (json.dumps(cfg, indent=2) + "\n").encode())
    ws.mkdir(parents=True, exist_ok=True)
    bootstrap = ws / "BOOTSTRAP.md"
    if not bootstrap.exists():
        bootstrap.write_text("# Bootstrap\n\nThis workspace was prepared by `openclaw setup`.\n", encoding="utf-8")
    sessions = paths.state_dir / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    return {"paths": paths, "config": cfg, "workspace": ws, "sessions": sessions, "provider": answers.provider}


def _report(done: dict[str, Any], json_: bool) -> int:
    import os

    paths = done["paths"]
    mode = done["config"]["gateway"].get("mode")
    if json_:
        out = {"ok": True, "mode": mode, "config": str(paths.config_path)}
        provider = done.get("provider")
        if provider is not None:
            out["provider"] = {"id": provider.id, "baseUrl": provider.base_url, "apiKeyEnv": provider.api_key_env}
            out["model"] = provider.ref
        print(json.dumps({**out, "workspace": str(done["workspace"]), "sessions": str(done["sessions"])}))
        return 0
    print(f"Wrote {paths.config_path}")
    print(f"Workspace OK: {done['workspace']}")
    print(f"Sessions OK: {done['sessions']}")
    provider = done.get("provider")
    if provider is not None:
        key = f"API key from ${provider.api_key_env}" if provider.api_key_env else "no API key"
        print(f"Model provider {provider.id}: {provider.base_url} (openai-completions, {key})")
        print(f"Default model: {provider.ref}")
        if provider.api_key_env and not os.environ.get(provider.api_key_env):
            print(f"Note: ${provider.api_key_env} is not set here; the gateway needs it in its environment.")
    print()
    if mode == "remote":
        print("Setup complete: this machine is a client of the gateway at " + done["config"]["gateway"]["remote"]["url"])
        print(f"Next: {paths.cli('gateway probe')}")
    else:
        print("Setup complete: config, workspace, and session directories are ready.")
        print(f"Next: {paths.cli('gateway run')}")
    return 0


def _refuse(exc: SetupError, json_: bool) -> int:
    if json_:
        print(json.dumps({"ok": False, "phase": "options", "message": exc.message}))
    else:
        print(exc.message, file=sys.stderr)
    return exc.code


def setup(
    *,
    baseline: Annotated[bool, Parameter(help="Write the baseline (what setup always does; kept for scripts).")] = False,
    non_interactive: Annotated[bool, Parameter(help="Never prompt (setup never does).")] = False,
    mode: Annotated[
        Literal["local", "remote"] | None, Parameter(help="local: this machine runs the gateway; remote: it is a client.")
    ] = None,
    workspace: Workspace = None,
    gateway_port: GatewayPort = None,
    gateway_bind: GatewayBind = None,
    gateway_auth: GatewayAuth = "token",
    gateway_token: GatewayToken = None,
    gateway_password: GatewayPassword = None,
    remote_url: RemoteUrl = None,
    remote_token: RemoteToken = None,
    remote_password: RemotePassword = None,
    provider_base_url: ProviderBaseUrl = None,
    provider_api_key_env: ProviderApiKeyEnv = None,
    model: ModelOpt = None,
    provider_id: ProviderId = None,
    reset: Reset = False,
    json_: Json = False,
) -> int:
    """Prepare a local gateway: config (gateway.mode=local, token auth), workspace, sessions dir.

    Asks nothing, so it runs without a terminal. An existing config is kept (only missing keys are
    added) unless --reset. Honours --profile/--dev.

    With --provider-base-url URL --model MODEL (and --provider-api-key-env NAME when the provider
    needs a key) it also adds an OpenAI-compatible model provider, models.providers.ID = {baseUrl,
    apiKey: env SecretRef, api: openai-completions, models: [MODEL]}, and sets
    agents.defaults.model.primary to ID/MODEL; the rest of the config is kept. The result is
    checked against the config schema before anything is written (exit 2 for a malformed flag, 78
    for a config that would be invalid).
    """
    del baseline, non_interactive  # setup never prompts: both are accepted for scripts written for them
    try:
        provider = provider_from_flags(provider_base_url, provider_api_key_env, model, provider_id)
        answers = Answers(
            mode or "local", mode is not None, workspace, gateway_port, gateway_bind, gateway_auth, gateway_token,
            gateway_password, remote_url, remote_token, remote_password, provider,
        )  # fmt: skip
        return _report(configure(answers, reset=reset), json_)
    except SetupError as exc:
        return _refuse(exc, json_)


def _ask(prompt: str, default: str | None, read: Callable[[str], str]) -> str:
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    for _ in range(5):  # bounded: a closed stdin ends the questions
        try:
            answer = read(shown).strip()
        except EOFError:
            answer = ""
        if answer or default is not None:
            return answer or (default or "")
    raise SetupError("No answer; onboarding stopped.", 1)


def ask_answers(answers: Answers, read: Callable[[str], str] = input) -> Answers:
    """The interactive questions (only those the flags left open)."""
    mode = _ask("Gateway mode: local (run it here) or remote (connect to one)", answers.mode, read).lower()
    if mode not in ("local", "remote"):
        raise SetupError(f"Unknown mode {mode!r}: answer local or remote.", 2)
    answers.mode = mode  # type: ignore[assignment]
    if mode == "remote":
        answers.remote_url = answers.remote_url or _ask("Gateway URL (ws://HOST:PORT)", None, read)
        if not (answers.remote_token or answers.remote_password):
            answers.remote_token = _ask("Gateway token (empty: none)", "", read) or None
        return answers
    if answers.gateway_port is None:
        port = _ask("Port (empty: the default)", "", read)
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise SetupError(f"Invalid port {port!r}: use a number from 1 to 65535.", 2)
        answers.gateway_port = int(port) if port else None
    if answers.gateway_bind is None:
        bind = _ask("Bind (loopback, lan, tailnet, auto, custom)", "loopback", read)
        if bind not in ("loopback", "lan", "tailnet", "auto", "custom"):
            raise SetupError(f"Invalid bind {bind!r}.", 2)
        answers.gateway_bind = None if bind == "loopback" else bind
    return answers


def onboard(
    *,
    non_interactive: Annotated[bool, Parameter(help="Take every answer from the flags; never prompt.")] = False,
    accept_risk: Annotated[bool, Parameter(help="Accepted for scripts written for the published CLI.")] = False,
    mode: Annotated[
        Literal["local", "remote"] | None, Parameter(help="local: run the gateway here; remote: be a client of one.")
    ] = None,
    workspace: Workspace = None,
    gateway_port: GatewayPort = None,
    gateway_bind: GatewayBind = None,
    gateway_auth: GatewayAuth = "token",
    gateway_token: GatewayToken = None,
    gateway_password: GatewayPassword = None,
    remote_url: RemoteUrl = None,
    remote_token: RemoteToken = None,
    remote_password: RemotePassword = None,
    reset: Reset = False,
    json_: Json = False,
) -> int:
    """Set this machine up as a local gateway or as a client of a remote one.

    On a terminal it asks what the flags leave open; --non-interactive (or flags that answer
    everything: --mode local, or --mode remote --remote-url URL) needs no terminal. Writes the
    config like `openclaw setup`, with gateway.mode set to the chosen mode.
    """
    from gateway_trio.runtime import Paths

    del accept_risk
    answers = Answers(
        mode or "local", True, workspace, gateway_port, gateway_bind, gateway_auth, gateway_token,
        gateway_password, remote_url, remote_token, remote_password,
    )  # fmt: skip
    answered = mode == "local" or (mode == "remote" and bool(remote_url))
    try:
        if not (non_interactive or answered):
            if not sys.stdin.isatty():
                cmd = Paths.resolve(None).cli("onboard --non-interactive --mode local")
                raise SetupError(NEEDS_TTY.format(cmd=cmd), 2)
            answers = ask_answers(answers)
        return _report(configure(answers, reset=reset), json_)
    except SetupError as exc:
        return _refuse(exc, json_)


__all__ = ["Answers", "Provider", "add_provider", "ask_answers", "configure", "derived_provider_id", "onboard",
           "provider_from_flags", "setup"]

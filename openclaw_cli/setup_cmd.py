"""``openclaw setup`` and ``openclaw onboard``: write the config, workspace and session directories (§10.14).

``setup`` asks nothing, so it never needs a terminal: it writes a local gateway's baseline
(``gateway.mode=local``, token auth with a new token) and keeps whatever config exists. ``onboard``
is the guided form: on a terminal it asks for the mode (a local gateway, or a client of a remote
one) and what that mode needs; with ``--non-interactive`` (or when the flags already answer
everything) it takes them from the flags. Both honour ``--profile``/``--dev`` and
``OPENCLAW_STATE_DIR``/``OPENCLAW_CONFIG_PATH``, and their next-step hints keep them.
"""

from __future__ import annotations

import json
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
    return {"paths": paths, "config": cfg, "workspace": ws, "sessions": sessions}


def _report(done: dict[str, Any], json_: bool) -> int:
    paths = done["paths"]
    mode = done["config"]["gateway"].get("mode")
    if json_:
        out = {"ok": True, "mode": mode, "config": str(paths.config_path)}
        print(json.dumps({**out, "workspace": str(done["workspace"]), "sessions": str(done["sessions"])}))
        return 0
    print(f"Wrote {paths.config_path}")
    print(f"Workspace OK: {done['workspace']}")
    print(f"Sessions OK: {done['sessions']}")
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
    reset: Reset = False,
    json_: Json = False,
) -> int:
    """Prepare a local gateway: config (gateway.mode=local, token auth), workspace, sessions dir.

    Asks nothing, so it runs without a terminal. An existing config is kept (only missing keys are
    added) unless --reset. Honours --profile/--dev.
    """
    del baseline, non_interactive  # setup never prompts: both are accepted for scripts written for them
    answers = Answers(
        mode or "local", mode is not None, workspace, gateway_port, gateway_bind, gateway_auth, gateway_token,
        gateway_password, remote_url, remote_token, remote_password,
    )  # fmt: skip
    try:
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


__all__ = ["Answers", "ask_answers", "configure", "onboard", "setup"]

"""How the config file is read and how ``gateway run`` resolves its settings (runtime-cli.md §3, §5).

The config file is read as JSON5 and the keys the runtime needs are picked out (the validated
schema is gateway_core.config). Errors carry the exact operator-facing text and the exit code (78
for configuration problems). The CLI reads the config through the same :func:`load_config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyjson5

from gateway_core.config import validate_config, warnings_for
from gateway_core.reload import RELOAD_MODES

from ..secrets import SecretError, resolve_secret
from .paths import DEFAULT_PORT, DEV_PORT, EXIT_CONFIG, EXIT_USAGE, Paths, StartupError, env_value, fnv1a32

BIND_MODES = ("loopback", "lan", "tailnet", "auto", "custom")
AUTH_MODES = ("none", "token", "password", "trusted-proxy")


class ConfigSyntaxError(StartupError):
    """The config file is not valid JSON5: where (``line``, ``column``, 1-based) and what, in words.

    ``message`` is the whole operator text (``Gateway failed to start: Invalid config at …`` then
    ``<path>:<line>:<col>: <problem>`` and the offending line with a caret); ``location`` is the
    ``<path>:<line>:<col>: <problem>`` line alone (for one-line reports such as doctor's).
    """

    def __init__(self, path: Path, line: int, column: int, problem: str, source_line: str) -> None:
        self.path, self.line, self.column, self.problem = path, line, column, problem
        self.location = f"{path}:{line}:{column}: {problem}"
        shown = source_line.expandtabs(1)
        #: The offending line and a caret under the column (empty for a blank line).
        self.excerpt = f"  {shown}\n  {' ' * max(0, column - 1)}^" if shown.strip() else ""
        text = f"Gateway failed to start: Invalid config at {path}:\n{self.location}"
        if self.excerpt:
            text += "\n" + self.excerpt
        text += "\nFix the file (`openclaw config validate` checks it), then retry."
        super().__init__(text, EXIT_CONFIG)

    @property
    def summary(self) -> str:
        return f"Gateway failed to start: {self.location}"


_JSON5_AT = re.compile(r"^<string>:(\d+) (.+) at column (\d+)$", re.S)
_PYJSON5_NEAR = re.compile(r"(starting )?near (\d+)")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _char(code: str) -> str:
    ch = chr(int(code, 16))
    return {"\n": "end of line", "\t": "tab", " ": "space"}.get(ch, f"'{ch}'")


def _problem_words(raw: str, text: str) -> str:
    """A parser's message in words: pyjson5's ``Expected b'comma' or U+007d near 12, found U+0022``
    → ``expected comma or '}', found '"'``; json5's ``Unexpected "\\n"`` → ``unexpected end of line``."""
    words = raw.replace('Unexpected "\n"', "unexpected end of line").replace("Unexpected end of input", "unexpected end of file")
    words = re.sub(r'Unexpected "(.)"', lambda m: f"unexpected '{m.group(1)}'", words)
    words = words.replace("b'JSON5Value'", "a value")
    words = re.sub(r"b'([A-Za-z0-9_]+)'", r"\1", words)  # pyjson5 writes token names as bytes reprs
    words = re.sub(r"U\+([0-9a-fA-F]{4})", lambda m: _char(m.group(1)), words)

    def near(m: re.Match[str]) -> str:
        if not m.group(1):
            return ""
        line, col = _line_col(text, int(m.group(2)))
        return f"(opened at line {line}, column {col})"

    words = _PYJSON5_NEAR.sub(near, words)
    words = re.sub(r"\s+,", ",", re.sub(r"\s{2,}", " ", words)).strip(" ,")
    words = words.replace("Extra data", "extra data after the end of the config:")
    words = words[:1].lower() + words[1:]
    if "end of file" in words or words.startswith("unclosed"):
        words += "" if "opened at" in words else " (an object, array or string is not closed)"
    return words


def syntax_error(path: Path, text: str, exc: Exception) -> ConfigSyntaxError:
    """Locate a JSON5 syntax error: the position from json5 (line and column of the offending
    character), the words from pyjson5 (it names what it expected); either alone when the other
    cannot say."""
    import json5

    lines = text.splitlines() or [""]
    message = str(exc.args[0]) if exc.args else str(exc)
    pyjson5_words = _problem_words(message, text) if re.search(r"near \d+", message) else None
    try:
        json5.loads(text)
    except ValueError as located:
        m = _JSON5_AT.match(str(located))
        if m:
            line, column = int(m.group(1)), int(m.group(3))
            source = lines[line - 1] if 0 < line <= len(lines) else ""
            return ConfigSyntaxError(path, line, column, pyjson5_words or _problem_words(m.group(2), text), source)
    near = re.search(r"near (\d+)", message)
    line, column = _line_col(text, int(near.group(1)) if near else 0)
    return ConfigSyntaxError(
        path, line, column, pyjson5_words or _problem_words(message, text), lines[line - 1] if line <= len(lines) else ""
    )


def load_config(path: Path) -> dict[str, Any] | None:
    """The config as a dict (JSON5), ``None`` when the file does not exist.

    A syntax error raises :class:`ConfigSyntaxError` (exit 78) saying where and what, in words.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StartupError(f"Gateway failed to start: cannot read config {path}: {exc}", EXIT_CONFIG) from None
    try:
        value = pyjson5.decode(text) if text.strip() else {}
    except Exception as exc:  # noqa: BLE001 - pyjson5 raises several error types
        raise syntax_error(path, text, exc) from None
    if not isinstance(value, dict):
        raise StartupError(f"Gateway failed to start: Invalid config at {path}: the root must be an object", 78)
    return value


def reload_mode(config: dict[str, Any] | None) -> str:
    """``gateway.reload.mode`` of a config (``hybrid`` when unset or unknown)."""
    mode = ((config or {}).get("gateway") or {}).get("reload", {})
    value = mode.get("mode") if isinstance(mode, dict) else None
    return value if value in RELOAD_MODES else "hybrid"


def _get(cfg: dict[str, Any] | None, dotted: str) -> Any:
    node: Any = cfg or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass
class GatewaySettings:
    """Everything ``gateway run`` decided before binding."""

    paths: Paths
    config: dict[str, Any] | None
    port: int
    port_source: str
    bind: str
    hosts: list[str]
    auth_mode: str
    token: str | None
    password: str | None
    runtime_token: bool = False
    log_file: Path | None = None
    log_level: str = "info"
    console_level: str = "info"
    max_file_bytes: int = 104_857_600
    verbose: bool = False
    ws_log: str = "auto"
    warnings: list[str] = field(default_factory=list)


def resolve_bind_hosts(bind: str, custom_host: str | None) -> list[str]:
    """Listener addresses for a bind mode (§5.1). Loopback binds 127.0.0.1 and ::1."""
    if bind == "loopback":
        return ["127.0.0.1", "::1"]
    if bind == "lan":
        return ["0.0.0.0"]
    if bind == "custom" and custom_host and re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", custom_host):
        return [custom_host, "127.0.0.1"]
    if bind in ("auto", "tailnet"):
        return ["127.0.0.1", "::1"]
    return ["0.0.0.0"]


def resolve(
    *,
    paths: Paths,
    port: int | None = None,
    bind: str | None = None,
    auth: str | None = None,
    token: str | None = None,
    password: str | None = None,
    password_file: Path | None = None,
    allow_unconfigured: bool = False,
    dev: bool = False,
    verbose: bool = False,
    ws_log: str = "auto",
    new_token: Any = None,
) -> GatewaySettings:
    """Apply the precedence rules of runtime-cli.md §3.1 and the start guards of §1.4 and §5.2."""
    if bind is not None and bind not in BIND_MODES:
        raise StartupError('Invalid --bind. Use "loopback", "lan", "tailnet", "auto", or "custom".', EXIT_USAGE)
    if port is not None and not 1 <= port <= 65535:
        raise StartupError("Invalid --port. Use a port number from 1 to 65535, for example 18789.", EXIT_USAGE)
    if auth is not None and auth not in AUTH_MODES:
        raise StartupError('Invalid --auth. Use "none", "token", "password", or "trusted-proxy".', EXIT_USAGE)
    if ws_log not in ("auto", "full", "compact"):
        raise StartupError('Invalid --ws-log. Use "auto", "full", or "compact".', EXIT_USAGE)
    if password is not None and password_file is not None:
        raise StartupError("Use either --password or --password-file.", EXIT_USAGE)
    cfg = load_config(paths.config_path)
    warnings: list[str] = []
    if cfg is not None:
        issues = validate_config(cfg)
        if any(issue.path == "gateway.port" for issue in issues):
            raise StartupError(
                "Invalid gateway.port in config. Set gateway.port to a number from 1 to 65535, or pass --port 18789.",
                EXIT_CONFIG,
            )
        if issues:
            raise StartupError(
                f"Gateway failed to start: Invalid config at {paths.config_path}:\n"
                + "\n".join(f"  {issue}" for issue in issues)
                + "\nFix these keys (`openclaw config validate` lists them), then retry.",
                EXIT_CONFIG,
            )
        warnings.extend(warnings_for(cfg))

    # Port: --port → OPENCLAW_GATEWAY_PORT → gateway.port → profile hash → 18789.
    source = "--port"
    if port is None:
        env_port = env_value("OPENCLAW_GATEWAY_PORT")
        if env_port:
            tail = env_port.rsplit(":", 1)[-1].strip("[]")
            if tail.isdigit() and 1 <= int(tail) <= 65535:
                port, source = int(tail), "OPENCLAW_GATEWAY_PORT"
    if port is None:
        cfg_port = _get(cfg, "gateway.port")
        if cfg_port is not None:
            if isinstance(cfg_port, bool) or not isinstance(cfg_port, int) or not 1 <= cfg_port <= 65535:
                raise StartupError(
                    "Invalid gateway.port in config. Set gateway.port to a number from 1 to 65535, "
                    "or pass --port 18789.",
                    EXIT_CONFIG,
                )
            port, source = cfg_port, "gateway.port"
    if port is None:
        if dev:
            port, source = DEV_PORT, "--dev"
        elif paths.profile:
            port, source = 20000 + fnv1a32(paths.profile) % 40000, "profile"
        else:
            port, source = DEFAULT_PORT, "default"

    bind = bind or _get(cfg, "gateway.bind") or "loopback"
    if bind not in BIND_MODES:
        raise StartupError(f'Invalid gateway.bind in config: "{bind}".', EXIT_CONFIG)

    # gateway.mode guard (§1.4)
    if not allow_unconfigured and not dev:
        mode = _get(cfg, "gateway.mode")
        if cfg is None:
            where = "" if paths.cli("setup") == "openclaw setup" else f"\nConfig path: {paths.config_path}"
            raise StartupError(
                f"Missing config. Run `{paths.cli('setup')}` or set gateway.mode=local (or pass --allow-unconfigured)."
                + where,
                EXIT_CONFIG,
            )
        if mode is None:
            raise StartupError(
                "Gateway start blocked: existing config is missing gateway.mode. Treat this as suspicious or "
                f"clobbered config. Re-run `{paths.cli('onboard --mode local')}` or `{paths.cli('setup')}`, set "
                "gateway.mode=local manually, or pass --allow-unconfigured.",
                EXIT_CONFIG,
            )
        if mode != "local":
            raise StartupError(
                f"Gateway start blocked: set gateway.mode=local (current: {mode}) or pass --allow-unconfigured.",
                EXIT_CONFIG,
            )

    # Secrets: flags → config → environment.
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StartupError(f"Cannot read --password-file {password_file}: {exc}") from None
    elif password is not None:
        warnings.append(
            "Warning: --password can be exposed via process listings. "
            "Prefer --password-file or OPENCLAW_GATEWAY_PASSWORD."
        )
    try:
        cfg_token = None if token else resolve_secret(_get(cfg, "gateway.auth.token"), cfg or {})
        cfg_password = None if password else resolve_secret(_get(cfg, "gateway.auth.password"), cfg or {})
    except SecretError as exc:
        raise StartupError(f"Gateway failed to start: {exc}", EXIT_CONFIG) from None
    token = token or cfg_token or env_value("OPENCLAW_GATEWAY_TOKEN")
    password = password or cfg_password or env_value("OPENCLAW_GATEWAY_PASSWORD")
    mode = auth or _get(cfg, "gateway.auth.mode") or ("password" if password else "token")
    if mode not in AUTH_MODES:
        raise StartupError(f'Invalid gateway.auth.mode in config: "{mode}".', EXIT_CONFIG)
    if mode == "password" and not password:
        raise StartupError(
            "Gateway auth is set to password, but no password is configured.\n"
            "Set gateway.auth.password (or OPENCLAW_GATEWAY_PASSWORD), or pass --password.",
            EXIT_CONFIG,
        )
    hosts = resolve_bind_hosts(bind, _get(cfg, "gateway.customBindHost"))
    loopback_only = all(h in ("127.0.0.1", "::1") for h in hosts)
    has_secret = (mode == "token" and bool(token)) or (mode == "password" and bool(password))
    if not loopback_only and not has_secret and mode != "trusted-proxy":
        lines = [f"Refusing to bind gateway to {bind} without auth."]
        lines.append(
            "Set gateway.auth.token/password (or OPENCLAW_GATEWAY_TOKEN/OPENCLAW_GATEWAY_PASSWORD) or pass --token/--password."
        )
        if _get(cfg, "gateway.token") is not None:
            lines.append('Found "gateway.token" in config. Use "gateway.auth.token" instead.')
        if _get(cfg, "gateway.remote.token") is not None:
            lines.append('"gateway.remote.token" is for remote CLI calls; it does not enable local gateway auth.')
        raise StartupError("\n".join(lines), EXIT_CONFIG)
    runtime_token = False
    if mode == "token" and not token:
        token = new_token() if new_token else None
        runtime_token = True
        warnings.append(
            "auth token was missing. Generated a runtime token for this startup without changing config; "
            "restart will generate a different token. Persist one with `openclaw config set gateway.auth.mode token` "
            "and `openclaw config set gateway.auth.token <token>`."
        )
    if mode == "none":
        warnings.append("Gateway auth mode=none explicitly configured; all gateway connections are unauthenticated.")
    if not loopback_only:
        warnings.append(
            "⚠️  Gateway is binding to a non-loopback address. Ensure authentication is configured before "
            "exposing to public networks."
        )
    log_file = _get(cfg, "logging.file")
    level = env_value("OPENCLAW_LOG_LEVEL") or _get(cfg, "logging.level") or "info"
    console_level = env_value("OPENCLAW_LOG_LEVEL") or _get(cfg, "logging.consoleLevel") or "info"
    if verbose:
        console_level = "debug"
    max_bytes = _get(cfg, "logging.maxFileBytes")
    return GatewaySettings(
        paths=paths,
        config=cfg,
        port=port,
        port_source=source,
        bind=bind,
        hosts=hosts,
        auth_mode=mode,
        token=token,
        password=password,
        runtime_token=runtime_token,
        log_file=Path(log_file).expanduser() if isinstance(log_file, str) and log_file else None,
        log_level=level if isinstance(level, str) else "info",
        console_level=console_level if isinstance(console_level, str) else "info",
        max_file_bytes=max_bytes if isinstance(max_bytes, int) and max_bytes > 0 else 104_857_600,
        verbose=verbose,
        ws_log=ws_log,
        warnings=warnings,
    )

"""The context of a lifecycle command (:class:`Ctx`) and its policy: the install identity (§10.6), the
service port, the spec to install, drift of an installed definition, the audit log."""

from __future__ import annotations

import datetime as _dt
import http.client
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    TOKEN_KEY,
    Backend,
    Runner,
    ServiceSpec,
    definition_port,
    dev_root,
    exec_start,
    run_command,
    service_environment,
)
from .launchd import LaunchdBackend
from .names import PLATFORM_NAMES, SELECTOR_KEYS, cli_command, derived_name, launchd_label, unit_name, windows_task
from .schtasks import SchtasksBackend
from .systemd import SYSTEM_UNIT_DIR, SystemdBackend

DEFAULT_HEALTH_TIMEOUT_S = 60.0


NON_DEFAULT_IDENTITY = (
    "service management skipped: {cause}. Rerun with HOME set to the OS account home, "
    "without OPENCLAW_HOME, and with OPENCLAW_STATE_DIR and OPENCLAW_CONFIG_PATH either unset or pointing at the "
    "canonical paths for that account home and profile to {action}{override}."
)


ACTION_PROSE = {
    "install": "install or rewrite the gateway service",
    "start": "start the gateway",
    "stop": "stop the gateway",
    "restart": "restart the gateway",
    "uninstall": "uninstall the gateway service",
    "repair": "repair the gateway service installation",
}


CLEAR_SECRET_RE = re.compile(r"OPENCLAW_GATEWAY_(TOKEN|PASSWORD)(=|</key>)")


def _env_value_of(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() in ("", "undefined", "null") else value.strip()


def account_home(env: Mapping[str, str]) -> Path:
    """The OS account home (passwd), or ``OPENCLAW_SERVICE_ACCOUNT_HOME`` when set."""
    override = _env_value_of(env, "OPENCLAW_SERVICE_ACCOUNT_HOME")
    if override:
        return Path(override).expanduser()
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, AttributeError):
        return Path.home()


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def configured_port(config: Mapping[str, Any], profile: str | None, env: Mapping[str, str]) -> int:
    """The port a service should run on: ``OPENCLAW_GATEWAY_PORT`` → ``gateway.port`` → profile hash → 18789."""
    from gateway_trio.runtime import DEFAULT_PORT, fnv1a32

    raw = _env_value_of(env, "OPENCLAW_GATEWAY_PORT")
    if raw:
        tail = raw.rsplit(":", 1)[-1].strip("[]")
        if tail.isdigit() and 1 <= int(tail) <= 65535:
            return int(tail)
    gw = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    port = gw.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return port
    return 20000 + fnv1a32(profile) % 40000 if profile else DEFAULT_PORT


def token_secret_ref(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """``gateway.auth.token`` when it is a SecretRef (``{"source": "env"|"file"|"exec", ...}``)."""
    gw = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    auth = gw.get("auth") if isinstance(gw.get("auth"), dict) else {}
    token = auth.get("token")
    return token if isinstance(token, dict) and token.get("source") in ("env", "file", "exec") else None


def probe_readyz(port: int, timeout: float = 1.0) -> str:
    """``ready`` (GET /readyz → 200), ``starting`` (answers, not ready) or ``down`` (no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        resp.read()
        return "ready" if resp.status == 200 else "starting"
    except (OSError, http.client.HTTPException):
        return "down"
    finally:
        conn.close()


def audit(state_dir: Path, action: str, mode: str, *, pid: int | None, interactive: bool, source: str = "cli") -> None:
    """Append the §10.6 lifecycle audit line to ``<state>/logs/gateway-restart.log`` (best effort)."""
    now = _dt.datetime.now(_dt.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    fields = [f"source={source}", f"action={action}", f"mode={mode}"]
    if pid is not None:
        fields.append(f"pid={pid}")
    fields.append(f"interactive={1 if interactive else 0}")
    try:
        log = state_dir / "logs" / "gateway-restart.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"[{stamp}] openclaw gateway lifecycle {' '.join(fields)}\n")
    except OSError:
        pass


def make_backend(
    platform: str,
    *,
    profile: str | None,
    home: Path,
    state_dir: Path,
    env: Mapping[str, str],
    runner: Runner = run_command,
    is_root: bool = False,
) -> Backend | None:
    """The backend for ``platform`` (sys.platform), or None where no service manager is supported."""
    if platform.startswith("linux"):
        system_dir = Path(_env_value_of(env, "OPENCLAW_SYSTEMD_SYSTEM_DIR") or SYSTEM_UNIT_DIR)
        return SystemdBackend(
            unit=unit_name(profile),
            home=home,
            state_dir=state_dir,
            runner=runner,
            system_dir=system_dir,
            is_root=is_root,
        )
    if platform == "darwin":
        return LaunchdBackend(
            label=launchd_label(profile),
            home=home,
            state_dir=state_dir,
            uid=os.getuid(),
            profile=profile,
            runner=runner,
        )
    if platform == "win32":
        appdata = _env_value_of(env, "APPDATA")
        roaming = Path(appdata) if appdata else home / "AppData" / "Roaming"
        startup = roaming / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup"
        return SchtasksBackend(
            task=windows_task(profile), state_dir=state_dir, startup_dir=startup, profile=profile, runner=runner
        )
    return None


@dataclass
class Ctx:
    """Everything a lifecycle command needs; tests build one with tmp dirs and a fake runner."""

    profile: str | None
    home: Path
    state_dir: Path
    config_path: Path
    config: dict[str, Any]
    backend: Backend | None
    env: Mapping[str, str]
    platform: str = "linux"
    interactive: bool = False
    is_root: bool = False
    user: str = "openclaw"
    probe: Callable[[int], str] = probe_readyz
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    send_signal: Callable[[int, int], None] = os.kill
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    warnings: list[str] = field(default_factory=list)
    #: Why the config could not be read (a syntax error, with where and what), if it could not.
    config_error: Any = None

    @classmethod
    def current(cls, runner: Runner = run_command) -> Ctx:
        """The context of this process: profile, paths, config, the platform's backend."""
        from gateway_trio.runtime import Paths, StartupError, home_dir, load_config

        env = dict(os.environ)
        paths = Paths.resolve(None)
        home = home_dir()
        warnings: list[str] = []
        config_error = None
        try:
            config = load_config(paths.config_path) or {}
        except StartupError as exc:
            config = {}
            warnings.append(exc.summary)
            config_error = exc
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        backend = make_backend(
            sys.platform,
            profile=paths.profile,
            home=home,
            state_dir=paths.state_dir,
            env=env,
            runner=runner,
            is_root=is_root,
        )
        try:
            import getpass

            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no login name: a placeholder the operator edits
            user = "openclaw"
        return cls(
            profile=paths.profile,
            home=home,
            state_dir=paths.state_dir,
            config_path=paths.config_path,
            config=config,
            backend=backend,
            env=env,
            platform=sys.platform,
            interactive=sys.stdin.isatty() and sys.stdout.isatty(),
            is_root=is_root,
            user=user,
            warnings=warnings,
            config_error=config_error,
        )

    def cli(self, command: str) -> str:
        return cli_command(command, self.profile)

    def port(self) -> int:
        return configured_port(self.config, self.profile, self.env)


def supervisor_external(env: Mapping[str, str]) -> bool:
    return (_env_value_of(env, "OPENCLAW_SUPERVISOR_MODE") or "").lower() == "external"


def mutation_refusal(ctx: Ctx, action: str) -> str | None:
    """Why this process may not manage the service (§10.6 refusals), or None."""
    prose = ACTION_PROSE[action]
    if supervisor_external(ctx.env):
        return (
            "OpenClaw gateway lifecycle is managed by an external supervisor (OPENCLAW_SUPERVISOR_MODE=external). "
            f"Use that supervisor to {prose}."
        )
    key = next((k for p, k in SELECTOR_KEYS.items() if ctx.platform.startswith(p)), None)
    override = _env_value_of(ctx.env, key) if key else None
    if ctx.profile and key and override:
        derived = derived_name(ctx.platform, ctx.profile)
        if override.removesuffix(".service") != derived.removesuffix(".service"):
            platform = next((n for p, n in PLATFORM_NAMES.items() if ctx.platform.startswith(p)), ctx.platform)
            return (
                f"service management skipped: named profiles cannot override {key} for {platform} service management. "
                f"Unset {key} so OpenClaw derives the native service identity from OPENCLAW_PROFILE to {prose}, "
                "or keep this profile runtime-only without a native service."
            )
    problem = install_identity_problem(ctx)
    if problem:
        return NON_DEFAULT_IDENTITY.format(cause=problem[0], action=prose, override=problem[1])
    return None


def install_identity_problem(ctx: Ctx) -> tuple[str, str] | None:
    """Why this is not the account's canonical install (§10.6), as (cause, how to override), or None."""
    if _env_value_of(ctx.env, "OPENCLAW_HOME"):
        return f"OPENCLAW_HOME is set ({_env_value_of(ctx.env, 'OPENCLAW_HOME')})", ""
    home_raw = _env_value_of(ctx.env, "HOME")
    home = Path(home_raw).expanduser() if home_raw else Path.home()
    account = account_home(ctx.env)
    if not _same_path(home, account):
        source = "OPENCLAW_SERVICE_ACCOUNT_HOME" if _env_value_of(ctx.env, "OPENCLAW_SERVICE_ACCOUNT_HOME") else "passwd"
        return (
            f"HOME ({home}) is not this account's home ({account}, from {source})",
            f", or set OPENCLAW_SERVICE_ACCOUNT_HOME={home} to manage a service for this HOME",
        )
    canonical = home / (f".openclaw-{ctx.profile}" if ctx.profile else ".openclaw")
    state = _env_value_of(ctx.env, "OPENCLAW_STATE_DIR")
    if state and not _same_path(Path(state).expanduser(), canonical):
        return f"OPENCLAW_STATE_DIR ({state}) is not this profile's state dir ({canonical})", ""
    config = _env_value_of(ctx.env, "OPENCLAW_CONFIG_PATH")
    if config and not _same_path(Path(config).expanduser(), canonical / "openclaw.json"):
        return f"OPENCLAW_CONFIG_PATH ({config}) is not this profile's config path ({canonical / 'openclaw.json'})", ""
    return None


def default_install_identity(ctx: Ctx) -> bool:
    """HOME is the account home, no OPENCLAW_HOME, state dir and config path canonical for the profile."""
    return install_identity_problem(ctx) is None


def nix_mode(env: Mapping[str, str]) -> bool:
    return _env_value_of(env, "OPENCLAW_NIX_MODE") == "1"


def start_hints(ctx: Ctx) -> list[str]:
    """The ``Tip:`` lines after "Gateway service <notLoadedText>." (§10.6)."""
    container = _env_value_of(ctx.env, "OPENCLAW_CONTAINER_HINT") or _env_value_of(ctx.env, "OPENCLAW_CONTAINER")
    if container:
        return [f"Restart the container or the service that manages it for {container}."]
    refusal = mutation_refusal(ctx, "install")
    hints = [f"Gateway install blocked: {refusal}" if refusal else ctx.cli("gateway install"), ctx.cli("gateway start")]
    if ctx.backend is not None:
        hints.append(ctx.backend.start_hint())
    return hints


def build_spec(
    ctx: Ctx,
    backend: Backend,
    port: int,
    allow_unconfigured: bool,
    token: str | None,
    warnings: list[str] | None = None,
) -> ServiceSpec:
    """The service to install for this context; what the operator should know lands in ``warnings``."""
    selector_key = next((k for p, k in SELECTOR_KEYS.items() if ctx.platform.startswith(p)), "OPENCLAW_SYSTEMD_UNIT")
    env = service_environment(
        port,
        ctx.home,
        ctx.profile,
        ctx.state_dir,
        ctx.config_path,
        selector=(selector_key, backend.name),
        platform="linux" if ctx.platform.startswith("linux") else ctx.platform,
    )
    ref = token_secret_ref(ctx.config)
    if ref is not None:
        if token is not None and warnings is not None:
            warnings.append(
                f"gateway.auth.token is a SecretRef (source={ref.get('source')}); the service resolves it at runtime, "
                "so --token was not stored."
            )
        token = None
    return ServiceSpec(
        profile=ctx.profile,
        port=port,
        argv=exec_start(port, allow_unconfigured),
        env=env,
        working_dir=dev_root(),
        token=token,
        clear_token=ref is not None,
    )


def definition_drift(ctx: Ctx, backend: Backend, text: str, want_port: int | None = None) -> list[str]:
    """How an installed definition differs from this install and config (port, program, token source)."""
    drift: list[str] = []
    want = ctx.port() if want_port is None else want_port
    have = definition_port(text)
    if have != want:
        drift.append(f"port {have} ({'config says' if want_port is None else 'requested'} {want})")
    program = backend.program_of(text)
    if program is not None and program != sys.executable:
        drift.append(f"program {program} (this install runs {sys.executable})")
    if CLEAR_SECRET_RE.search(text):
        drift.append("a gateway secret is written in the service definition (it belongs in the owner-only env file)")
    ref = token_secret_ref(ctx.config)
    if ref is not None and backend.stored_token():
        drift.append(
            f"token source: {backend.secret_path} holds {TOKEN_KEY} but gateway.auth.token is a SecretRef "
            f"(source={ref.get('source')})"
        )
    return drift

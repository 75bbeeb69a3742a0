"""The ``openclaw`` command: its root app and the commands that exist so far.

Commands are plain typed functions; cyclopts builds parsing and ``--help`` from their signatures
and docstrings.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from cyclopts import App, Parameter


def _version() -> str:
    try:
        return version("openclaw-gateway-py")
    except PackageNotFoundError:
        return "0.0.0+local"


app = App(
    name="openclaw",
    help="Drive an OpenClaw-compatible gateway: run it, probe it, call it.",
    help_epilogue="Docs: https://docs.openclaw.ai/cli",
    # Flags are positive only (`--deep`, never `--no-deep`), as in the published CLI.
    default_parameter=Parameter(negative=()),
    version=_version,
)


app.command("openclaw_cli.gateway:gateway_app", name="gateway")
app.command("openclaw_cli.config_cmd:config_app", name="config")
app.command("openclaw_cli.setup_cmd:setup", name="setup", help_epilogue="Docs: https://docs.openclaw.ai/cli/setup")
app.command("openclaw_cli.secrets_cmd:secrets_app", name="secrets")
app.command("openclaw_cli.rpc_cmds:health", name="health", help_epilogue="Docs: https://docs.openclaw.ai/cli/health")
app.command("openclaw_cli.logs_cmd:logs", name="logs", help_epilogue="Docs: https://docs.openclaw.ai/cli/logs")
app.command("openclaw_cli.doctor:doctor", name="doctor", help_epilogue="Docs: https://docs.openclaw.ai/cli/doctor")
app.command("openclaw_cli.service:daemon_app", name="daemon")
app.command("openclaw_cli.rpc_cmds:status", name="status", help_epilogue="Docs: https://docs.openclaw.ai/cli/status")
channels_app = App(name="channels", help="Chat channels.", help_epilogue="Docs: https://docs.openclaw.ai/cli/channels")
channels_app.command("openclaw_cli.channels_cmd:channels_status", name="status")
app.command(channels_app)
app.command("openclaw_cli.channels_cmd:message_app", name="message")
app.command("openclaw_cli.channels_cmd:pairing_app", name="pairing")
app.command("openclaw_cli.agent_cmd:agent", name="agent", help_epilogue="Docs: https://docs.openclaw.ai/cli/agent")
app.command("openclaw_cli.agent_cmd:sessions", name="sessions", help_epilogue="Docs: https://docs.openclaw.ai/cli/sessions")
app.command("openclaw_cli.agent_cmd:models_app", name="models")


@app.command(name="conformance")
def conformance(*args: Annotated[str, Parameter(allow_leading_hyphen=True)]) -> int:
    """Run the protocol conformance suite (same options as ``python -m conformance``).

    Parameters
    ----------
    args
        Passed through, e.g. ``--core`` or ``--url ws://127.0.0.1:PORT --token T``.
    """
    from conformance.__main__ import main as run

    return run(list(args))


def apply_root_options(argv: list[str]) -> list[str]:
    """Root ``--profile NAME`` / ``--dev`` (before the command): set the profile's state dir, config
    path and (dev) port in the environment, as runtime-cli.md §1.2 describes; returns the rest."""
    import os
    import re

    from gateway_trio.settings import home_dir

    profile = None
    dev = False
    rest = list(argv)
    while rest and (rest[0] in ("--profile", "--dev", "--no-color", "--log-level") or rest[0].startswith("--profile=")):
        opt = rest.pop(0)
        if opt == "--no-color":
            os.environ["NO_COLOR"] = "1"  # human output is styled on a TTY only, never with NO_COLOR
            continue
        if opt == "--log-level":
            if rest:
                os.environ["OPENCLAW_LOG_LEVEL"] = rest.pop(0)
            continue
        if opt == "--dev":
            dev = True
        elif opt.startswith("--profile="):
            profile = opt.split("=", 1)[1]
        elif rest:
            profile = rest.pop(0)
        else:
            print("--profile needs a NAME", file=sys.stderr)
            raise SystemExit(2)
    if dev and profile:
        print("[openclaw] Cannot combine --dev with --profile", file=sys.stderr)
        raise SystemExit(2)
    if dev:
        profile = "dev"
    if profile is None:
        return rest
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", profile, re.IGNORECASE):
        print('Invalid --profile (use letters, numbers, "_", "-" only)', file=sys.stderr)
        raise SystemExit(2)
    if profile.lower() != "default":
        os.environ["OPENCLAW_PROFILE"] = profile
        os.environ.setdefault("OPENCLAW_STATE_DIR", str(home_dir() / f".openclaw-{profile}"))
        os.environ.setdefault("OPENCLAW_CONFIG_PATH", os.path.join(os.environ["OPENCLAW_STATE_DIR"], "openclaw.json"))
        if profile == "dev" and not os.environ.get("OPENCLAW_GATEWAY_PORT"):
            os.environ["OPENCLAW_GATEWAY_PORT"] = "19001"
    return rest


def main() -> None:
    """Console-script entry point: exit with the command's code; a closed pipe (``| head``) ends
    quietly; any other uncaught error is reported in the published form (exit 1)."""
    import os

    try:
        result = app(apply_root_options(sys.argv[1:]))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away: point stdout at /dev/null so the interpreter's final flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence, as the published CLI does
        if os.environ.get("OPENCLAW_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        for line in (
            "The CLI command failed.",
            f"Reason: {exc}",
            *(() if os.environ.get("OPENCLAW_DEBUG") == "1" else ("Debug: set OPENCLAW_DEBUG=1 to include the stack trace.",)),
            "Try: openclaw doctor",
            "Help: openclaw --help",
        ):
            print(f"[openclaw] {line}", file=sys.stderr)
        sys.exit(1)
    if isinstance(result, int):
        sys.exit(result)


__all__ = ["app", "main"]

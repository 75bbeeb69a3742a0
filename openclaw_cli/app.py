"""The ``openclaw`` command: its root app and the commands that exist so far.

Commands are plain typed functions; cyclopts builds parsing and ``--help`` from their signatures
and docstrings.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

from cyclopts import App, Group, Parameter

from ._lazy import lazy_command
from .config_cmd import config_app
from .gateway import daemon_app, gateway_app
from .secrets_cmd import secrets_app


def _version() -> str:
    try:
        return version("openclaw-gateway-py")
    except PackageNotFoundError:
        return "0.0.0+local"


EXIT_CODES = (
    "Exit codes: 0 ok; 1 a runtime failure (gateway unreachable, a call refused, a check that found "
    "problems); 2 a usage error (unknown flag, invalid --port/--bind); 78 a configuration refusal "
    "(missing or invalid config, unsafe bind)."
)

app = App(
    name="openclaw",
    help="Drive an OpenClaw-compatible gateway: run it, probe it, call it.",
    help_epilogue=f"{EXIT_CODES}\n\nDocs: https://docs.openclaw.ai/cli",
    # Flags are positive only (`--deep`, never `--no-deep`), as in the published CLI.
    default_parameter=Parameter(negative=()),
    version=_version,
)

#: (import path, name, one-line help, docs page): the commands, loaded only when run (cyclopts
#: cannot read a lazy command's docstring, so the listing's line is given here).
COMMANDS = [
    ("openclaw_cli.rpc_cmds:status", "status", "Overview: the gateway (reachable? auth), agents, heartbeat, channels, sessions.", "status"),
    ("openclaw_cli.rpc_cmds:health", "health", "Health of the gateway: agents, heartbeat, session store.", "health"),
    ("openclaw_cli.logs_cmd:logs", "logs", "The gateway's file log (--follow streams it; read directly when the gateway is down).", "logs"),
    ("openclaw_cli.doctor:doctor", "doctor", "Diagnose the local gateway setup; --fix repairs what is safe.", "doctor"),
    ("openclaw_cli.setup_cmd:setup", "setup", "Write a local gateway's config, workspace and sessions directory (asks nothing).", "setup"),
    ("openclaw_cli.agent_cmd:agent", "agent", "Run one agent turn through the gateway and print the reply.", "agent"),
    ("openclaw_cli.agent_cmd:sessions", "sessions", "Stored conversation sessions, newest first.", "sessions"),
    ("openclaw_cli.setup_cmd:onboard", "onboard", "Set this machine up as a local gateway or a remote gateway's client (asks on a terminal).", "onboard"),
]  # fmt: skip
for _path, _name, _help, _doc in COMMANDS:
    lazy_command(app, _path, _name, _help, help_epilogue=f"Docs: https://docs.openclaw.ai/cli/{_doc}")
# Command groups are small modules that only register their (lazy) subcommands: imported here so
# their descriptions show in the listing.
app.command(gateway_app)
app.command(daemon_app)
app.command(config_app)
app.command(secrets_app)
channels_app = App(name="channels", help="Chat channels: channels list [--all] | status [--probe].", help_epilogue="Docs: https://docs.openclaw.ai/cli/channels")
lazy_command(channels_app, "openclaw_cli.channels_cmd:channels_list", "list", "Chat channels and their configured accounts (--all: every supported channel).")
lazy_command(channels_app, "openclaw_cli.channels_cmd:channels_status", "status", "Status of the configured chat channels (--probe asks each account).")
app.command(channels_app)
message_app = App(name="message", help="Send messages through the gateway's channels: message send.", help_epilogue="Docs: https://docs.openclaw.ai/cli/message")
lazy_command(message_app, "openclaw_cli.channels_cmd:message_send", "send", "Send a message to a channel target (--channel, --target, --message).")
app.command(message_app)
pairing_app = App(name="pairing", help="Secure DM pairing: pairing list | approve.", help_epilogue="Docs: https://docs.openclaw.ai/cli/pairing")
lazy_command(pairing_app, "openclaw_cli.channels_cmd:pairing_list", "list", "Pending DM pairing requests of a channel.")
lazy_command(pairing_app, "openclaw_cli.channels_cmd:pairing_approve", "approve", "Approve a DM pairing code (the sender may then talk to the agent).")
app.command(pairing_app)
devices_app = App(name="devices", help="Device pairing: devices list | approve | reject.", help_epilogue="Docs: https://docs.openclaw.ai/cli/devices")
lazy_command(devices_app, "openclaw_cli.devices_cmd:devices_list", "list", "List pending and paired devices.")
lazy_command(devices_app, "openclaw_cli.devices_cmd:devices_approve", "approve", "Approve a pending device pairing request (no id or --latest: preview the newest).")
lazy_command(devices_app, "openclaw_cli.devices_cmd:devices_reject", "reject", "Reject a pending device pairing request.")
app.command(devices_app)
models_app = App(name="models", help="Model catalog: models list.", help_epilogue="Docs: https://docs.openclaw.ai/cli/models")
lazy_command(models_app, "openclaw_cli.agent_cmd:models_list", "list", "The models the gateway can use (offline/echo when none is configured).")
app.command(models_app)

ROOT_OPTIONS = Group("Root options (before the command)", sort_key=100)


@app.meta.default
def _root(
    *tokens: Annotated[str, Parameter(show=False, allow_leading_hyphen=True)],
    profile: Annotated[
        str | None, Parameter(group=ROOT_OPTIONS, help="Use profile NAME: its own state dir (~/.openclaw-NAME), config and port.")
    ] = None,
    dev: Annotated[bool, Parameter(group=ROOT_OPTIONS, help="The dev profile (same as --profile dev; port 19001).")] = False,
    no_color: Annotated[bool, Parameter(group=ROOT_OPTIONS, help="No ANSI colour in human output (same as NO_COLOR=1).")] = False,
    log_level: Annotated[
        Literal["silent", "fatal", "error", "warn", "info", "debug", "trace"] | None,
        Parameter(group=ROOT_OPTIONS, help="File and console log level (same as OPENCLAW_LOG_LEVEL)."),
    ] = None,
) -> Any:
    """Root options are applied by :func:`apply_root_options` before parsing; this launcher only
    puts them in ``openclaw --help``."""
    del profile, dev, no_color, log_level
    return app(tokens)


app.meta.help = app.help  # the overview describes the command, not this launcher
app.meta._name = app._name  # noqa: SLF001 - the meta app otherwise names itself after sys.argv[0]


@app.command(name="help")
def help_(*command: str) -> int:
    """Help for a command: `openclaw help gateway run` is `openclaw gateway run --help`.

    Parameters
    ----------
    command
        The command (and subcommands) to explain; none: the overview.
    """
    if not command:
        app.meta.help_print([])
        return 0
    chain, _, unused = app.parse_commands(list(command))
    if unused:
        known = " ".join(("openclaw", *chain))
        print(f"Unknown command: {' '.join(command)} ({unused[0]!r} is not a command of `{known}`). See `{known} --help`.", file=sys.stderr)
        return 2
    app.help_print(list(command))
    return 0


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

    from gateway_trio.runtime import home_dir

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
        rest = apply_root_options(sys.argv[1:])
        # The overview (which lists the root options) comes from the launcher that declares them.
        result = app.meta(["--help"]) if rest in ([], ["--help"], ["-h"]) else app(rest)
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

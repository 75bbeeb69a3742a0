"""The cyclopts commands ``gateway install|start|stop|restart|uninstall`` (and ``daemon …``)."""

from __future__ import annotations

from typing import Annotated

from cyclopts import Parameter

from .actions import do_install, do_restart, do_start, do_stop, do_uninstall
from .context import Ctx

#: What service commands require of the environment, for their --help (issue 9 item 11).
IDENTITY_HELP = (
    "Service commands act only for the account's canonical install: HOME is the OS account home (from the "
    "password database), OPENCLAW_HOME is unset, and OPENCLAW_STATE_DIR/OPENCLAW_CONFIG_PATH are unset or "
    "canonical for the profile. To manage a service for another HOME (a container whose passwd home is wrong, "
    "a throwaway HOME), set OPENCLAW_SERVICE_ACCOUNT_HOME to that HOME."
)


Json = Annotated[bool, Parameter(name="--json", negative="")]


Flag = Annotated[bool, Parameter(negative="")]


def install(
    *,
    port: int | None = None,
    token: str | None = None,
    force: Flag = False,
    allow_unconfigured: Flag = False,
    system: Flag = False,
    json_: Json = False,
) -> int:
    """Install the gateway as a service and start it (systemd user unit, LaunchAgent or Scheduled Task).

    A no-op when the service is already installed and loaded, unless --force. The definition is
    written atomically; secrets never go into it.

    Parameters
    ----------
    port
        Port the service runs on (default: OPENCLAW_GATEWAY_PORT, gateway.port, the profile's port, 18789).
    token
        Gateway token for the service, kept only in the owner-only (0600) env file, never in the
        unit, plist or task. Ignored when gateway.auth.token is a SecretRef.
    force
        Reinstall even if already installed (rewrites the definition; may restart a running gateway).
    allow_unconfigured
        Let the service start without gateway.mode=local.
    system
        Linux: print a systemd system unit (User= set) and the sudo steps to install it; writes nothing.
    json_
        Print the result as one JSON object.
    """
    return do_install(
        Ctx.current(),
        port=port,
        token=token,
        force=force,
        allow_unconfigured=allow_unconfigured,
        system=system,
        json_=json_,
    )


def start(*, json_: Json = False) -> int:
    """Start the installed gateway service (idempotent: reports the pid when it already runs).

    Parameters
    ----------
    json_
        Print the result as one JSON object.
    """
    return do_start(Ctx.current(), json_=json_)


def stop(*, force: Flag = False, disable: Flag = False, json_: Json = False) -> int:
    """Stop the gateway service. Stopping an absent service is a successful no-op.

    Parameters
    ----------
    force
        Required in a non-interactive shell (protects the operator's running gateway).
    disable
        launchd only: also persistently disable the job so KeepAlive/RunAtLoad do not respawn it.
    json_
        Print the result as one JSON object.
    """
    return do_stop(Ctx.current(), force=force, disable=disable, json_=json_)


def restart(
    *,
    safe: Flag = False,
    force: Flag = False,
    skip_deferral: Flag = False,
    wait: str | None = None,
    json_: Json = False,
) -> int:
    """Restart the gateway through its service manager, then check its health.

    Exit 1 when the restarted gateway does not become ready (result restart-health-failed), 2 when
    it is still starting at the end of the wait (still-starting).

    Parameters
    ----------
    safe
        Restart the running gateway in place (SIGUSR2), letting it drain its work first.
    force
        Restart now through the service manager; admitted work drains within the shutdown budget.
    skip_deferral
        Requires --safe; accepted for compatibility (this gateway does not defer in-place restarts).
    wait
        Deferral budget for active work (500ms, 30s, 5m, 1h30m; 0 = indefinitely); not with --force or
        --safe. Validated; this gateway drains within its stop budget, so the value is not used yet.
    json_
        Print the result as one JSON object.
    """
    return do_restart(Ctx.current(), safe=safe, force=force, skip_deferral=skip_deferral, wait=wait, json_=json_)


def uninstall(*, json_: Json = False) -> int:
    """Disable, stop and remove the gateway service (and the token it stored).

    Parameters
    ----------
    json_
        Print the result as one JSON object.
    """
    return do_uninstall(Ctx.current(), json_=json_)


def _with_identity_rule(doc: str | None) -> str:
    """A service command's docstring with :data:`IDENTITY_HELP` as its last paragraph before
    ``Parameters`` (so ``--help`` says when it refuses and how to override)."""
    text = doc or ""
    head, sep, tail = text.partition("\n    Parameters\n")
    return f"{head.rstrip()}\n\n    {IDENTITY_HELP}\n" + (f"{sep}{tail}" if sep else "")


for _command in (install, start, stop, restart, uninstall):
    _command.__doc__ = _with_identity_rule(_command.__doc__)

"""``openclaw gateway install|start|stop|restart|uninstall`` (and ``openclaw daemon …``): the gateway
as a supervised service (runtime-cli.md §10.6, §11).

One backend per service manager, all with the same interface (install/start/stop/restart/uninstall/
status) and all driving their manager through an injected command runner ``argv -> (returncode,
stdout, stderr)``, so tests pair a backend with a recording fake:

* :class:`SystemdBackend` (Linux): the user unit ``~/.config/systemd/user/openclaw-gateway[-<profile>].service``
  with the §11.1 policy as the issue fixes it (Restart=always, RestartSec=5, the timeouts,
  SuccessExitStatus=0 143, KillMode=control-group, RestartPreventExitStatus=78), driven with
  ``systemctl --user``. A unit of the same name in the system unit dir (``/etc/systemd/system``; the
  ``system_dir`` argument, or ``OPENCLAW_SYSTEMD_SYSTEM_DIR`` for the CLI) owns the profile (§11.2):
  the CLI never writes or activates a competing user unit, and start/stop/restart of the system unit
  by non-root fail with the sudo command to run. ``install --system`` renders the system unit
  (``User=`` added) and prints it with the sudo steps; it writes nothing, because operators install
  system units (§11.2).
* :class:`LaunchdBackend` (macOS): ``~/Library/LaunchAgents/<label>.plist`` (0644) running ``/bin/sh``
  with an owner-only wrapper (0700) that sources an owner-only env file (0600), then execs the gateway.
* :class:`SchtasksBackend` (Windows): the Scheduled Task ``OpenClaw Gateway[ (<profile>)]`` running
  ``<state>/gateway.cmd``; when task creation is denied, a Startup-folder launcher instead.

Secrets never go into a unit, plist, task or task script: ``--token`` lands only in the owner-only
env file, and nowhere at all when ``gateway.auth.token`` is a SecretRef (the gateway resolves it).
Definitions are written atomically. Every lifecycle mutation appends an audit line to
``<state>/logs/gateway-restart.log``.

Install identity (§10.6): service commands act only for the canonical install: HOME is the OS
account home, no ``OPENCLAW_HOME``, ``OPENCLAW_STATE_DIR``/``OPENCLAW_CONFIG_PATH`` unset or canonical.
``OPENCLAW_SERVICE_ACCOUNT_HOME`` names the account home where the passwd entry is the wrong answer
(a container, or a test's throwaway HOME).

The package, one concern a module: :mod:`.names` (unit, label and task names), :mod:`.common` (the
runner, the gateway command and environment, the spec, the :class:`Backend` interface), one module
per backend (:mod:`.systemd`, :mod:`.launchd`, :mod:`.schtasks`: rendering and driving), :mod:`.context`
(the command context and its policy: install identity, port, drift, audit), :mod:`.report` (the
§10.6 result), :mod:`.actions` (the lifecycle actions) and :mod:`.commands` (the cyclopts commands).
"""

from __future__ import annotations

from .actions import do_install, do_restart, do_start, do_stop, do_uninstall, parse_duration_ms
from .commands import install, restart, start, stop, uninstall
from .common import (
    TOKEN_KEY,
    Backend,
    ServiceError,
    ServiceSpec,
    Status,
    definition_port,
    dev_root,
    service_environment,
)
from .context import Ctx, build_spec, definition_drift, make_backend, mutation_refusal, supervisor_external
from .launchd import LAUNCH_AGENT_WRAPPER, LaunchdBackend, render_launchd_env_file
from .names import launchd_label, unit_name, windows_task
from .schtasks import (
    SchtasksBackend,
    render_startup_launcher,
    render_task_env_script,
    render_task_script,
    render_windows_task,
)
from .systemd import SystemdBackend, render_systemd_unit, system_ownership_message

__all__ = [
    "Backend",
    "Ctx",
    "LAUNCH_AGENT_WRAPPER",
    "LaunchdBackend",
    "SchtasksBackend",
    "ServiceError",
    "ServiceSpec",
    "Status",
    "SystemdBackend",
    "TOKEN_KEY",
    "build_spec",
    "definition_drift",
    "definition_port",
    "dev_root",
    "do_install",
    "do_restart",
    "do_start",
    "do_stop",
    "do_uninstall",
    "install",
    "launchd_label",
    "make_backend",
    "mutation_refusal",
    "parse_duration_ms",
    "render_launchd_env_file",
    "render_startup_launcher",
    "render_systemd_unit",
    "render_task_env_script",
    "render_task_script",
    "render_windows_task",
    "restart",
    "service_environment",
    "start",
    "stop",
    "supervisor_external",
    "system_ownership_message",
    "uninstall",
    "unit_name",
    "windows_task",
]

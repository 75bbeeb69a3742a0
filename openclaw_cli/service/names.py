"""The names of a profile's service: the systemd unit, the launchd label, the Windows task (§11)."""

from __future__ import annotations

import os

SELECTOR_KEYS = {
    "linux": "OPENCLAW_SYSTEMD_UNIT",
    "darwin": "OPENCLAW_LAUNCHD_LABEL",
    "win32": "OPENCLAW_WINDOWS_TASK_NAME",
}


PLATFORM_NAMES = {"linux": "Linux", "darwin": "macOS", "win32": "Windows"}


def unit_name(profile: str | None) -> str:
    """systemd unit of a profile (the default profile may override it with ``OPENCLAW_SYSTEMD_UNIT``)."""
    override = os.environ.get("OPENCLAW_SYSTEMD_UNIT", "").strip()
    if override and not profile:
        return override if override.endswith(".service") else f"{override}.service"
    return f"openclaw-gateway-{profile}.service" if profile else "openclaw-gateway.service"


def launchd_label(profile: str | None) -> str:
    override = os.environ.get("OPENCLAW_LAUNCHD_LABEL", "").strip()
    if override and not profile:
        return override
    return f"ai.openclaw.{profile}" if profile else "ai.openclaw.gateway"


def windows_task(profile: str | None) -> str:
    override = os.environ.get("OPENCLAW_WINDOWS_TASK_NAME", "").strip()
    if override and not profile:
        return override
    return f"OpenClaw Gateway ({profile})" if profile else "OpenClaw Gateway"


def description(profile: str | None) -> str:
    return f"OpenClaw Gateway (profile: {profile})" if profile else "OpenClaw Gateway"


def derived_name(platform: str, profile: str | None) -> str:
    if platform == "darwin":
        return f"ai.openclaw.{profile}" if profile else "ai.openclaw.gateway"
    if platform == "win32":
        return f"OpenClaw Gateway ({profile})" if profile else "OpenClaw Gateway"
    return f"openclaw-gateway-{profile}.service" if profile else "openclaw-gateway.service"


def cli_command(command: str, profile: str | None) -> str:
    """``openclaw <command>`` as the operator should type it for this profile (``--dev`` for dev)."""
    from gateway_trio.runtime import cli_command as for_profile

    return for_profile(command, profile)

"""SecretRef resolution for the gateway's credentials (runtime-cli.md §4): env, file and exec.

``{source, provider, id}``: ``env`` reads an environment variable; ``file`` reads a private file
(``secrets.providers.<alias>`` with ``path`` and ``mode`` json|singleValue; ``id`` is a JSON pointer,
or ``value``); ``exec`` runs ``secrets.providers.<alias>.command`` (absolute path) with ``args``,
passes ``{"protocolVersion":1,"provider":alias,"ids":[id]}`` on stdin and reads
``{"values":{id: value}}`` from stdout (or, unless ``jsonOnly``, the plain text). Every failure is a
:class:`SecretError` whose text names the reference; nothing falls back silently.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

EXEC_TIMEOUT_S = 10.0
MAX_FILE_BYTES = 1024 * 1024


class SecretError(Exception):
    """A SecretRef that cannot be resolved."""


def describe(ref: dict[str, Any]) -> str:
    return f"{ref.get('source')}:{ref.get('provider', 'default')}:{ref.get('id')}"


def _provider(config: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    alias = ref.get("provider", "default")
    providers = ((config.get("secrets") or {}).get("providers") or {}) if isinstance(config, dict) else {}
    provider = providers.get(alias)
    if not isinstance(provider, dict) or provider.get("source") != ref.get("source"):
        raise SecretError(f"SecretRef {describe(ref)}: no secrets.providers.{alias} with source {ref.get('source')!r}")
    return provider


def _pointer(doc: Any, pointer: str) -> Any:
    if pointer in ("", "/"):
        return doc
    node = doc
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(pointer)
    return node


def _read_private_file(path: Path, ref: dict[str, Any]) -> str:
    try:
        st = path.lstat()
    except OSError as exc:
        raise SecretError(f"SecretRef {describe(ref)}: cannot read {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise SecretError(f"SecretRef {describe(ref)}: {path} must be a regular file, not a symlink")
    if st.st_mode & 0o077:
        raise SecretError(f"SecretRef {describe(ref)}: {path} must be private (chmod 600)")
    if st.st_nlink != 1 or st.st_size > MAX_FILE_BYTES:
        raise SecretError(f"SecretRef {describe(ref)}: {path} must have one hard link and be at most 1 MiB")
    return path.read_text(encoding="utf-8")


def resolve_secret(value: Any, config: dict[str, Any]) -> str | None:
    """A plain string stays as it is; a SecretRef dict is resolved; ``None`` stays ``None``."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise SecretError(f"not a secret: {value!r}")
    ref = value
    source, ident = ref.get("source"), ref.get("id")
    if source in ("env", "store"):
        secret = os.environ.get(str(ident))
        if not secret:
            raise SecretError(f"SecretRef {describe(ref)}: environment variable {ident} is not set")
        return secret
    if source == "file":
        provider = _provider(config, ref)
        text = _read_private_file(Path(str(provider.get("path", ""))).expanduser(), ref)
        if provider.get("mode", "json") == "singleValue":
            if ident != "value":
                raise SecretError(f"SecretRef {describe(ref)}: a singleValue file provider only has id 'value'")
            return text.strip()
        try:
            found = _pointer(json.loads(text), str(ident))
        except (json.JSONDecodeError, KeyError):
            raise SecretError(f"SecretRef {describe(ref)}: no JSON value at {ident}") from None
        if not isinstance(found, str):
            raise SecretError(f"SecretRef {describe(ref)}: the value at {ident} is not a string")
        return found
    if source == "exec":
        provider = _provider(config, ref)
        command = str(provider.get("command", ""))
        if not os.path.isabs(command) or Path(command).is_symlink():
            raise SecretError(f"SecretRef {describe(ref)}: command must be an absolute path, not a symlink")
        env = {k: os.environ[k] for k in provider.get("passEnv", []) if k in os.environ}
        env.setdefault("PATH", "/usr/bin:/bin")
        request = json.dumps({"protocolVersion": 1, "provider": ref.get("provider", "default"), "ids": [ident]})
        try:
            out = subprocess.run(
                [command, *map(str, provider.get("args", []))],
                input=request,
                capture_output=True,
                text=True,
                timeout=EXEC_TIMEOUT_S,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SecretError(f"SecretRef {describe(ref)}: {command} failed: {exc}") from None
        if out.returncode != 0:
            raise SecretError(f"SecretRef {describe(ref)}: {command} exited {out.returncode}")
        try:
            doc = json.loads(out.stdout)
            secret = doc["values"][ident]
        except (json.JSONDecodeError, KeyError, TypeError):
            if provider.get("jsonOnly"):
                raise SecretError(
                    f"SecretRef {describe(ref)}: {command} did not answer {{values:{{{ident}: …}}}}"
                ) from None
            secret = out.stdout.strip()
        if not isinstance(secret, str) or not secret:
            raise SecretError(f"SecretRef {describe(ref)}: {command} returned no value")
        return secret
    raise SecretError(f"SecretRef {describe(ref)}: unknown source {source!r}")

"""Control UI serving over real HTTP, on our gateway and on the published one (same expectations).

A behaviour is right only if the published gateway shows it too: this runs against both when
``OPENCLAW_REFERENCE_BIN`` is set (the published gateway serves its own build there).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from gateway_proc import GatewayProcess, child_env, free_port, make_home, stop_process

REFERENCE = os.environ.get("OPENCLAW_REFERENCE_BIN")
TOKEN = "serving-token-0123456789"
UNAUTHORIZED = {"error": {"message": "Unauthorized", "type": "unauthorized"}}
KINDS = [
    "ours",
    pytest.param(
        "reference",
        marks=pytest.mark.skipif(not REFERENCE, reason="OPENCLAW_REFERENCE_BIN is not set (the published gateway)"),
    ),
]


def fetch(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module", params=KINDS)
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    kind = request.param
    root = tmp_path_factory.mktemp(f"serving-{kind}")
    chosen = free_port()
    if kind == "ours":
        cfg = {"gateway": {"mode": "local", "port": chosen, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN}}}
        with GatewayProcess(root, make_home(root, cfg)) as gw:
            gw.wait_ready(chosen, timeout=20)
            yield chosen
        return
    home = make_home(root, None)
    argv = [str(REFERENCE), "gateway", "run", "--allow-unconfigured", "--bind", "loopback", "--port", str(chosen),
            "--auth", "token", "--token", TOKEN]  # fmt: skip
    with open(root / "ref.log", "wb") as log:
        proc = subprocess.Popen(argv, env=child_env(home), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        ready = GatewayProcess(root, home)
        ready.proc = proc
        ready.wait_ready(chosen, timeout=90)
        # The published gateway answers 503 "Plugin runtime is starting" for a while after it is ready.
        deadline = time.monotonic() + 90
        while fetch(chosen, "/api/x")[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield chosen
    finally:
        stop_process(proc)


def _ui_headers(headers: dict[str, str]) -> None:
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["permissions-policy"] == "camera=(self), microphone=*, geolocation=*, clipboard-write=*"
    policy = headers["content-security-policy"]
    for part in ("default-src 'self'", "base-uri 'none'", "object-src 'none'", "frame-ancestors 'none'"):
        assert part in policy


def test_index_and_the_app_shell_fallback(port: int) -> None:
    status, headers, body = fetch(port, "/", {"accept": "text/html"})
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    assert b'data-openclaw-control-ui-base-path=""' in body
    _ui_headers(headers)
    for accept, want in (("text/html", 200), ("*/*", 200), ("text/html;q=0, */*", 404), ("application/json", 404)):
        assert fetch(port, "/chat/deep/link", {"accept": accept})[0] == want, accept
    assert fetch(port, "/chat")[0] == 200  # headerless: the browser-navigation fallback


def test_paths_the_ui_never_claims(port: int) -> None:
    status, headers, _ = fetch(port, "/ui", {"accept": "text/html"})
    assert status == 404 and headers["x-frame-options"] == "DENY"  # the UI's own 404
    for path in ("/api/x", "/v1/x"):
        status, headers, _ = fetch(port, path, {"accept": "text/html"})
        assert status == 404 and "content-security-policy" not in headers, path
    assert fetch(port, "/foo.png", {"accept": "text/html"})[0] == 404
    assert fetch(port, "/assets/missing-1234.js", {"accept": "text/html"})[0] == 404
    assert fetch(port, "/", method="POST")[0] == 404


def test_bootstrap_json_needs_a_bearer_credential(port: int) -> None:
    for path in ("/control-ui-config.json", "/__openclaw/control-ui-config.json", "/__openclaw__/control-ui-config.json"):
        status, headers, body = fetch(port, path)
        assert status == 401 and json.loads(body) == UNAUTHORIZED, path
        assert fetch(port, f"{path}?token={TOKEN}")[0] == 401  # not on this route
        status, headers, body = fetch(port, path, {"authorization": f"Bearer {TOKEN}"})
        assert status == 200 and headers["cache-control"] == "no-cache", path
        config = json.loads(body)
        assert config["basePath"] == "" and config["assistantAgentId"] == "main"
        assert config["pluginAssetsRequireAuth"] is True and config["pluginFrameGrants"] == []


def test_build_assets_are_cached_for_a_year(port: int) -> None:
    _, _, body = fetch(port, "/", {"accept": "text/html"})
    src = re.search(rb'<script[^>]*type="module"[^>]*src="([^"]+)"', body)
    assert src is not None
    status, headers, _ = fetch(port, src.group(1).decode())
    assert status == 200 and headers["content-type"] == "application/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"


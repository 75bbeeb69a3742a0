"""Control UI serving (http-agents-channels.md §1.9) as the pure ``serve`` function sees it.

The expectations were checked against the published gateway (2026.9.6) serving its own build:
the 404 for ``/ui``, the paths the UI never claims, the ``Accept`` fallback rules, the
bootstrap JSON refusing ``?token=``, the security headers and the cache headers.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from gateway_trio import control_ui as ui
from gateway_trio.control_ui import UiSettings, accepts_html, serve

TOKEN = "T0123"


def settings(**kw: object) -> UiSettings:
    base = dict(
        server_version="9.9.9",
        check_read=lambda bearer: bearer == TOKEN,
    )
    base.update(kw)
    return UiSettings(**base)  # type: ignore[arg-type]


def get(path: str, headers: dict[str, str] | None = None, method: str = "GET", query: str = "", **kw: object):
    return serve(method, path, query, {"host": "127.0.0.1:4000", **(headers or {})}, settings(**kw))


def hdr(resp: tuple, name: str) -> str | None:
    for k, v in resp[1]:
        if k.decode() == name:
            return v.decode()
    return None


def test_index_is_no_cache_with_the_security_headers_and_versioned_asset_links() -> None:
    resp = get("/")
    assert resp is not None
    status, _, body = resp
    assert status == 200
    assert hdr(resp, "content-type") == "text/html; charset=utf-8"
    assert hdr(resp, "cache-control") == "no-cache"
    assert hdr(resp, "x-frame-options") == "DENY"
    assert hdr(resp, "x-content-type-options") == "nosniff"
    assert hdr(resp, "referrer-policy") == "no-referrer"
    assert hdr(resp, "permissions-policy") == "camera=(self), microphone=*, geolocation=*, clipboard-write=*"
    policy = hdr(resp, "content-security-policy") or ""
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    # Our UI may only talk to the gateway that served it.
    assert "connect-src 'self' ws://127.0.0.1:4000 wss://127.0.0.1:4000" in policy
    doc = body.decode()
    assert 'data-openclaw-control-ui-base-path=""' in doc
    build = ui.asset_dir(None).build_id
    assert f'src="/assets/v-{build}/main.js"' in doc
    assert "<script>" not in doc  # no inline script: script-src needs no hash


def test_assets_under_the_build_id_are_immutable_and_others_revalidate() -> None:
    build = ui.asset_dir(None).build_id
    fresh = get(f"/assets/v-{build}/main.js")
    assert fresh is not None and fresh[0] == 200
    assert hdr(fresh, "cache-control") == "public, max-age=31536000, immutable"
    assert hdr(fresh, "content-type") == "application/javascript; charset=utf-8"
    stale = get("/assets/v-0000000000000000/main.js")
    assert stale is not None and stale[0] == 200 and hdr(stale, "cache-control") == "no-cache"
    assert stale[2] == fresh[2]
    missing = get(f"/assets/v-{build}/nope.js", {"accept": "text/html"})
    assert missing is not None and missing[0] == 404 and missing[2] == b"Not Found"


def test_gzip_when_accepted_and_304_when_unchanged() -> None:
    build = ui.asset_dir(None).build_id
    plain = get(f"/assets/v-{build}/main.js")
    packed = get(f"/assets/v-{build}/main.js", {"accept-encoding": "br, gzip;q=0.8"})
    assert plain is not None and packed is not None
    assert hdr(packed, "content-encoding") == "gzip" and hdr(packed, "vary") == "Accept-Encoding"
    assert gzip.decompress(packed[2]) == plain[2]
    refused = get(f"/assets/v-{build}/main.js", {"accept-encoding": "gzip;q=0"})
    assert refused is not None and hdr(refused, "content-encoding") is None
    css = get("/assets/style.css")
    assert css is not None
    again = get("/assets/style.css", {"if-modified-since": hdr(css, "last-modified") or ""})
    assert again is not None and again[0] == 304 and again[2] == b""


@pytest.mark.parametrize(
    ("accept", "fallback"),
    [
        (None, True),
        ("", True),
        ("*/*", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("text/html;q=0, */*", False),
        ("application/json", False),
        ("text/*", True),
        ("text/*;q=0", False),
        ("text/html;q=0, application/xhtml+xml", True),
    ],
)
def test_app_shell_fallback_follows_the_accept_header(accept: str | None, fallback: bool) -> None:
    assert accepts_html(accept) is fallback
    headers = {} if accept is None else {"accept": accept}
    resp = get("/chat/some/deep/link", headers)
    if fallback:
        assert resp is not None and resp[0] == 200 and b"<html" in resp[2]
    else:
        assert resp is None  # the HTTP layer's own 404 answers


def test_static_file_types_do_not_fall_back() -> None:
    for path in ("/foo.png", "/assets/x.js", "/missing.css"):
        resp = get(path, {"accept": "text/html"})
        assert resp is not None and resp[0] == 404, path


@pytest.mark.parametrize("path", ["/api", "/api/v1/admin/rpc", "/v1/models", "/j/abc", "/health", "/healthz", "/readyz",
                                  "/startup", "/__openclaw__/worker", "/__openclaw__/worker/x"])
def test_the_ui_never_claims_api_probe_or_worker_paths(path: str) -> None:
    assert get(path, {"accept": "text/html"}) is None


def test_ui_prefix_is_404_without_a_base_path_and_non_get_is_not_ours() -> None:
    for path in ("/ui", "/ui/", "/ui/chat"):
        resp = get(path)
        assert resp is not None and resp[0] == 404 and hdr(resp, "x-frame-options") == "DENY"
    assert get("/", method="POST") is None
    assert get("/chat", method="DELETE") is None
    head = get("/", method="HEAD")
    assert head is not None and head[0] == 200 and head[2] == b"" and int(hdr(head, "content-length") or 0) > 0


def test_base_path_redirects_and_prefixes_everything() -> None:
    redirect = get("/openclaw", base_path="/openclaw/", query="x=1")
    assert redirect is not None and redirect[0] == 302 and hdr(redirect, "location") == "/openclaw/?x=1"
    index = get("/openclaw/", base_path="openclaw")
    assert index is not None and index[0] == 200
    doc = index[2].decode()
    assert 'data-openclaw-control-ui-base-path="/openclaw"' in doc
    assert '"/openclaw/assets/v-' in doc
    assert get("/", base_path="/openclaw") is None
    assert get("/chat", base_path="/openclaw") is None
    deep = get("/openclaw/chat", {"accept": "text/html"}, base_path="/openclaw")
    assert deep is not None and deep[0] == 200
    assert get("/openclaw/", method="POST", base_path="/openclaw") is None


def test_bootstrap_json_needs_a_read_credential_and_refuses_query_tokens() -> None:
    for path in ("/control-ui-config.json", "/__openclaw/control-ui-config.json", "/__openclaw__/control-ui-config.json"):
        denied = get(path)
        assert denied is not None and denied[0] == 401, path
        assert denied[2] == b'{"error":{"message":"Unauthorized","type":"unauthorized"}}'
        assert get(path, query=f"token={TOKEN}") is not None and get(path, query=f"token={TOKEN}")[0] == 401
        assert get(path, {"authorization": "Bearer wrong"})[0] == 401
        ok = get(path, {"authorization": f"Bearer {TOKEN}"})
        assert ok is not None and ok[0] == 200 and hdr(ok, "cache-control") == "no-cache"
        body = json.loads(ok[2])
        assert body["basePath"] == "" and body["serverVersion"] == "9.9.9" and body["assistantAgentId"] == "main"
        assert body["pluginAssetsRequireAuth"] is True and body["pluginFrameGrants"] == []
    # Without a base path only; with one the aliases move under it.
    assert get("/__openclaw__/control-ui-config.json", {"authorization": f"Bearer {TOKEN}"}, base_path="/oc") is None
    moved = get("/oc/__openclaw/control-ui-config.json", {"authorization": f"Bearer {TOKEN}"}, base_path="/oc")
    assert moved is not None and moved[0] == 200
    open_gw = get("/control-ui-config.json", auth_mode="none")
    assert open_gw is not None and open_gw[0] == 200


def test_disabled_serves_nothing() -> None:
    assert get("/", enabled=False) is None
    assert get("/control-ui-config.json", {"authorization": f"Bearer {TOKEN}"}, enabled=False) is None


# --------------------------------------------------------------------------- a configured root


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(
        '<!doctype html><html lang="en"><head><script>window.boot = 1;</script>'
        '<script type="module" src="./assets/index-AbCdEf12.js"></script>'
        '<link rel="stylesheet" href="./assets/app-AbCdEf12.css"></head><body></body></html>'
    )
    (root / "assets" / "index-AbCdEf12.js").write_text("console.log('x');" * 100)
    (root / "assets" / "index-AbCdEf12.js.gz").write_bytes(gzip.compress(b"console.log('x');" * 100))
    (root / "assets" / "app-AbCdEf12.css").write_text("body{}")
    (root / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("top secret")
    return root


def test_configured_root_serves_its_build_with_the_inline_script_hash(build: Path) -> None:
    resp = get("/", root=str(build))
    assert resp is not None and resp[0] == 200
    doc = resp[2].decode()
    assert 'data-openclaw-control-ui-base-path=""' in doc and 'src="/assets/index-AbCdEf12.js"' in doc
    policy = hdr(resp, "content-security-policy") or ""
    digest = re.search(r"'(sha256-[^']+)'", policy)
    assert digest is not None
    assert digest.group(1) == "sha256-" + base64.b64encode(hashlib.sha256(b"window.boot = 1;").digest()).decode()
    asset = get("/assets/index-AbCdEf12.js", {"accept-encoding": "gzip"}, root=str(build))
    assert asset is not None and hdr(asset, "cache-control") == "public, max-age=31536000, immutable"
    assert hdr(asset, "content-encoding") == "gzip"  # the build's own .gz sibling
    icon = get("/favicon.svg", root=str(build))
    assert icon is not None and hdr(icon, "cache-control") == "no-cache"


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt",
     "/%2fetc%2fpasswd", "/assets/%5c..%5csecret.txt", "/%00", "/linked.txt", "/hard.txt"],
)
def test_configured_root_never_serves_outside_it(build: Path, path: str) -> None:
    os.symlink(build.parent / "secret.txt", build / "linked.txt")
    os.link(build.parent / "secret.txt", build / "hard.txt")
    resp = get(path, {"accept": "text/html"}, root=str(build))
    assert resp is None or b"top secret" not in resp[2]


def test_a_missing_root_is_503_with_a_hint_and_no_path(tmp_path: Path) -> None:
    resp = get("/", root=str(tmp_path / "nowhere"))
    assert resp is not None and resp[0] == 503
    assert b"gateway.controlUi.root" in resp[2] and str(tmp_path).encode() not in resp[2]


def test_index_preloads_every_module_of_the_bundled_ui() -> None:
    """No build step: index.html lists every ES module for modulepreload (one round trip, not a
    waterfall of imports). A module added without its line here fails this test."""
    doc = (ui.STATIC_DIR / "index.html").read_text()
    listed = set(re.findall(r'href="\./assets/([^"]+\.js)"', doc)) | set(re.findall(r'src="\./assets/([^"]+\.js)"', doc))
    modules = {p.relative_to(ui.STATIC_DIR / "assets").as_posix() for p in (ui.STATIC_DIR / "assets").rglob("*.js")}
    assert listed == modules

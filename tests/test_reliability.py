"""The bounded reliability suite (issue 10 item 11): our gateway as a process, pushed the way a
hostile page, a slow client or a full disk would push it.

* the configured failed-auth policy through real connections, hot reload included;
* stalled HTTP bodies against a gateway limited to 1,024 file descriptors;
* one client pipelining 2,000 ``logs.tail`` without reading: the in-flight cap, the slow-consumer
  close and an RSS bound;
* SIGTERM with requests in flight, and how fast the process is gone;
* storage failures (a full tmpfs, a read-only bind mount) in a private mount namespace.

Every loop is bounded in count and time, every process is ours and killed by pid; bounds on time
are generous ceilings the issue asks for, never measurements of speed (those are in bench/).
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway_proc import TOKEN, GatewayProcess, free_port, local_config, make_home
from rawws import connect_frame, session
from test_gateway_reload import _edit, _wait_log


def _summary(port: int, token: str, source: str) -> str:
    out = session(port, connect=connect_frame(token), source=source, until=lambda o: o.hello is not None, timeout=10)
    if out.hello is not None:
        return "admitted"
    err = out.connect_error or {}
    return (err.get("details") or {}).get("authReason", f"no answer {out.close}")


def test_rate_limit_policy_from_config_and_hot_reload(tmp_path: Path) -> None:
    """``exemptLoopback: false`` locks a loopback peer out after ``maxAttempts`` failures; a hot
    edit of ``maxAttempts`` applies to the next failures (issue 10 item 1)."""
    port = free_port()
    limit = {"exemptLoopback": False, "maxAttempts": 4}
    home = make_home(tmp_path, local_config(port=port, auth={"mode": "token", "token": TOKEN, "rateLimit": limit}))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        got = [_summary(port, "wrong", "127.0.0.21") for _ in range(5)] + [_summary(port, TOKEN, "127.0.0.21")]
        assert got == ["token_mismatch"] * 4 + ["rate_limited"] * 2
        assert _summary(port, TOKEN, "127.0.0.22") == "admitted"  # per address

        _edit(home, {"gateway": {"auth": {"rateLimit": {"maxAttempts": 2}}}})
        _wait_log(gw, "config hot reload applied (gateway.auth.rateLimit)")
        got = [_summary(port, "wrong", "127.0.0.23") for _ in range(3)]
        assert got == ["token_mismatch"] * 2 + ["rate_limited"]
        # The lockout taken before the edit is kept (limiter state survives a hot reload).
        assert _summary(port, TOKEN, "127.0.0.21") == "rate_limited"
        records = [json.loads(line) for line in (tmp_path / "gw.log").read_text().splitlines()]
        assert all("Traceback" not in str(r) for r in records)

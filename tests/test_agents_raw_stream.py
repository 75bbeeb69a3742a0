"""``gateway run --raw-stream --raw-stream-path P`` appends every model stream event to P as JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from gateway_proc import GatewayProcess, connected, free_port, local_config, make_home


def test_raw_stream_writes_the_model_events(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    out = tmp_path / "raw.jsonl"
    with GatewayProcess(tmp_path, home, "--raw-stream", "--raw-stream-path", str(out)) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            async with connected(port) as c:
                await c.call("chat.send", {"sessionKey": "main", "message": "record me", "idempotencyKey": "raw-1"})
                with trio.fail_after(20):
                    while not any(e["event"] == "chat" and e["payload"].get("state") == "final" for e in c.events):
                        c.file_frame(await c.recv())

        trio.run(main)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [line["event"]["type"] for line in lines]
    assert kinds.count("text") >= 2 and kinds[-2:] == ["usage", "end"]
    assert all(line["model"] == "offline/echo" and isinstance(line["ts"], int) for line in lines)
    assert "record me" in "".join(line["event"].get("text", "") for line in lines)

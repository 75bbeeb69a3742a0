"""``python -m conformance``: run the protocol transcripts against the core or a live gateway.

    python -m conformance --core                      # gateway_core in memory, virtual clock
    python -m conformance --url ws://127.0.0.1:P --token T
    python -m conformance --url ws://127.0.0.1:P --password P
    python -m conformance --list | --only PATTERN | --json

Ends with the line ``N passed, N failed, N skipped`` (on stderr with ``--json``, whose document
goes to stdout) and exits 1 if any case failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .core_driver import CoreDriver, run_sync
from .runner import Case, Interpreter, Result, StepFailed, load_cases, select

#: Requirements a live run cannot meet against an arbitrary gateway URL, with the reason shown.
LIVE_UNMET = {
    "gateway-control": "needs control of the gateway process (shutdown, restart, startup phase); runs in core mode",
    "non-loopback": "needs a client address outside loopback; runs in core mode",
    "fresh-gateway": "needs a gateway no other client has used yet; pass --fresh when it is",
    "slow": "waits 15 s or more; pass --slow to include it",
}
#: The command-line flag that declares a requirement met (the others cannot be met live).
LIFTED_BY = {"fresh-gateway": "fresh", "slow": "slow"}
#: Requirements a live run checks on the gateway itself before the cases run (see :func:`live_facts`).
CHECKED_LIVE = ("config-file", "config-secret")
#: Methods that may write the gateway's config file: a live case sending one is checked to leave
#: the file as it found it (same hash before and after).
CONFIG_WRITES = frozenset({"config.set", "config.patch", "config.apply"})


def skip_reason(
    case: Case, mode: str, live_auth: str | None, flags: set[str], facts: dict[str, str | None] | None = None
) -> str | None:
    """Why ``case`` cannot run in ``mode`` (``None`` if it can). ``facts`` maps each requirement a
    live run checked on the gateway to ``None`` (met) or why not."""
    pending = case.header.get("pending")
    if pending:
        return f"pending: {pending}"
    modes = case.header.get("modes", ["core", "live"])
    if mode not in modes:
        return case.header.get("mode_note") or f"{mode} mode not applicable"
    if mode == "live":
        for req in case.requires:
            if req in LIVE_UNMET and LIFTED_BY.get(req) not in flags:
                return LIVE_UNMET[req]
        if live_auth is not None and case.auth != live_auth:
            return f"needs a gateway in auth mode {case.auth!r} (this run targets {live_auth!r})"
        for req in case.requires:
            if req in CHECKED_LIVE and (facts or {}).get(req, "not checked") is not None:
                return (facts or {}).get(req) or f"{req}: not checked"
    return None


def writes_config(case: Case) -> bool:
    """Whether a step sends a config write (then the live run checks the file is unchanged)."""
    return any(isinstance(st.get("send"), dict) and st["send"].get("method") in CONFIG_WRITES for st in case.steps)


def _probe_case(auth: str) -> Case:
    """A read-only session: connect as the local CLI with operator.read and call ``config.get``."""
    from pathlib import Path

    creds = {"token": {"token": "${token}"}, "password": {"password": "${password}"}}[auth]
    steps: list[dict[str, Any]] = [
        {"open": "a"},
        {"send_connect": {"client": "cli/cli", "auth": creds, "scopes": ["operator.read"]}},
        {"expect": {"type": "res", "id": "connect-1", "ok": True}},
        {"send": {"type": "req", "id": "g", "method": "config.get", "params": {}}},
        {"expect": {"type": "res", "id": "g", "ok": True, "payload": {"$capture": "config"}}},
    ]
    return Case("precondition-probe", "config.get", Path("precondition-probe"), {"case": "precondition-probe"}, steps)


async def read_config_state(url: str, auth: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The gateway's ``config.get`` answer (raises ``StepFailed``/``ConnectionError`` if it cannot)."""
    import trio

    from .live_driver import open_live_driver

    with trio.fail_after(15):
        async with open_live_driver(url) as driver:
            interp = Interpreter(_probe_case(auth), driver, variables)
            await interp.run()
    return interp.vars["config"] if isinstance(interp.vars.get("config"), dict) else {}


def facts_from_config(state: dict[str, Any]) -> dict[str, str | None]:
    """Which config preconditions the gateway meets (``None``) or why not, from ``config.get``."""
    where = state.get("path") or "its config path"
    if not state.get("exists"):
        missing = f"this gateway has no config file ({where}); config writes would create one"
        return {
            "config-file": f"needs an existing config file: {missing}",
            "config-secret": f"needs the gateway's token or password in its config file: {missing}",
        }
    redacted = "__OPENCLAW_REDACTED__" in str(state.get("raw") or "")
    return {
        "config-file": None,
        "config-secret": None
        if redacted
        else f"needs the gateway's token or password in its config file ({where} holds none, so nothing is redacted)",
    }


def _variables(args: argparse.Namespace) -> dict[str, Any]:
    return {"token": args.token or "T", "password": args.password or "P"}


def run_core(cases: list[Case], args: argparse.Namespace) -> list[Result]:
    results = []
    for case in cases:
        reason = skip_reason(case, "core", None, set())
        if reason:
            results.append(Result(case.id, case.title, "skipped", reason))
            continue
        driver = CoreDriver(auth=case.auth, token="T", password="P")
        started = time.perf_counter()
        try:
            run_sync(Interpreter(case, driver, {"token": "T", "password": "P"}).run())
        except StepFailed as exc:
            results.append(Result(case.id, case.title, "failed", str(exc), duration_ms=_ms(started)))
            continue
        results.append(Result(case.id, case.title, "passed", duration_ms=_ms(started)))
    return results


def run_live(cases: list[Case], args: argparse.Namespace) -> list[Result]:
    import trio

    from .live_driver import open_live_driver

    live_auth = "token" if args.token else "password" if args.password else "none"
    flags = {f for f in ("fresh", "slow") if getattr(args, f)}
    results: list[Result] = []

    async def config_state() -> dict[str, Any] | str:
        """``config.get`` of the gateway, or why it could not be read."""
        if live_auth == "none":
            return "cannot read the gateway's config without credentials"
        try:
            return await read_config_state(args.url, live_auth, _variables(args))
        except (StepFailed, trio.TooSlowError, ConnectionError, BaseExceptionGroup) as exc:
            leaf = _leaf(exc)
            if not isinstance(leaf, (StepFailed, trio.TooSlowError, ConnectionError)):
                raise
            return f"could not read the gateway's config to check it: {leaf}"

    async def main() -> None:
        # Cases that need an untouched gateway go first, before any other session (the precondition
        # probe included) has used it; the rest keep their order.
        ordered = sorted(cases, key=lambda c: "fresh-gateway" not in c.requires)
        facts: dict[str, str | None] | None = None
        if any(req in CHECKED_LIVE for case in cases for req in case.requires):
            state = await config_state()
            facts = facts_from_config(state) if isinstance(state, dict) else dict.fromkeys(CHECKED_LIVE, state)
        for case in ordered:
            reason = skip_reason(case, "live", live_auth, flags, facts)
            if reason:
                results.append(Result(case.id, case.title, "skipped", reason))
                if not args.json:
                    _print_result(results[-1])
                continue
            before = await config_state() if writes_config(case) else None
            started = time.perf_counter()
            try:
                with trio.fail_after(float(case.header.get("timeout_s", 60))):
                    async with open_live_driver(args.url) as driver:
                        await Interpreter(case, driver, _variables(args)).run()
            except (StepFailed, trio.TooSlowError, ConnectionError, BaseExceptionGroup) as exc:
                leaf = _leaf(exc)
                if not isinstance(leaf, (StepFailed, trio.TooSlowError, ConnectionError)):
                    raise
                detail = "case timed out" if isinstance(leaf, trio.TooSlowError) else str(leaf)
                results.append(Result(case.id, case.title, "failed", detail, duration_ms=_ms(started)))
            else:
                results.append(Result(case.id, case.title, "passed", duration_ms=_ms(started)))
            if isinstance(before, dict):
                after = await config_state()
                if not isinstance(after, dict) or (after.get("exists"), after.get("hash")) != (
                    before.get("exists"),
                    before.get("hash"),
                ):
                    changed = "the case changed the gateway's config file"
                    if isinstance(after, dict):
                        changed += f" ({before.get('hash')} -> {after.get('hash')}; the previous version may be in {after.get('path')}.bak)"
                    results[-1] = Result(case.id, case.title, "failed", changed, duration_ms=results[-1].duration_ms)
            if not args.json:
                _print_result(results[-1])

    trio.run(main)
    return results


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _print_result(r: Result) -> None:
    tag = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[r.status]
    line = f"{tag} {r.case:<8} {r.title}"
    if r.detail:
        line += f"\n       {r.detail}"
    print(line, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m conformance",
        description="OpenClaw Gateway protocol v4 conformance suite: replays transcripts against "
        "gateway_core in memory (--core) or live against a gateway (--url).",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--core", action="store_true", help="replay against gateway_core alone (no sockets)")
    target.add_argument("--url", help="run live against this gateway, e.g. ws://127.0.0.1:19001")
    cred = p.add_mutually_exclusive_group()
    cred.add_argument("--token", help="the gateway's shared token (live mode)")
    cred.add_argument("--password", help="the gateway's shared password (live mode)")
    p.add_argument("--only", metavar="PATTERN", help="run cases whose id, file name or title matches")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--json", action="store_true", help="print results as JSON (summary line on stderr)")
    p.add_argument("--fresh", action="store_true", help="live: the gateway is fresh (enables fresh-gateway cases)")
    p.add_argument("--slow", action="store_true", help="live: include cases that wait 15 s or more")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cases = select(load_cases(), args.only)
    if args.list:
        for case in cases:
            notes = []
            if case.header.get("pending"):
                notes.append("pending")
            if case.requires:
                notes.append("requires " + ",".join(case.requires))
            if case.header.get("differs"):
                notes.append("differs from published")
            suffix = f"  [{'; '.join(notes)}]" if notes else ""
            print(f"{case.id:<8} {case.path.name:<44} {case.title}{suffix}")
        print(f"{len(cases)} cases")
        return 0
    if not args.core and not args.url:
        print("choose a target: --core or --url ws://HOST:PORT (see --help)", file=sys.stderr)
        return 2
    if args.url and not args.url.startswith(("ws://", "wss://")):
        print(f"--url must be a ws:// or wss:// URL, got {args.url!r}", file=sys.stderr)
        return 2
    if args.core:
        results = run_core(cases, args)
        if not args.json:
            for r in results:
                _print_result(r)
    else:
        results = run_live(cases, args)  # prints each result as it completes
    passed = sum(r.status == "passed" for r in results)
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    summary = f"{passed} passed, {failed} failed, {skipped} skipped"
    if args.json:
        doc = {
            "target": "core" if args.core else args.url,
            "results": [r.as_json() for r in results],
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
        }
        print(json.dumps(doc, indent=2))
        print(summary, file=sys.stderr)
    else:
        print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

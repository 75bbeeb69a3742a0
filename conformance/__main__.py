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


def skip_reason(case: Case, mode: str, live_auth: str | None, flags: set[str]) -> str | None:
    """Why ``case`` cannot run in ``mode`` (``None`` if it can)."""
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
    return None


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

    async def main() -> None:
        for case in cases:
            reason = skip_reason(case, "live", live_auth, flags)
            if reason:
                results.append(Result(case.id, case.title, "skipped", reason))
                if not args.json:
                    _print_result(results[-1])
                continue
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

"""plan_reload: the rules table and the four reload modes (runtime-cli.md §7.4; design.md §1)."""

from __future__ import annotations

import pytest

from gateway_core.reload import Effect, classify, diff_paths, plan_reload

BASE = {
    "gateway": {
        "mode": "local",
        "port": 18789,
        "auth": {"mode": "token", "token": "old"},
        "reload": {"mode": "hybrid"},
    },
    "logging": {"level": "info"},
}


def with_(**changes: object) -> dict:
    import copy

    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


@pytest.mark.parametrize(
    ("path", "effect", "rule"),
    [
        ("logging.level", Effect.NONE, "logging"),
        ("gateway.port", Effect.RESTART, "gateway"),
        ("gateway.bind", Effect.RESTART, "gateway"),
        ("gateway.auth.rateLimit.maxAttempts", Effect.HOT, "gateway.auth.rateLimit"),
        ("gateway.reload.mode", Effect.NONE, "gateway.reload"),
        ("gateway.controlUi.allowedOrigins", Effect.HOT, "gateway.controlUi.allowedOrigins"),
        ("gateway.controlUi.basePath", Effect.RESTART, "gateway"),
        ("agents.entries.main.decisionModel", Effect.HOT, "agents.entries.*.decisionModel"),
        ("plugins.installs.x.installedAt", Effect.NONE, "plugins.installs.*.installedAt"),
        ("channels.telegram.token", Effect.HOT, "channels"),
        ("env.vars.FOO", Effect.RESTART, None),  # no rule: restart
        ("brandNewTopLevelKey", Effect.RESTART, None),
    ],
)
def test_classify(path: str, effect: Effect, rule: str | None) -> None:
    assert classify(path) == (effect, rule)


def test_diff_paths_reports_leaves_and_arrays() -> None:
    old = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    new = {"a": {"b": 2, "c": [1, 2, 3]}, "e": 1}
    assert diff_paths(old, new) == ["a.b", "a.c", "d", "e"]
    assert diff_paths(old, old) == []


# (change, mode) → (apply, restart, deferred)
CASES = [
    # logging is read live: never a restart
    ({"logging__level": "debug"}, "hybrid", (("logging.level",), False, ())),
    ({"logging__level": "debug"}, "hot", (("logging.level",), False, ())),
    ({"logging__level": "debug"}, "restart", (("logging.level",), False, ())),
    ({"logging__level": "debug"}, "off", ((), False, ())),
    # the port needs a restart
    ({"gateway__port": 19000}, "hybrid", ((), True, ())),
    ({"gateway__port": 19000}, "hot", ((), False, ("gateway.port",))),
    ({"gateway__port": 19000}, "restart", ((), True, ())),
    ({"gateway__port": 19000}, "off", ((), False, ("gateway.port",))),
    # a hot key: in place, except that restart mode restarts for it
    ({"gateway__auth__rateLimit": {"maxAttempts": 3}}, "hybrid", (("gateway.auth.rateLimit",), False, ())),
    ({"gateway__auth__rateLimit": {"maxAttempts": 3}}, "restart", (("gateway.auth.rateLimit",), True, ())),
    # an unclassified key is treated as restart, in every mode that acts
    ({"somethingNew": 1}, "hybrid", ((), True, ())),
    ({"somethingNew": 1}, "hot", ((), False, ("somethingNew",))),
    ({"somethingNew": 1}, "restart", ((), True, ())),
    ({"somethingNew": 1}, "off", ((), False, ("somethingNew",))),
]


@pytest.mark.parametrize(("change", "mode", "expected"), CASES)
def test_plan_modes(change: dict, mode: str, expected: tuple) -> None:
    plan = plan_reload(BASE, with_(**change), mode)
    assert (plan.apply, plan.restart, plan.deferred) == expected


def test_token_rotation_is_hot_only_with_an_unchanged_mode() -> None:
    rotated = plan_reload(BASE, with_(gateway__auth={"mode": "token", "token": "new"}), "hybrid")
    assert rotated.hot_paths == ("gateway.auth.token",) and not rotated.restart
    switched = plan_reload(BASE, with_(gateway__auth={"mode": "password", "password": "p"}), "hybrid")
    assert switched.restart
    assert set(switched.restart_reasons) == {"gateway.auth.mode", "gateway.auth.password", "gateway.auth.token"}


def test_identical_configs_plan_nothing() -> None:
    plan = plan_reload(BASE, BASE, "hybrid")
    assert plan.changes == () and not plan.restart


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown reload mode"):
        plan_reload(BASE, BASE, "sometimes")


def test_every_change_has_a_reason() -> None:
    plan = plan_reload(BASE, with_(gateway__port=1, somethingNew=2, logging__level="x"), "hybrid")
    reasons = {c.path: c.reason for c in plan.changes}
    assert "no reload rule" in reasons["somethingNew"]
    assert "restart" in reasons["gateway.port"]

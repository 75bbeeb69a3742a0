"""An object added or removed as a whole is refined into the paths the reload rules name.

As in the published gateway's config diff (its "refinement prefixes"): found when the Control UI
test added ``gateway.controlUi.allowedOrigins`` to a config without ``gateway.controlUi`` and the
gateway restarted instead of applying the (hot) allowlist.
"""

from __future__ import annotations

from gateway_core.reload import diff_paths, plan_reload

BASE = {"gateway": {"mode": "local", "auth": {"mode": "token", "token": "T"}}}


def test_an_added_object_is_refined_where_rules_name_its_children() -> None:
    new = {"gateway": {**BASE["gateway"], "controlUi": {"allowedOrigins": ["http://ui.test:1"], "enabled": True}}}
    assert diff_paths(BASE, new) == ["gateway.controlUi.allowedOrigins", "gateway.controlUi.enabled"]
    plan = plan_reload(BASE, new)
    assert plan.restart is False and plan.hot_paths == ("gateway.controlUi.allowedOrigins", "gateway.controlUi.enabled")


def test_a_removed_object_is_refined_too() -> None:
    old = {"gateway": {**BASE["gateway"], "controlUi": {"allowedOrigins": ["x"]}}}
    assert diff_paths(old, BASE) == ["gateway.controlUi.allowedOrigins"]


def test_an_added_object_no_rule_looks_inside_stays_one_change() -> None:
    new = {"gateway": {**BASE["gateway"], "auth": {**BASE["gateway"]["auth"], "rateLimit": {"maxAttempts": 20}}}}
    assert diff_paths(BASE, new) == ["gateway.auth.rateLimit"]
    assert plan_reload(BASE, new).hot_paths == ("gateway.auth.rateLimit",)


def test_a_new_restart_key_below_an_added_object_still_restarts() -> None:
    new = {"gateway": {**BASE["gateway"], "controlUi": {"basePath": "/oc"}}}
    assert diff_paths(BASE, new) == ["gateway.controlUi.basePath"]
    assert plan_reload(BASE, new).restart is True

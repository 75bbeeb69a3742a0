"""Params the published clients send are accepted by our closed schemas."""

from __future__ import annotations

import pytest

from gateway_core.params import PARAMS_SCHEMAS
from gateway_core.validation import SchemaError, convert


@pytest.mark.parametrize("leaf", [None, "3f0c2a"])
def test_chat_send_takes_the_control_uis_expected_leaf(leaf: str | None) -> None:
    """The published Control UI sends ``expectedLeafEntryId`` with every chat.send (null on an
    empty transcript); refusing it made its chat page unable to send anything."""
    raw = {"sessionKey": "agent:main:main", "message": "hi", "deliver": False, "expectedLeafEntryId": leaf,
           "idempotencyKey": "k1"}
    params = convert(raw, PARAMS_SCHEMAS["chat.send"])
    assert params.expected_leaf_entry_id == leaf


def test_chat_send_still_refuses_unknown_properties() -> None:
    with pytest.raises(SchemaError) as err:
        convert({"sessionKey": "main", "message": "hi", "idempotencyKey": "k", "bogus": 1}, PARAMS_SCHEMAS["chat.send"])
    assert "bogus" in str(err.value)

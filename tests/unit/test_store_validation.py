"""What BSON can store among JSON values (params, result)."""

from __future__ import annotations

from typing import Any

import pytest

from backend.errors import UnstorableValueError
from backend.storable import MAX_DEPTH, check_storable


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"d": value}
    return value


@pytest.mark.parametrize("value", [
    None, True, 0, -(2**63), 2**63 - 1, 1.5, "text\u0000with nul", [1, "a", None],
    {"a.b": 1, "": 2, "unicode ✓": {"x": [1, {"y": None}]}}, _nested(MAX_DEPTH - 1),
])
def test_storable_values_pass(value: Any) -> None:
    check_storable("params", value)


@pytest.mark.parametrize(("value", "words"), [
    (2**63, "64 bits"), ({"a": [-(2**63) - 1]}, "params.a[0]"), ({"$set": 1}, "$"),
    ({"ok": {"k\u0000": 1}}, "NUL"), (_nested(MAX_DEPTH + 1), "nested"), ({1, 2}, "set"),
])
def test_unstorable_values_name_the_field(value: Any, words: str) -> None:
    with pytest.raises(UnstorableValueError) as caught:
        check_storable("params", value)
    assert caught.value.field == "params" and words in str(caught.value)


def test_very_deep_values_do_not_exhaust_the_stack() -> None:
    with pytest.raises(UnstorableValueError):
        check_storable("result", _nested(100_000))

"""Standard JSON in and out: rejections named by their JSON path, never a non-finite output."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitalloc.strict_json import dumps, join_path, loads, show


def test_duplicate_key_deep_inside_is_located():
    with pytest.raises(ValueError, match=r'^a\[1\]\.b\["x y"\]: duplicate key "x y" in one obj'):
        loads('{"a": [0, {"b": {"x y": 1, "x y": 2}}]}')


def test_first_rejection_in_document_order():
    with pytest.raises(ValueError, match=r"^a\[0\]: NaN is not standard JSON"):
        loads('{"a": [NaN, Infinity], "b": {"c": 1, "c": 2}}')
    with pytest.raises(ValueError, match=r"^\$\[0\]: -Infinity is not standard JSON"):
        loads("[-Infinity]")


@pytest.mark.parametrize("obj, match", [
    ({"objective": math.inf}, r"^objective: inf is not a finite number; standard JSON cannot"),
    ({"usage": {"avg bits": {"value": np.float64("nan")}}},
     r'^usage\["avg bits"\]\.value: nan is not a finite number'),
    ([1.0, (2.0, -math.inf)], r"^\$\[1\]\[1\]: -inf is not a finite number"),
])
def test_dumps_refuses_non_finite(obj, match):
    with pytest.raises(ValueError, match=match):
        dumps(obj)


def test_show_is_short_and_never_raises():
    assert show(10 ** 500) == "an integer with 501 digits"
    assert show(list(range(100))) == "a list of 100 items"
    assert show({str(i): i for i in range(9)}) == "an object with 9 keys"
    assert show(object()) == "<object>"
    assert show("x" * 100) == '"' + "x" * 44 + '... (102 chars)'
    assert join_path("$", 0) == "$[0]" and join_path("a", "b") == "a.b"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_standard_json_round_trips(value):
    assert loads(dumps(value)) == value
    assert loads(dumps(value, indent=None)) == value

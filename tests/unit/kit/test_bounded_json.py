"""Free-form JSON bounds (contracts/bounded_json.py) and the `?q=` search pattern."""
from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from contracts.bounded_json import MAX_BYTES, MAX_COMPOSED_DEPTH, MAX_DEPTH, BoundedJson, ComposedJson, too_deep
from contracts.spec import TrainingConfig
from services.kit.paging import contains_pattern


def nested(levels: int, leaf: object = 1) -> dict:
    """An object `levels` levels deep: {"a": {"a": ... leaf}}."""
    value: object = leaf
    for _ in range(levels):
        value = {"a": value}
    return value  # type: ignore[return-value]


class Body(BaseModel):
    params: BoundedJson = {}
    composed: ComposedJson = {}


def test_depth_counts_the_value_itself_as_level_one():
    assert too_deep({}, 1) is None and too_deep({"a": 1}, 1) is None
    assert too_deep({"a": {}}, 1) == ["a"]
    assert too_deep({"x": [1, {"y": [[]]}]}, 3) == ["x", 1, "y"]
    assert too_deep(nested(100_000), 5) == ["a"] * 5  # iterative: no recursion limit


def test_a_field_holds_max_depth_levels_and_no_more():
    assert Body(params=nested(MAX_DEPTH)).params == nested(MAX_DEPTH)
    for field, limit in (("params", MAX_DEPTH), ("composed", MAX_COMPOSED_DEPTH)):
        with pytest.raises(ValidationError) as caught:
            Body(**{field: nested(limit + 1)})
        [error] = caught.value.errors()
        assert (error["type"], error["loc"]) == ("json_too_deep", (field,))
        assert f"deeper than {limit} levels (at a.a.a" in error["msg"]


def test_what_was_stored_before_the_edge_bounds_still_reads_and_serialises():
    """An App's env_config 40 levels deep, accepted before requests were bounded, still parses from the
    database or the broker and serialises back; only a new request is held to MAX_DEPTH."""
    config = TrainingConfig(env_config=nested(40))
    assert TrainingConfig.model_validate_json(config.model_dump_json()).env_config == nested(40)
    TrainingConfig(env_config=nested(MAX_COMPOSED_DEPTH)).model_dump_json()  # the limit serialises


def test_a_field_holds_max_bytes_and_composed_values_four_times_that():
    big = {"blob": "x" * MAX_BYTES}
    with pytest.raises(ValidationError) as caught:
        Body(params=big)
    [error] = caught.value.errors()
    assert (error["type"], error["loc"]) == ("json_too_large", ("params",))
    assert f"larger than {MAX_BYTES} bytes" in error["msg"]
    assert Body(composed=big).composed == big
    assert Body(params={"blob": "x" * (MAX_BYTES - 20)}).params  # room for the braces and the key


def test_the_spec_training_config_is_bounded_too():
    with pytest.raises(ValidationError, match="env_config"):
        TrainingConfig(env_config=nested(300))


def test_search_pattern_escapes_wildcards_and_the_escape_character():
    assert contains_pattern("50%_off\\") == "%50\\%\\_off\\\\%"
    assert contains_pattern("plain") == "%plain%"

import hashlib
import random

import pytest
from pydantic import ValidationError

from contracts.events import ComponentArtifacts
from services.kit.errors import Forbidden
from services.models.domain import (Alias, AliasTarget, ByteRange, Gate, Model, RangeNotSatisfiable, UndoableMove,
                                    check_may_move_alias, compare, etag_is_md5, evaluate_gate, merge_metrics, metric_value,
                                    model_name_prefix, model_path, multipart_etag, new_model_id, object_key,
                                    parse_range, part_size_for, plan_artifacts, retry_delay)


def artifact(name, component_id="C-1", prefix=None, log=None, **metrics):
    return ComponentArtifacts(task_id="T-1", component_id=component_id, name=name,
                              prefix=prefix or f"s3://avatar-staging/WL-1/{component_id}/", log=log, metrics=metrics)


def test_model_id_has_the_mdl_prefix_and_eight_hex_digits():
    model_id = new_model_id()
    assert model_id.startswith("MDL-") and len(model_id) == 12 and int(model_id[4:], 16) >= 0


def test_model_name_is_the_app_name_slug_with_the_version():
    assert model_name_prefix("RL DesignOpt v1") + "3" == "rl-designopt-v1-v3"
    assert model_name_prefix("///") + "1" == "app-v1"


def test_each_component_gets_its_own_folder_even_with_equal_names():
    planned = plan_artifacts([artifact("rl-agent", "C-1"), artifact("rl-agent", "C-2"), artifact("Env Sim", "C-3")])
    assert [p.folder for p in planned] == ["rl-agent-c-1", "rl-agent-c-2", "env-sim"]
    assert planned[0].bucket == "avatar-staging" and planned[0].prefix == "WL-1/C-1/"


def test_a_prefix_without_trailing_slash_still_names_a_folder():
    planned = plan_artifacts([artifact("a", prefix="s3://staging/WL-1/C-1")])
    assert planned[0].prefix == "WL-1/C-1/"


@pytest.mark.parametrize("bad", ["http://x/y/", "s3:///nobucket", "WL-1/C-1/", "s3://avatar-staging/", "s3://b"])
def test_an_artifact_outside_s3_is_refused(bad):
    with pytest.raises(ValueError):
        plan_artifacts([artifact("a", prefix=bad)])


def test_stored_layout_is_app_version_component_file():
    path = model_path("rl-agent", "WL-1/C-1/weights/policy.npz", "WL-1/C-1/")
    assert path == "rl-agent/weights/policy.npz"
    assert object_key("APP-1", 2, path) == "APP-1/2/rl-agent/weights/policy.npz"


def test_summary_prefers_the_trainer_and_keeps_each_components_metrics():
    merged = merge_metrics({
        "env-simulator": {"episodes": 5, "states": 40},
        "rl-agent": {"episodes": 1000, "final_reward": 9.5, "avg_reward": 7.0, "rewards": [1, 2], "algorithm": "q"},
    })
    assert merged["summary"] == {"episodes": 1000, "final_reward": 9.5, "avg_reward": 7.0, "best_reward": 2,
                                 "states": 40}
    assert merged["components"]["env-simulator"]["episodes"] == 5


def test_summary_derives_final_and_average_reward_from_the_reward_curve():
    summary = merge_metrics({"agent": {"rewards": [1.0, 2.0, 6.0]}})["summary"]
    assert summary == {"final_reward": 6.0, "avg_reward": 3.0, "best_reward": 6.0}


def test_metric_value_reads_the_summary_or_a_components_metric():
    metrics = merge_metrics({"rl-agent": {"final_reward": 4}, "evaluator": {"accuracy": 0.9, "label": "x"}})
    assert metric_value(metrics, "final_reward") == 4.0
    assert metric_value(metrics, "evaluator.accuracy") == 0.9
    assert metric_value(metrics, "evaluator.label") is None
    assert metric_value(metrics, "missing") is None


def test_gate_passes_within_bounds_and_explains_a_refusal():
    metrics = merge_metrics({"rl-agent": {"final_reward": 42.0}})
    assert evaluate_gate("MDL-1", metrics, Gate(metric="final_reward", min=40)).passed
    low = evaluate_gate("MDL-1", metrics, Gate(metric="final_reward", min=50))
    assert not low.passed and low.observed == 42.0 and "below the required minimum 50" in low.message
    high = evaluate_gate("MDL-1", metrics, Gate(metric="final_reward", max=10))
    assert not high.passed and "above the allowed maximum 10" in high.message
    missing = evaluate_gate("MDL-1", metrics, Gate(metric="accuracy", min=0.9))
    assert not missing.passed and "does not report metric 'accuracy'" in missing.message


def test_a_gate_needs_a_bound_in_order():
    with pytest.raises(ValidationError):
        Gate(metric="final_reward")
    with pytest.raises(ValidationError):
        Gate(metric="final_reward", min=2, max=1)


def test_compare_lines_up_every_summary_metric():
    a = {"model_id": "MDL-a", "metrics": merge_metrics({"agent": {"final_reward": 1.0, "loss": 0.5}})}
    b = {"model_id": "MDL-b", "metrics": merge_metrics({"agent": {"final_reward": 3.0}})}
    assert compare([a, b]) == {"final_reward": {"MDL-a": 1.0, "MDL-b": 3.0}, "loss": {"MDL-a": 0.5, "MDL-b": None}}


def test_multipart_etag_matches_the_s3_rule():
    one = hashlib.md5(b"abc").digest()
    assert multipart_etag([one]) == one.hex()
    two = [hashlib.md5(b"a").digest(), hashlib.md5(b"b").digest()]
    assert multipart_etag(two) == hashlib.md5(two[0] + two[1]).hexdigest() + "-2"
    assert etag_is_md5(multipart_etag(two)) and etag_is_md5(one.hex())
    assert not etag_is_md5("not-an-md5")


def test_part_size_grows_only_when_a_file_would_need_more_than_ten_thousand_parts():
    mib = 1024 * 1024
    assert part_size_for(1024 * mib, 8 * mib) == 8 * mib
    assert part_size_for(200 * 1024 * mib, 8 * mib) == 21 * mib
    assert -(-200 * 1024 * mib // part_size_for(200 * 1024 * mib, 8 * mib)) <= 10_000


def test_retry_delay_grows_exponentially_up_to_the_cap():
    rng = random.Random(1)
    delays = [retry_delay(n, 1.0, 30.0, jitter=0, rng=rng) for n in range(1, 8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert 0.9 <= retry_delay(1, 1.0, 30.0, rng=rng) <= 1.1


@pytest.mark.parametrize("header,expected", [
    (None, None), ("bytes=0-99", ByteRange(0, 99)), ("bytes=100-", ByteRange(100, 999)),
    ("bytes=-10", ByteRange(990, 999)), ("bytes=990-5000", ByteRange(990, 999)), ("bytes=-5000", ByteRange(0, 999)),
    ("bytes=0-1,5-6", None),
])
def test_parse_range(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-0", "items=0-1", "bytes=abc", "bytes=-"])
def test_unsatisfiable_or_malformed_ranges_are_refused(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000)


def test_content_range_names_the_bytes_and_the_size():
    assert ByteRange(10, 19).content_range(100) == "bytes 10-19/100" and ByteRange(10, 19).length == 10


# ---------------------------------------------------------------- the Model and Alias aggregates

def test_a_model_once_stored_neither_stores_again_nor_fails():
    model = Model("MDL-1", "WL-1", "APP-1", 1, [])
    model.mark_stored()
    for change in (model.mark_stored, lambda: model.attempt_failed("late", 1.0)):
        with pytest.raises(ValueError, match="is stored, not pending"):
            change()
    assert [event.type for event in model.events] == ["model.stored"]


def test_an_alias_moves_once_per_unit_of_work_because_its_number_is_reserved_when_it_is_loaded():
    alias = Alias(app_id="APP-1", name="production", model_id=None, next_sequence=7)
    alias.move_to(AliasTarget("MDL-1", "APP-1", 1, "stored", {}), by="kim")
    with pytest.raises(ValueError, match="moves once per unit of work"):
        alias.move_to(AliasTarget("MDL-2", "APP-1", 2, "stored", {}), by="kim")
    assert [event.data.sequence for event in alias.events] == [7]


def test_an_alias_rolls_back_only_to_the_model_its_newest_move_came_from():
    alias = Alias(app_id="APP-1", name="production", model_id="MDL-2", next_sequence=9,
                  last_move=UndoableMove(8, "MDL-1"))
    with pytest.raises(ValueError, match="rolls back to MDL-1, not MDL-3"):
        alias.roll_back(AliasTarget("MDL-3", "APP-1", 3, "stored", {}), by="kim")
    alias.roll_back(AliasTarget("MDL-1", "APP-1", 1, "stored", {}), by="kim")
    [move] = alias.moves
    assert (move.action, move.from_model_id, move.to_model_id, move.undoes) == ("rollback", "MDL-2", "MDL-1", 8)


# ---------------------------------------------------------------- who may move an App's aliases

def test_the_apps_owner_and_an_admin_may_move_its_aliases():
    check_may_move_alias("APP-1", "kim", "kim", "researcher")
    check_may_move_alias("APP-1", "kim", "root", "admin")


@pytest.mark.parametrize("user, role", [("lee", "researcher"), ("lee", None), ("kim-2", "researcher"),
                                        ("KIM", "researcher")])
def test_anyone_else_is_refused_by_a_message_naming_the_owner(user, role):
    with pytest.raises(Forbidden) as refused:
        check_may_move_alias("APP-1", "kim", user, role)
    assert refused.value.message == "app APP-1 belongs to 'kim'; only its owner or an admin may change it"


@pytest.mark.parametrize("user", ["kim", "None", ""])
def test_an_app_without_a_known_owner_is_moved_by_an_admin_only(user):
    with pytest.raises(Forbidden, match=r"app APP-1 belongs to the platform \(no owner\); only an admin"):
        check_may_move_alias("APP-1", None, user, "researcher")
    check_may_move_alias("APP-1", None, "root", "admin")

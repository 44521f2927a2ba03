import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.resources import parse_duration, parse_memory
from contracts.spec import AppSpec
from contracts.workload import LoopTest, Workload, WireTrainingConfig

EXAMPLE = Path(__file__).parent / "seed001_example.json"  # the spec's example, verbatim (docs/spec.md §2.2)


def seed_example() -> dict:
    return json.loads(EXAMPLE.read_text())


def test_seed_example_round_trips_to_the_same_json():
    example = seed_example()
    assert AppSpec.model_validate(example).to_wire() == example


def test_unknown_spec_field_is_refused_with_its_name():
    example = seed_example()
    example["tasks"][0]["components"][0]["gpus"] = 3
    with pytest.raises(ValidationError) as err:
        AppSpec.model_validate(example)
    assert "gpus" in str(err.value) and "Extra inputs are not permitted" in str(err.value)


@pytest.mark.parametrize("text,expected", [("64GB", 64 * 10**9), ("128GB", 128 * 10**9), ("512Mi", 512 * 2**20),
                                           ("1.5TB", 15 * 10**11), ("16 GiB", 16 * 2**30)])
def test_memory_values_parse(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["64", "-1GB", "GB", "64XB", "", "1e9GB"])
def test_invalid_memory_values_are_refused(text):
    with pytest.raises(ValueError, match="memory"):
        parse_memory(text)


def test_negative_gpu_count_is_refused():
    example = seed_example()
    example["tasks"][0]["components"][0]["resources"]["gpu_count"] = -1
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        AppSpec.model_validate(example)


def test_invalid_memory_in_spec_names_the_value():
    example = seed_example()
    example["tasks"][0]["components"][0]["resources"]["memory"] = "lots"
    with pytest.raises(ValidationError, match="invalid memory value 'lots'"):
        AppSpec.model_validate(example)


def test_durations():
    assert parse_duration("2h") == 7200
    assert parse_duration("90s") == 90
    with pytest.raises(ValueError):
        parse_duration("forever")


def test_workload_is_camel_case_on_the_wire():
    spec = AppSpec.model_validate(seed_example())
    workload = Workload(workload_id="WL-1", app_id=spec.app_id, spec_version=spec.version, requester="kim",
                        submitted_at="2026-02-09T09:00:00Z",
                        resources={"gpu_type": "A100", "gpu_count": 4, "memory": "128GB", "max_runtime": "2h"},
                        training_config=WireTrainingConfig.from_spec(spec.training_config), spec=spec)
    wire = workload.to_wire()
    assert wire["isTrainingRequest"] is True
    assert set(wire["trainingConfig"]) == {"episodes", "learningRate", "batchSize", "gamma", "maxStepsPerEpisode",
                                           "envConfig", "rewardParams"}
    assert wire["trainingConfig"]["envConfig"] == {"simulation_seed": 42, "max_temp": 850, "min_pressure": 10}
    assert Workload.model_validate(wire) == workload


def test_loop_test_has_the_seed_shape():
    assert LoopTest().model_dump(by_alias=True) == {
        "status": "pending", "episodes": None, "results": None, "executedBy": None, "executedAt": None}

import pytest

from contracts.events import ComponentSnapshot
from contracts.spec import AppSpec
from services.kit.errors import Conflict
from services.library import domain
from tests.unit.contracts.test_spec import seed_example


def snapshot(**overrides) -> ComponentSnapshot:
    fields = dict(component_id="CL-REF-001", name="env-simulator",
                  image={"registry": "registry.avatar.io/env-sim", "tag": "1.0"}, description="sim",
                  version="1.0.0", type="other", resources={"gpu_type": "A100", "gpu_count": 2, "memory": "64GB"})
    fields.update(overrides)
    return ComponentSnapshot(**fields)


def test_component_ids_are_cl_ref_numbers():
    assert [domain.component_id(n) for n in (1, 42, 1000)] == ["CL-REF-001", "CL-REF-042", "CL-REF-1000"]


@pytest.mark.parametrize("before,after", [("1.0.0", "1.0.1"), ("1.9", "1.10"), ("3", "4"), ("1.0.0-rc1", "1.0.1")])
def test_bump_moves_the_last_number(before, after):
    assert domain.bump(before) == after


def test_an_update_that_changes_nothing_writes_no_version():
    assert domain.revise(snapshot(), {"name": "env-simulator", "version": "1.0.0"}, {"1.0.0"}) is None


def test_an_update_without_a_version_takes_the_next_free_one_and_names_the_changes():
    revision = domain.revise(snapshot(), {"image": {"registry": "registry.avatar.io/env-sim", "tag": "1.1"},
                                          "description": "new"}, {"1.0.0", "1.0.1"})
    assert revision.component.version == "1.0.2"
    assert revision.changed == ["image", "description"]
    assert revision.component.image.tag == "1.1"


def test_an_update_may_name_its_version():
    revision = domain.revise(snapshot(), {"version": "2.0.0", "params": {"lr": 0.1}}, {"1.0.0"})
    assert (revision.component.version, revision.changed) == ("2.0.0", ["params"])


def test_a_version_is_never_reused():
    with pytest.raises(Conflict, match="already had version 1.0.0"):
        domain.revise(snapshot(version="1.0.1"), {"version": "1.0.0"}, {"1.0.0", "1.0.1"})


def test_usages_list_each_component_in_each_task():
    usages = domain.usages(AppSpec.model_validate(seed_example()))
    assert [(u.component_id, u.task_id) for u in usages] == [
        ("CL-REF-001", "TASK-001"), ("CL-REF-002", "TASK-001"), ("CL-REF-003", "TASK-001"),
        ("CL-REF-004", "TASK-001"), ("CL-REF-010", "TASK-002")]
    assert usages[-1].task_name == "data-preprocessing"

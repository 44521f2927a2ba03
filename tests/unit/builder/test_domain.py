from datetime import datetime, timezone

import pytest

from contracts.events import ComponentSnapshot
from contracts.resources import Resources
from contracts.spec import ImageRef, ImportedApp, Storage, TrainingConfig
from services.builder import domain
from services.builder.domain import App, AppInfo, PlacedComponent, Task, Threshold
from services.kit.errors import Conflict, Invalid, NotFound
from tests.unit.contracts.test_spec import seed_example


def component(cid: str, gpus: int = 1, memory: str = "16GB", kind: str = "trainer") -> PlacedComponent:
    return PlacedComponent(component_id=cid, name=cid.lower(), type=kind,
                           image=ImageRef(registry=f"registry.avatar.io/{cid.lower()}", tag="1.0"),
                           resources=Resources(gpu_type="A100", gpu_count=gpus, memory=memory))


def task_with(*ids: str, edges=()) -> Task:
    task = Task(task_id="TASK-001", name="t")
    for cid in ids:
        task.place(component(cid))
    for source, target in edges:
        task.connect(source, target)
    return task


def app_from_seed() -> App:
    """The docs/spec.md §2.2 example, built the way the Builder builds it: place, then connect."""
    example = seed_example()
    tasks = []
    for raw in example["tasks"]:
        task = Task(task_id=raw["task_id"], name=raw["name"], imported_from=raw["imported_from"])
        for c in raw["components"]:
            task.place(PlacedComponent(component_id=c["component_id"], name=c["name"], type="other",
                                       image=ImageRef(**c["image"]), resources=Resources(**c["resources"]),
                                       params=c["params"]))
        for edge in raw["workflow"]:
            task.connect(edge["from"], edge["to"])
        tasks.append(task)
    info = AppInfo(app_id=example["app_id"], name=example["name"], version=example["version"],
                   env_vars=example["env_vars"], training_config=TrainingConfig(**example["training_config"]),
                   storage=Storage(**example["storage"]))
    return App(info=info, tasks=tasks, imported_apps=[ImportedApp(**i) for i in example["imported_apps"]])


@pytest.mark.parametrize("gpus,memory,exceeds", [
    (3, "127GB", False), (4, "16GB", True), (1, "128GB", True), (0, "1TB", True), (3, "119GiB", False),
    (3, "120GiB", True),  # 120 GiB is 128.8 GB: the threshold is in decimal GB like the spec's "128GB"
])
def test_threshold_is_gpu_4_or_memory_128gb(gpus, memory, exceeds):
    assert Threshold().exceeded_by(Resources(gpu_type="A100", gpu_count=gpus, memory=memory)) is exceeds


def test_app_ids_are_app_and_six_upper_case_hex_digits():
    ids = {domain.new_app_id() for _ in range(50)}
    assert all(len(i) == 10 and i.startswith("APP-") and i[4:] == i[4:].upper() and int(i[4:], 16) >= 0
               for i in ids)
    assert len(ids) > 45


def test_task_ids_are_numbered_per_app():
    assert [domain.task_id(n) for n in (1, 12, 999, 1000)] == ["TASK-001", "TASK-012", "TASK-999", "TASK-1000"]


def test_removing_a_component_drops_every_edge_touching_it_and_closes_the_order():
    task = task_with("A", "B", "C", "D", edges=[("A", "B"), ("B", "C"), ("A", "C"), ("C", "D")])
    task.remove("B")
    assert task.order == ["A", "C", "D"]
    assert task.workflow == [("A", "C"), ("C", "D")]


def test_removing_an_unknown_component_is_not_found():
    with pytest.raises(NotFound, match="component X is not placed in task TASK-001"):
        task_with("A").remove("X")


def test_placing_the_same_library_component_twice_in_a_task_is_refused():
    task = task_with("A")
    with pytest.raises(Conflict):
        task.place(component("A"))


def test_an_edge_needs_both_components_in_the_task():
    with pytest.raises(NotFound, match="component Z"):
        task_with("A").connect("A", "Z")


def test_an_edge_against_the_order_moves_the_order_to_follow_it():
    task = task_with("A", "B", "C")
    assert task.connect("C", "A") is True
    assert task.order == ["B", "C", "A"]
    assert task.connect("B", "C") is False


def test_an_order_against_an_edge_is_refused_naming_the_edge():
    task = task_with("A", "B", edges=[("A", "B")])
    with pytest.raises(Invalid) as caught:
        task.reorder(["B", "A"])
    assert caught.value.code == "order_conflicts_workflow"
    assert "A → B" in caught.value.message
    assert task.order == ["A", "B"]


def test_an_order_must_list_every_component_once():
    task = task_with("A", "B", "C")
    with pytest.raises(Invalid, match="missing: C; not in the task: X"):
        task.reorder(["A", "B", "X"])
    with pytest.raises(Invalid, match="repeated: A"):
        task.reorder(["A", "A", "B", "C"])


def test_reorder_follows_the_given_order():
    task = task_with("A", "B", "C", edges=[("A", "C")])
    task.reorder(["B", "A", "C"])
    assert task.order == ["B", "A", "C"]


def test_the_seed_app_becomes_exactly_the_seed_spec_file():
    example = seed_example()
    created_at = datetime(2026, 2, 9, 9, 0, tzinfo=timezone.utc)
    assert app_from_seed().to_spec("1.0.0", created_at).to_wire() == example


def test_an_app_without_tasks_cannot_become_a_spec():
    app = App(info=AppInfo(app_id="APP-000001", name="x", version="1.0.0"))
    with pytest.raises(Invalid) as caught:
        app.to_spec("1.0.0", datetime.now(timezone.utc))
    assert caught.value.code == "app_not_ready"
    assert caught.value.extra["problems"] == ["app APP-000001 has no tasks"]


def test_every_empty_task_is_named_when_a_spec_is_refused():
    app = app_from_seed()
    app.tasks.append(Task(task_id="TASK-003", name="later"))
    with pytest.raises(Invalid) as caught:
        app.to_spec("1.0.0", datetime.now(timezone.utc))
    assert caught.value.extra["problems"] == ["task TASK-003 (later) has no components"]


def test_a_used_spec_version_moves_to_the_next_free_patch():
    assert domain.next_spec_version("1.0.0", set()) == "1.0.0"
    assert domain.next_spec_version("1.0.0", {"1.0.0", "1.0.1"}) == "1.0.2"
    assert domain.next_spec_version("2.0.0", {"1.0.0"}) == "2.0.0"


def test_an_imported_task_is_a_copy_that_remembers_its_source():
    source = task_with("A", "B", edges=[("A", "B")])
    copy = source.copy_as("TASK-007", "APP-ABCDEF")
    copy.component("A").params["lr"] = 0.5
    copy.remove("B")
    assert (copy.task_id, copy.imported_from, copy.order) == ("TASK-007", "APP-ABCDEF", ["A"])
    assert source.order == ["A", "B"] and source.workflow == [("A", "B")] and source.component("A").params == {}


def _app(app_id: str, *tasks: Task, imported=()) -> App:
    return App(info=AppInfo(app_id=app_id, name=app_id, version="1.0.0", task_count=len(tasks)),
               tasks=list(tasks), imported_apps=list(imported))


def test_an_app_cannot_import_itself():
    app = _app("APP-AAAAAA", task_with("A"))
    with pytest.raises(Invalid, match="cannot import itself"):
        domain.check_import(app, app)


def test_an_app_cannot_import_the_same_app_twice():
    target = _app("APP-AAAAAA", imported=[ImportedApp(app_ref="APP-BBBBBB", name="b")])
    with pytest.raises(Conflict, match="already imported"):
        domain.check_import(target, _app("APP-BBBBBB", task_with("A")))


def test_importing_an_app_without_tasks_is_refused():
    with pytest.raises(Invalid, match="no tasks to import"):
        domain.check_import(_app("APP-AAAAAA"), _app("APP-BBBBBB"))


def test_an_import_may_not_push_an_app_past_200_tasks():
    target = _app("APP-AAAAAA")
    target.info.task_count = 200
    with pytest.raises(Invalid, match="more than 200 tasks"):
        domain.check_import(target, _app("APP-BBBBBB", task_with("A")))


def test_spec_summary_counts_and_names_the_largest_component():
    spec = app_from_seed().to_spec("1.0.0", datetime.now(timezone.utc))
    summary = domain.summarize(spec, Threshold())
    assert (summary.task_count, summary.component_count, summary.needs_approval) == (2, 5, True)
    assert summary.largest_component == {"component_id": "CL-REF-002", "name": "rl-agent",
                                         "resources": {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB"}}


def test_default_storage_is_a_path_named_after_the_app():
    assert domain.default_storage("RL DesignOpt v1!") == Storage(type="distributed", path="/training-data/rl-designopt-v1")


def test_a_placed_component_takes_the_library_defaults_unless_given_and_merges_params():
    found = ComponentSnapshot(component_id="CL-REF-002", name="rl-agent", version="2.0", type="trainer",
                              image=ImageRef(registry="registry.avatar.io/rl-agent", tag="2.0"),
                              resources=Resources(gpu_type="A100", gpu_count=4, memory="128GB"),
                              params={"lr": 0.001, "episodes": 1000})
    default = PlacedComponent.from_library(found)
    assert (default.name, default.type, default.image, default.library_version) == (
        "rl-agent", "trainer", found.image, "2.0")
    assert default.params == {"lr": 0.001, "episodes": 1000} and default.params is not found.params
    custom = PlacedComponent.from_library(found, name="agent", params={"lr": 0.01},
                                          resources=Resources(gpu_type="V100", gpu_count=1, memory="16GB"))
    assert (custom.name, custom.params, custom.resources.gpu_type) == ("agent", {"lr": 0.01, "episodes": 1000}, "V100")

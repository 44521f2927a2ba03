import xml.etree.ElementTree as ET

from contracts.resources import Resources
from contracts.spec import ImageRef
from services.builder import diagram
from services.builder.domain import PlacedComponent, Task

SVG = "{http://www.w3.org/2000/svg}"


def placed(cid: str, kind: str, name: str | None = None) -> PlacedComponent:
    return PlacedComponent(component_id=cid, name=name or cid, type=kind,
                           image=ImageRef(registry="r/x", tag="1"),
                           resources=Resources(gpu_type="A100", gpu_count=2, memory="64GB"))


def pipeline() -> Task:
    task = Task(task_id="TASK-001", name="llm-finetune")
    for cid, kind in [("C-1", "data_loader"), ("C-2", "preprocessor"), ("C-3", "trainer"), ("C-4", "evaluator")]:
        task.place(placed(cid, kind))
    for source, target in [("C-1", "C-2"), ("C-2", "C-3"), ("C-3", "C-4"), ("C-1", "C-3")]:
        task.connect(source, target)
    return task


def nodes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-component-id"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}


def test_svg_parses_as_xml_and_has_one_arrow_per_edge():
    root = ET.fromstring(diagram.render(pipeline()))
    assert root.tag == f"{SVG}svg"
    arrows = [p for p in root.iter(f"{SVG}path") if p.get("marker-end") == "url(#arrow)"]
    assert len(arrows) == 4
    assert {(a.get("data-from"), a.get("data-to")) for a in arrows} == {
        ("C-1", "C-2"), ("C-2", "C-3"), ("C-3", "C-4"), ("C-1", "C-3")}
    assert root.find(f".//{SVG}marker[@id='arrow']") is not None


def test_nodes_are_coloured_by_component_type():
    fills = {cid: g.find(f"{SVG}rect").get("fill") for cid, g in nodes(ET.fromstring(diagram.render(pipeline()))).items()}
    assert fills == {"C-1": diagram.COLOURS["data_loader"], "C-2": diagram.COLOURS["preprocessor"],
                     "C-3": diagram.COLOURS["trainer"], "C-4": diagram.COLOURS["evaluator"]}
    assert diagram.COLOURS["trainer"] == "#3B82F6"  # blue
    assert diagram.COLOURS["data_loader"] == "#22C55E"  # green
    assert diagram.COLOURS["preprocessor"] == "#EAB308"  # yellow
    assert diagram.COLOURS["evaluator"] == "#A855F7"  # purple


def test_each_node_shows_name_type_and_resources():
    texts = [t.text for t in nodes(ET.fromstring(diagram.render(pipeline())))["C-3"].iter(f"{SVG}text")]
    assert texts == ["C-3", "trainer", "A100 × 2 · 64GB"]


def test_every_edge_points_left_to_right():
    root = ET.fromstring(diagram.render(pipeline()))
    x = {cid: int(g.find(f"{SVG}rect").get("x")) for cid, g in nodes(root).items()}
    assert x["C-1"] < x["C-2"] < x["C-3"] < x["C-4"]
    for path in root.iter(f"{SVG}path"):
        if path.get("class") == "edge":
            assert x[path.get("data-from")] < x[path.get("data-to")]


def test_independent_components_share_a_column():
    task = Task(task_id="TASK-001", name="t", components=[placed("A", "trainer"), placed("B", "evaluator")])
    rects = [g.find(f"{SVG}rect") for g in nodes(ET.fromstring(diagram.render(task))).values()]
    assert rects[0].get("x") == rects[1].get("x") and rects[0].get("y") != rects[1].get("y")


def test_the_same_task_renders_the_same_bytes():
    assert diagram.render(pipeline()) == diagram.render(pipeline())


def test_names_are_escaped_and_long_names_clipped():
    task = Task(task_id="TASK-001", name="<b>&", components=[placed("A", "other", name='x<y>&"z' + "n" * 40)])
    root = ET.fromstring(diagram.render(task))
    label = nodes(root)["A"].find(f"{SVG}text").text
    assert label.startswith('x<y>&"z') and label.endswith("…") and len(label) == diagram.MAX_LABEL


def test_an_empty_task_still_renders():
    root = ET.fromstring(diagram.render(Task(task_id="TASK-002", name="empty")))
    assert nodes(root) == {}
    assert not [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]


def test_a_200_component_chain_renders():
    task = Task(task_id="TASK-001", name="long")
    for i in range(200):
        task.place(placed(f"C{i:03d}", "trainer"))
    for i in range(199):
        task.connect(f"C{i:03d}", f"C{i + 1:03d}")
    root = ET.fromstring(diagram.render(task))
    assert len([p for p in root.iter(f"{SVG}path") if p.get("marker-end")]) == 199

import random
import time

import pytest

from services.builder import workflow
from services.builder.workflow import CYCLE, DUPLICATE, SELF_LOOP, WorkflowRejected


def refusal(edges, source, target) -> tuple[str, str]:
    with pytest.raises(WorkflowRejected) as caught:
        workflow.check_new_edge(edges, source, target)
    return caught.value.code, caught.value.message


def test_self_loop_is_refused_with_the_seed_message():
    assert refusal([], "A", "A") == ("self_loop", "자기 자신으로의 연결은 허용되지 않습니다")


def test_duplicate_edge_is_refused_with_the_seed_message():
    assert refusal([("A", "B")], "A", "B") == ("duplicate", "이미 존재하는 연결입니다")


def test_edge_closing_a_cycle_is_refused_with_the_seed_message():
    assert refusal([("A", "B"), ("B", "C")], "C", "A") == (
        "cycle", "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다")


def test_messages_are_the_exact_seed_texts():
    assert (SELF_LOOP, DUPLICATE, CYCLE) == (
        "자기 자신으로의 연결은 허용되지 않습니다", "이미 존재하는 연결입니다",
        "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다")


def test_reverse_edge_of_an_existing_one_is_a_cycle_not_a_duplicate():
    assert refusal([("A", "B")], "B", "A")[0] == "cycle"


def test_edges_that_keep_the_graph_acyclic_are_accepted():
    edges = [("A", "B"), ("B", "C")]
    workflow.check_new_edge(edges, "A", "C")  # a shortcut is not a cycle
    workflow.check_new_edge(edges, "D", "A")


def test_cycle_detection_on_a_200_node_chain():
    nodes = [f"C{i:03d}" for i in range(200)]
    chain = list(zip(nodes, nodes[1:]))
    started = time.perf_counter()
    assert refusal(chain, nodes[-1], nodes[0])[0] == "cycle"
    assert refusal(chain, nodes[150], nodes[20])[0] == "cycle"
    workflow.check_new_edge(chain, nodes[0], nodes[-1])
    assert time.perf_counter() - started < 0.5


def _closure_by_dynamic_programming(nodes, edges):
    """Reachability computed independently of the DFS: sets merged in reverse topological order."""
    succ = {n: [] for n in nodes}
    for s, t in edges:
        succ[s].append(t)
    reach = {}
    for node in reversed(nodes):  # nodes are already in a topological order (edges go low → high)
        reach[node] = set(succ[node]).union(*(reach[t] for t in succ[node]))
    return reach


def test_cycle_detection_agrees_with_reachability_on_a_random_200_node_dag():
    rng = random.Random(7)
    nodes = [f"N{i:03d}" for i in range(200)]
    edges = sorted({(nodes[i], nodes[j]) for i, j in
                    ((rng.randrange(200), rng.randrange(200)) for _ in range(600)) if i < j})
    reach = _closure_by_dynamic_programming(nodes, edges)
    for _ in range(400):
        a, b = rng.sample(nodes, 2)
        closes_cycle = a in reach[b]
        if (a, b) in edges:
            assert refusal(edges, a, b)[0] == "duplicate"
        elif closes_cycle:
            assert refusal(edges, a, b)[0] == "cycle"
        else:
            workflow.check_new_edge(edges, a, b)


def test_a_valid_order_comes_back_unchanged():
    order = ["A", "B", "C", "D"]
    assert workflow.topological_order(order, [("A", "C"), ("B", "D")]) == order


def test_topological_order_moves_only_what_the_edges_force():
    assert workflow.topological_order(["A", "B", "C", "D"], [("D", "B")]) == ["A", "C", "D", "B"]


def test_topological_order_refuses_a_cycle():
    with pytest.raises(WorkflowRejected):
        workflow.topological_order(["A", "B"], [("A", "B"), ("B", "A")])


def test_first_conflict_names_the_edge_the_order_breaks():
    assert workflow.first_conflict(["B", "A"], [("A", "B")]) == ("A", "B")
    assert workflow.first_conflict(["A", "B"], [("A", "B")]) is None


def test_layers_put_each_component_right_of_its_furthest_predecessor():
    order = ["load", "prep", "train", "eval", "side"]
    edges = [("load", "prep"), ("prep", "train"), ("load", "train"), ("train", "eval")]
    assert workflow.layers(order, edges) == [["load", "side"], ["prep"], ["train"], ["eval"]]


def test_layers_of_nothing_is_empty():
    assert workflow.layers([], []) == []

"""A Task's workflow: a DAG over its placed components (BL-07, BL-09, docs/spec.md §13.2).

Nodes are component ids; `order` is the Task's execution order (a list of those ids).
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Iterable, Sequence

from services.kit.errors import Invalid

Edge = tuple[str, str]

# docs/spec.md §13.2: the exact messages the Builder shows.
SELF_LOOP = "자기 자신으로의 연결은 허용되지 않습니다"
DUPLICATE = "이미 존재하는 연결입니다"
CYCLE = "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다"


class WorkflowRejected(Invalid):
    pass


def successors(edges: Iterable[Edge]) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        graph[source].append(target)
    return graph


def reaches(edges: Iterable[Edge], start: str, goal: str) -> bool:
    """Depth-first search from `start`; iterative, so a long chain cannot exhaust the stack."""
    graph = successors(edges)
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def check_new_edge(edges: Sequence[Edge], source: str, target: str) -> None:
    """Refuse a self-loop, a duplicate, or an edge closing a cycle (target already reaches source)."""
    if source == target:
        raise WorkflowRejected(SELF_LOOP, code="self_loop")
    if (source, target) in set(edges):
        raise WorkflowRejected(DUPLICATE, code="duplicate")
    if reaches(edges, target, source):
        raise WorkflowRejected(CYCLE, code="cycle")


def first_conflict(order: Sequence[str], edges: Iterable[Edge]) -> Edge | None:
    """The first edge whose target is ordered before its source, if any."""
    position = {node: index for index, node in enumerate(order)}
    for source, target in edges:
        if position[source] > position[target]:
            return source, target
    return None


def topological_order(order: Sequence[str], edges: Iterable[Edge]) -> list[str]:
    """Kahn's algorithm preferring the current order, so a valid order comes back unchanged
    and an invalid one moves as few components as the edges force."""
    position = {node: index for index, node in enumerate(order)}
    graph = successors(edges)
    indegree = {node: 0 for node in order}
    for targets in graph.values():
        for target in targets:
            indegree[target] += 1
    ready = [(position[node], node) for node in order if indegree[node] == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        result.append(node)
        for target in graph.get(node, ()):
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, (position[target], target))
    if len(result) != len(order):
        raise WorkflowRejected(CYCLE, code="cycle")
    return result


def layers(order: Sequence[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Longest-path layering: a node sits one column right of its furthest predecessor."""
    edges = list(edges)
    predecessors: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        predecessors[target].append(source)
    depth: dict[str, int] = {}
    for node in topological_order(order, edges):
        depth[node] = max((depth[p] + 1 for p in predecessors[node]), default=0)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in order:  # within a column, keep the execution order
        columns[depth[node]].append(node)
    return columns

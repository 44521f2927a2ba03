"""BL-08: a Task's workflow as SVG, drawn by hand (docs/spec.md §13.1: no drawing library).

Columns are the workflow's topological layers, left to right; a column lists its components in
execution order. Every coordinate is an integer, so the same Task always renders the same bytes.
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from services.builder import workflow
from services.builder.domain import PlacedComponent, Task

# docs/spec.md §13.1: trainer blue, data_loader green, preprocessor yellow, evaluator purple.
COLOURS = {"trainer": "#3B82F6", "data_loader": "#22C55E", "preprocessor": "#EAB308",
           "evaluator": "#A855F7", "other": "#9CA3AF"}
DARK_TEXT = {"preprocessor", "other"}  # light fills need dark text to stay readable

NODE_W, NODE_H = 200, 76
GAP_X, GAP_Y = 90, 28
MARGIN, TITLE_H, LEGEND_H = 24, 34, 30
MAX_LABEL = 26


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def resource_summary(component: PlacedComponent) -> str:
    r = component.resources
    return f"{r.gpu_type} × {r.gpu_count} · {r.memory}"


def _node(component: PlacedComponent, x: int, y: int) -> list[str]:
    kind = component.type if component.type in COLOURS else "other"
    ink = "#111827" if kind in DARK_TEXT else "#FFFFFF"
    cx = x + NODE_W // 2
    return [
        f'<g class="node" data-component-id={quoteattr(component.component_id)} data-type="{kind}">',
        f"<title>{escape(component.name)} ({escape(component.component_id)})</title>",
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="10" fill="{COLOURS[kind]}" '
        f'stroke="#1F2937" stroke-width="1"/>',
        f'<text x="{cx}" y="{y + 24}" fill="{ink}" font-weight="bold" font-size="14">{escape(_clip(component.name))}</text>',
        f'<text x="{cx}" y="{y + 44}" fill="{ink}" font-size="12">{kind}</text>',
        f'<text x="{cx}" y="{y + 63}" fill="{ink}" font-size="12">{escape(_clip(resource_summary(component)))}</text>',
        "</g>",
    ]


def render(task: Task) -> str:
    columns = workflow.layers(task.order, task.workflow)
    rows = max((len(column) for column in columns), default=1)
    width = max(2 * MARGIN + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X, 520)
    height = 2 * MARGIN + TITLE_H + rows * NODE_H + (rows - 1) * GAP_Y + LEGEND_H
    place = {}
    for col, column in enumerate(columns):
        for row, component_id in enumerate(column):
            place[component_id] = (MARGIN + col * (NODE_W + GAP_X), MARGIN + TITLE_H + row * (NODE_H + GAP_Y))

    title = f"{task.task_id} · {task.name}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" role="img" aria-label={quoteattr(title)}>',
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#374151"/></marker>',
        "</defs>",
        f'<rect width="{width}" height="{height}" fill="#FFFFFF"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="16" font-weight="bold" fill="#111827">{escape(title)}</text>',
    ]
    if not task.components:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + TITLE_H + 20}" font-size="13" fill="#6B7280">'
                   "no components yet</text>")
    out.append('<g class="edges" fill="none" stroke="#374151" stroke-width="1.5">')
    for source, target in task.workflow:
        (sx, sy), (tx, ty) = place[source], place[target]
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H // 2, tx, ty + NODE_H // 2
        bend = (x2 - x1) // 2
        out.append(f'<path class="edge" data-from={quoteattr(source)} data-to={quoteattr(target)} '
                   f'd="M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}" marker-end="url(#arrow)"/>')
    out.append("</g>")
    out.append('<g class="nodes" text-anchor="middle">')
    for component in task.components:
        out.extend(_node(component, *place[component.component_id]))
    out.append("</g>")
    out.extend(_legend(height - MARGIN - 10))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(y: int) -> list[str]:
    out = ['<g class="legend" font-size="11" fill="#374151">']
    for index, (kind, colour) in enumerate(COLOURS.items()):
        x = MARGIN + index * 100
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" rx="2" fill="{colour}"/>')
        out.append(f'<text x="{x + 17}" y="{y}">{kind}</text>')
    out.append("</g>")
    return out

// What an audit record changed, in one line: only the fields whose value differs between before and after
// ("role: researcher → viewer"), the whole state for a creation or a removal (cut short), then the comment.
const MAX = 240;

function show(value: unknown): string {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function cut(text: string): string {
  return text.length <= MAX ? text : `${text.slice(0, MAX - 1)}…`;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  !!value && typeof value === "object" && !Array.isArray(value);

export function changesOf(before: unknown, after: unknown, comment?: string | null): string {
  const parts: string[] = [];
  if (isObject(before) && isObject(after)) {
    for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])]) {
      if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) parts.push(`${key}: ${show(before[key])} → ${show(after[key])}`);
    }
  } else if (before != null && after != null) {
    parts.push(`${show(before)} → ${show(after)}`);
  } else if (after != null) {
    parts.push(`+ ${show(after)}`);
  } else if (before != null) {
    parts.push(`− ${show(before)}`);
  }
  if (comment) parts.push(`“${comment}”`);
  return cut(parts.join("; "));
}

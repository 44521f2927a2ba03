// Long lists (the queue, the training history: 10,000 rows) as a real <table> whose body renders only the
// rows in view (@tanstack/react-virtual), fed by the server a page at a time as the view reaches it.
// The table keeps its caption, header and row semantics (aria-rowcount / aria-rowindex) for screen readers.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { useQueries, useQuery, type QueryKey } from "@tanstack/react-query";
import { observeElementRect, useVirtualizer, type Virtualizer } from "@tanstack/react-virtual";
import { useTranslation } from "react-i18next";

export interface PageOf<T> {
  items: T[];
  total: number;
}

export interface PagedRows<T> {
  total: number;
  /** the row at an absolute index, undefined while its page loads */
  rowAt: (index: number) => T | undefined;
  isPending: boolean;
  error: unknown;
  /** when the first page's data arrived (performance.now()), for the bench */
  firstDataAt: number | null;
}

/** Pages needed to show rows start..end (inclusive). */
export function pagesFor(start: number, end: number, pageSize: number): number[] {
  if (end < start) return [0];
  const out: number[] = [];
  for (let p = Math.floor(start / pageSize); p <= Math.floor(end / pageSize); p++) out.push(p);
  return out;
}

/** Fetch the pages the visible range covers (the first page always: it carries the total). Keys start with
 * `baseKey`, so the live invalidation of its root refetches the pages on screen only. */
export function usePagedRows<T>(
  baseKey: QueryKey,
  pageSize: number,
  fetchPage: (page: number, pageSize: number) => Promise<PageOf<T>>,
  range: { start: number; end: number },
): PagedRows<T> {
  const keyOf = (page: number) => [...baseKey, { page, pageSize }];
  const first = useQuery({
    queryKey: keyOf(0),
    queryFn: () => fetchPage(0, pageSize),
    placeholderData: (previous) => previous,
  });
  const firstDataAt = useRef<number | null>(null);
  if (first.data && firstDataAt.current === null) firstDataAt.current = performance.now();
  const others = pagesFor(range.start, range.end, pageSize).filter((p) => p > 0);
  const more = useQueries({
    queries: others.map((page) => ({
      queryKey: keyOf(page),
      queryFn: () => fetchPage(page, pageSize),
      placeholderData: (previous: PageOf<T> | undefined) => previous,
    })),
  });
  const pages = new Map<number, T[]>();
  if (first.data) pages.set(0, first.data.items);
  others.forEach((page, i) => {
    const data = more[i]?.data;
    if (data) pages.set(page, data.items);
  });
  return {
    total: first.data?.total ?? 0,
    rowAt: (index) => pages.get(Math.floor(index / pageSize))?.[index % pageSize],
    isPending: first.isPending,
    error: first.error ?? more.find((q) => q.error)?.error ?? null,
    firstDataAt: firstDataAt.current,
  };
}

export function VirtualTable({
  virtualizer,
  scrollRef,
  caption,
  head,
  columns,
  renderRow,
  empty,
  label,
  testId,
}: {
  virtualizer: Virtualizer<HTMLDivElement, Element>;
  scrollRef: React.RefObject<HTMLDivElement | null>;
  caption: ReactNode;
  head: ReactNode;
  columns: number;
  /** one <tr> per row; it must pass `ref` and `data-index` through (measured heights) */
  renderRow: (index: number, ref: (node: Element | null) => void) => ReactNode;
  empty: ReactNode;
  label: string;
  testId?: string;
}) {
  const { t } = useTranslation();
  const items = virtualizer.getVirtualItems();
  const count = virtualizer.options.count;
  const top = items.length ? items[0].start : 0;
  const bottom = items.length ? virtualizer.getTotalSize() - items[items.length - 1].end : 0;
  const from = items.length ? items[0].index + 1 : 0;
  const to = items.length ? items[items.length - 1].index + 1 : 0;
  return (
    <>
      <div ref={scrollRef} className="vlist" tabIndex={0} role="region" aria-label={label}>
        <table data-testid={testId} aria-rowcount={count + 1}>
          <caption>{caption}</caption>
          <thead>{head}</thead>
          <tbody>
            {count === 0 && (
              <tr><td colSpan={columns} className="muted">{empty}</td></tr>
            )}
            {top > 0 && <tr aria-hidden="true" className="vpad" style={{ height: top }} />}
            {items.map((item) => renderRow(item.index, virtualizer.measureElement))}
            {bottom > 0 && <tr aria-hidden="true" className="vpad" style={{ height: bottom }} />}
          </tbody>
        </table>
      </div>
      <p className="muted" aria-live="polite" data-testid={testId ? `${testId}-range` : undefined}>
        {t("runs.list.rows", { count, from, to })}
      </p>
    </>
  );
}

const NO_LAYOUT = { width: 1200, height: 640 };

/** The virtualizer for a table of `count` rows in `scrollRef` (rows about `rowHeight` px; measured after). */
export function useTableVirtualizer(count: number, scrollRef: React.RefObject<HTMLDivElement | null>, rowHeight: number) {
  return useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => rowHeight,
    overscan: 8,
    // jsdom (and a hidden list) has no layout: assume a viewport's worth of rows rather than none
    initialRect: NO_LAYOUT,
    observeElementRect: (instance, cb) => observeElementRect(instance, (rect) => cb(rect.height ? rect : NO_LAYOUT)),
    // a row without layout measures 0: keep the estimate (else every row would seem to fit in view)
    measureElement: (element) => element.getBoundingClientRect().height || rowHeight,
  });
}

/** A server-paged, virtualised table's state: the rows of the pages in view and the virtualizer. */
export function usePagedTable<T>(
  baseKey: QueryKey,
  pageSize: number,
  fetchPage: (page: number, pageSize: number) => Promise<PageOf<T>>,
  rowHeight: number,
) {
  const scrollRef = useRef<HTMLDivElement | null>(null);
  const [range, setRange] = useState({ start: 0, end: 0 });
  const rows = usePagedRows(baseKey, pageSize, fetchPage, range);
  const virtualizer = useTableVirtualizer(rows.total, scrollRef, rowHeight);
  const items = virtualizer.getVirtualItems();
  const start = items.length ? items[0].index : 0;
  const end = items.length ? items[items.length - 1].index : 0;
  useEffect(() => {
    setRange((was) => (was.start === start && was.end === end ? was : { start, end }));
  }, [start, end]);
  return { rows, virtualizer, scrollRef };
}

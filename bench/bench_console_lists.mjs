// Issue 24's list bar: the queue and the training-history screens with 10,000 rows render their first view
// within 500 ms of the data arriving, in headless Chromium on this machine (bench/RESULTS.md).
//
// The console talks to the real gateway (login, session, the live stream); the two list APIs are answered by
// the browser's request router with 10,000 synthetic rows, paged exactly as the services page them
// (GET /api/scheduler/queue?limit&offset -> {items, count}; GET /api/trainer/training-requests?page&page_size
// -> {items, total, ...}), so the figure is the console's own cost, not the services'. Measured per screen:
// first render = from the first page's response end (Resource Timing) to the frame after its rows are in the
// DOM; rows in the DOM; a jump to the last row (the page it needs fetched and drawn); frame times while
// scrolling. Run from the repository root with a console build served (vite preview proxies /api):
//   cd console && npx vite build --outDir /tmp/console-dist && npx vite preview --outDir /tmp/console-dist --port 5105 &
//   GATEWAY_URL=http://127.0.0.1:5105 ADMIN_PASSWORD=$(cat .run/admin-password) node bench/bench_console_lists.mjs
import { chromium } from "../console/node_modules/playwright-core/index.mjs";

const BASE = (process.env.GATEWAY_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const PASSWORD = process.env.ADMIN_PASSWORD;
const ROWS = Number(process.env.ROWS ?? 10_000);
const RUNS = Number(process.env.RUNS ?? 5);
if (!PASSWORD) throw new Error("ADMIN_PASSWORD is not set");

const t0 = Date.parse("2026-12-07T09:00:00Z");
const queueRow = (i) => ({
  position: i + 1, workload_id: `WL-B${i}`, job_id: `WL-B${i}`, kind: "workload", test_run_id: null,
  name: `bench workload ${i}`, priority: ["high", "normal", "low"][i % 3], requester: `user${i % 17}`,
  resources: { gpu_type: i % 2 ? "A100" : "V100", gpu_count: 1 + (i % 4), memory: "64GB", cpu: 4, max_runtime: "2h" },
  submitted_at: new Date(t0 + i * 1000).toISOString(), status: "waiting",
  wait_reason: { code: "gpus", text: "", gpu_type: i % 2 ? "A100" : "V100", gpu_count: 1 + (i % 4), gpus_free: 0 },
  estimated_start: i < 500 ? new Date(Date.now() + i * 60_000).toISOString() : null,
});
const historyRow = (i) => ({
  workload_id: `WL-H${i}`, app_id: `APP-${i % 40}`, spec_version: "1", name: `bench training ${i}`,
  requester: `user${i % 17}`, priority: "normal", status: "model stored", status_label: "완료 (모델 저장)",
  submitted_at: new Date(t0 - i * 1000).toISOString(), updated_at: new Date(t0).toISOString(), source: "trainer",
  resources: { gpu_type: "A100", gpu_count: 2, memory: "64GB", max_runtime: "2h" },
});

async function serveLists(page) {
  await page.route(/\/api\/scheduler\/queue\?/, (route) => {
    const url = new URL(route.request().url());
    const limit = Number(url.searchParams.get("limit") ?? 200);
    const offset = Number(url.searchParams.get("offset") ?? 0);
    const items = [];
    for (let i = offset; i < Math.min(ROWS, offset + limit); i++) items.push(queueRow(i));
    return route.fulfill({ json: { items, count: ROWS } });
  });
  await page.route(/\/api\/trainer\/training-requests\?/, (route) => {
    const url = new URL(route.request().url());
    const size = Number(url.searchParams.get("page_size") ?? 20);
    const pageNo = Number(url.searchParams.get("page") ?? 1);
    const items = [];
    for (let i = (pageNo - 1) * size; i < Math.min(ROWS, pageNo * size); i++) items.push(historyRow(i));
    return route.fulfill({ json: { items, total: ROWS, page: pageNo, page_size: size } });
  });
}

/** In the page: ms from the first list page's response end to the frame after its first rows are drawn. */
function firstRender({ table, apiPart }) {
  return new Promise((resolve, reject) => {
    const deadline = performance.now() + 20_000;
    const tick = () => {
      const rows = document.querySelectorAll(`[data-testid="${table}"] tbody tr[data-index]`);
      const entry = performance.getEntriesByType("resource").find((e) => e.name.includes(apiPart));
      if (rows.length && entry) {
        requestAnimationFrame(() => requestAnimationFrame(() => resolve({
          ms: performance.now() - entry.responseEnd, rows: document.querySelectorAll(`[data-testid="${table}"] tbody tr`).length,
        })));
        return;
      }
      if (performance.now() > deadline) reject(new Error(`no rows in ${table}`));
      else requestAnimationFrame(tick);
    };
    tick();
  });
}

/** In the page: scroll the list to its end, wait for the last row; and the frame times of a steady scroll. */
function scrollFigures({ table, last }) {
  return new Promise((resolve) => {
    const region = document.querySelector(`[data-testid="${table}"]`).closest(".vlist");
    const began = performance.now();
    region.scrollTop = region.scrollHeight;
    const waitLast = () => {
      const found = document.querySelector(`[data-testid="${table}"] tbody tr[aria-rowindex="${last + 2}"] td:not(.muted)`);
      if (!found) return requestAnimationFrame(waitLast);
      const jump = performance.now() - began;
      region.scrollTop = 0;
      const frames = [];
      let previous = performance.now();
      const step = () => {
        const now = performance.now();
        frames.push(now - previous);
        previous = now;
        region.scrollTop += 120;
        if (frames.length < 120) requestAnimationFrame(step);
        else {
          frames.sort((a, b) => a - b);
          resolve({ jump, p50: frames[Math.floor(frames.length / 2)], p95: frames[Math.floor(frames.length * 0.95)], max: frames[frames.length - 1] });
        }
      };
      requestAnimationFrame(step);
    };
    waitLast();
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"] });
try {
  const context = await browser.newContext({ locale: "ko-KR", viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  await serveLists(page);
  await page.goto(`${BASE}/login`);
  await page.getByLabel("사용자 ID").fill("admin");
  await page.getByLabel("비밀번호").fill(PASSWORD);
  await page.getByRole("button", { name: "로그인" }).click();
  await page.waitForURL(/\/queue$/);
  const screens = [
    { name: "queue", path: "/queue", table: "queue-table", api: "/api/scheduler/queue?" },
    { name: "training history", path: "/trainer", table: "trainer-table", api: "/api/trainer/training-requests?" },
  ];
  const results = [];
  for (const screen of screens) {
    const renders = [];
    let rows = 0;
    let scroll = null;
    for (let run = 0; run < RUNS; run++) {
      await page.goto(`${BASE}/login`); // a cold screen each run: its chunk cached, its data not
      await page.goto(`${BASE}${screen.path}`);
      const figure = await page.evaluate(firstRender, { table: screen.table, apiPart: screen.api });
      renders.push(figure.ms);
      rows = figure.rows;
      if (run === RUNS - 1) scroll = await page.evaluate(scrollFigures, { table: screen.table, last: ROWS - 1 });
    }
    results.push({ screen: screen.name, rows: ROWS, first_render_ms_median: +median(renders).toFixed(1),
                   first_render_ms_max: +Math.max(...renders).toFixed(1), dom_rows: rows,
                   jump_to_last_row_ms: +scroll.jump.toFixed(1), scroll_frame_ms_p50: +scroll.p50.toFixed(1),
                   scroll_frame_ms_p95: +scroll.p95.toFixed(1), scroll_frame_ms_max: +scroll.max.toFixed(1) });
  }
  console.table(results);
  console.log(JSON.stringify(results));
  const slow = results.filter((r) => r.first_render_ms_max >= 500);
  if (slow.length) {
    console.error(`over 500 ms: ${slow.map((r) => r.screen).join(", ")}`);
    process.exitCode = 1;
  }
} finally {
  await browser.close();
}

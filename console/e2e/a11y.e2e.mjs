// Accessibility (issue 24's bar): axe-core (@axe-core/playwright) on every screen of the console as the admin
// sees it, a table of the violations by impact, failing on any serious or critical one.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, ARTIFACTS_DIR, CHROMIUM.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_PASSWORD, ARTIFACTS, BASE, axeViolations, call, describeViolations, finish, launch, logIn, seriousOnes, step } from "./lib.mjs";

const browser = await launch();
const IMPACTS = ["critical", "serious", "moderate", "minor"];

/** An id for each screen that shows one thing: the newest of each, when there is one. */
async function firstIds(page) {
  const first = async (path, pick) => {
    const answer = await call(page, "GET", path);
    return answer.status === 200 ? await pick(answer.body) : null;
  };
  return {
    approval: await first("/api/approval/approvals?page_size=1", (b) => b.items?.[0]?.workload_id),
    model: await first("/api/models/models?page_size=1", (b) => b.items?.[0]?.model_id),
    workload: await first("/api/scheduler/workloads?limit=1", (b) => b.items?.[0]?.workload_id),
    models: await first("/api/models/models?page_size=2&status=stored",
                        (b) => (b.items?.length === 2 ? b.items.map((m) => m.model_id).join(",") : null)),
    component: await first("/api/library/components?page_size=1", (b) => b.items?.[0]?.component_id),
    app: await first("/api/builder/apps?page_size=1", async (b) =>
      b.items?.[0] ? (await call(page, "GET", `/api/builder/apps/${b.items[0].app_id}`)).body : null),
  };
}

try {
  let admin;
  const rows = [];
  await step("the admin logs in", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
  });
  const ids = await firstIds(admin);
  const routes = [
    "/queue", "/trainer", "/trainer/new", "/trainer/compare", "/approvals",
    ids.approval && `/approvals/${ids.approval}`, "/models", ids.model && `/models/${ids.model}`,
    ids.models && `/models/compare?ids=${ids.models}`,
    "/builder", ids.app && `/builder/${ids.app.app_id}`, ids.app && `/builder/${ids.app.app_id}/workflow`,
    ids.app?.tasks?.[0] && `/builder/${ids.app.app_id}/tasks/${ids.app.tasks[0].task_id}`,
    "/library", "/library/new", ids.component && `/library/${ids.component}`,
    "/resources", "/runs", ids.workload && `/runs/${ids.workload}`,
    "/admin", "/admin/users", "/admin/tokens", "/admin/audit", "/admin/thresholds",
  ].filter(Boolean);

  for (const route of routes) {
    await step(`axe on ${route}`, async () => {
      await admin.goto(`${BASE}${route}`);
      await admin.locator("main h1").first().waitFor({ timeout: 15_000 }).catch(() => {});
      await admin.waitForLoadState("networkidle", { timeout: 10_000 }).catch(() => {}); // the SSE stream never idles
      const violations = await axeViolations(admin);
      const counts = Object.fromEntries(IMPACTS.map((impact) => [impact, 0]));
      for (const v of violations) counts[v.impact ?? "minor"] += v.nodes.length;
      rows.push({ route, ...counts, rules: violations.map((v) => `${v.id}(${v.impact})`).join(" ") });
      const bad = seriousOnes(violations);
      if (bad.length) throw new Error(`serious/critical violations on ${route}:\n  ${describeViolations(bad).join("\n  ")}`);
    }).catch(() => {}); // every screen is checked; the tally fails the run
  }

  const header = `| route | critical | serious | moderate | minor | rules |\n|---|---|---|---|---|---|`;
  const table = [header, ...rows.map((r) => `| ${r.route} | ${r.critical} | ${r.serious} | ${r.moderate} | ${r.minor} | ${r.rules || "—"} |`)].join("\n");
  console.log(table);
  writeFileSync(join(ARTIFACTS, "a11y.md"), `${table}\n`);
} finally {
  await finish(browser);
}

// Runs and logs (SC-03, SC-05) and the queue's wait reasons: a two-component chain (probe -> data-loader)
// followed on /runs/:id as its components change state live, the probe's log tailed while it runs and read
// after it ends; then the V100 node filled by two blockers so a third request waits, its row saying why
// ("한 노드에 V100 3개 필요 · 여유 2개") and when it may start. A viewer sees the run and changes nothing.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, ARTIFACTS_DIR, CHROMIUM.
import { ADMIN_PASSWORD, BASE, call, createUsers, finish, launch, logIn, pages, shot, step, suffix } from "./lib.mjs";

const SAGA_MS = Number(process.env.SAGA_TIMEOUT_MS ?? 120_000);
const browser = await launch();
const submitted = [];

async function ok(page, method, path, body, expect = [200, 201, 202]) {
  const answer = await call(page, method, path, body);
  if (!expect.includes(answer.status)) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

async function until(what, probe, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** An App of one Task whose components run in the given order, built through the builder's API and ready in the trainer. */
async function buildApp(page, name, members) {
  const library = await ok(page, "GET", "/api/library/components?page_size=100");
  const byName = Object.fromEntries(library.items.map((c) => [c.name, c]));
  const app = await ok(page, "POST", "/api/builder/apps", { name });
  const task = await ok(page, "POST", `/api/builder/apps/${app.app_id}/tasks`, { name: "chain" });
  const placed = [];
  for (const [member, overrides] of members) {
    const component = byName[member];
    if (!component) throw new Error(`no ${member} in the library`);
    await ok(page, "POST", `/api/builder/apps/${app.app_id}/tasks/${task.task_id}/components`, { component_id: component.component_id, ...overrides });
    placed.push(component.component_id);
  }
  for (let i = 1; i < placed.length; i++) {
    await ok(page, "POST", `/api/builder/apps/${app.app_id}/tasks/${task.task_id}/edges`, { from: placed[i - 1], to: placed[i] });
  }
  await ok(page, "POST", `/api/builder/apps/${app.app_id}/spec`);
  await until(`${name} ready in the trainer`, async () => (await call(page, "GET", `/api/trainer/apps/${app.app_id}`)).status === 200);
  return { appId: app.app_id, components: placed };
}

async function submit(page, appId, name, resources) {
  const body = await ok(page, "POST", "/api/trainer/training-requests", {
    app_id: appId, name, priority: "normal", training_config: { episodes: 2 }, ...(resources ? { resources } : {}),
  });
  submitted.push(body.workload_id);
  return body.workload_id;
}

const node = (page, id) => page.locator(`[data-testid^="dag-"] [data-component="${id}"]`);

try {
  let admin;
  let viewer;
  let chain;
  let workload;
  await step("the admin builds a two-component chain (probe -> data-loader) and submits it", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    chain = await buildApp(admin, `runs-chain-${suffix}`, [
      ["probe", { params: { sleep_s: 10 } }],
      ["data-loader", {}],
    ]);
    workload = await submit(admin, chain.appId, `runs e2e ${suffix}`);
  });

  const [probe, loader] = [() => chain.components[0], () => chain.components[1]];
  await step("its run page draws the DAG: the probe runs on a node while data-loader waits after it", async () => {
    await admin.goto(`${BASE}/runs/${workload}`);
    await node(admin, probe()).and(admin.locator('[data-status="running"]')).waitFor({ timeout: SAGA_MS });
    await node(admin, loader()).and(admin.locator('[data-status="pending"]')).waitFor();
    const edges = await admin.locator(".dag-edge").count();
    if (edges !== 1) throw new Error(`${edges} edges drawn`);
    const text = await node(admin, probe()).textContent();
    if (!/node-/.test(text)) throw new Error(`no allocation on the probe's node: ${text}`);
    await shot(admin, "runs-01-dag");
  });

  await step("the probe's log is tailed live while it runs", async () => {
    const log = admin.getByTestId("log");
    await admin.getByTestId("log-source").filter({ hasText: "실시간" }).waitFor();
    await until("two progress lines", async () => ((await log.textContent()) ?? "").split("left").length > 2, 20_000);
    const before = ((await log.textContent()) ?? "").length;
    await until("the log to grow without a reload", async () => ((await log.textContent()) ?? "").length > before, 10_000);
    await shot(admin, "runs-02-logs");
  });

  await step("the components' states change live: probe succeeded, then data-loader runs and the workload completes", async () => {
    await node(admin, probe()).and(admin.locator('[data-status="succeeded"]')).waitFor({ timeout: SAGA_MS });
    await node(admin, loader()).and(admin.locator('[data-status="running"], [data-status="succeeded"]')).waitFor({ timeout: SAGA_MS });
    await admin.getByTestId("run-status").locator('[data-status="completed"]').waitFor({ timeout: SAGA_MS });
  });

  await step("after it ends the probe's whole log is readable (the model's copy once stored)", async () => {
    await admin.locator(`[data-testid="components-table"] [data-component="${probe()}"]`).getByRole("button").click();
    await admin.getByTestId("log-source").filter({ hasText: "모델 저장소" }).waitFor({ timeout: SAGA_MS });
    await until("the stored log's last line", async () => ((await admin.getByTestId("log").textContent()) ?? "").includes("probe: done"));
  });

  await step("the trainer detail links to the run (the model detail does too)", async () => {
    await admin.goto(`${BASE}/trainer/${workload}`);
    await admin.getByRole("link", { name: "실행 보기" }).click();
    await admin.waitForURL(new RegExp(`/runs/${workload}$`));
    await admin.getByRole("heading", { name: /실행/ }).first().waitFor();
  });

  let blockers = [];
  let waiting;
  await step("with the V100 node filled by two blockers, a third request waits and says why and when", async () => {
    const blocker = await buildApp(admin, `runs-blocker-${suffix}`, [
      ["probe", { params: { sleep_s: 45 }, resources: { gpu_type: "V100", gpu_count: 3, memory: "1GB" } }],
    ]);
    const resources = { gpu_type: "V100", gpu_count: 3, memory: "1GB", max_runtime: "2m" };
    blockers = [await submit(admin, blocker.appId, `blocker A ${suffix}`, resources),
                await submit(admin, blocker.appId, `blocker B ${suffix}`, resources)];
    for (const id of blockers) {
      await until(`${id} running`, async () => (await call(admin, "GET", `/api/scheduler/workloads/${id}`)).body?.status === "running", SAGA_MS);
    }
    const free = await call(admin, "GET", "/api/scheduler/nodes");
    const v100 = free.body.items.find((n) => n.gpus.V100)?.gpus.V100;
    waiting = await submit(admin, blocker.appId, `waits ${suffix}`, resources);
    await admin.goto(`${BASE}/queue`);
    const row = admin.locator(`[data-testid="queue-table"] [data-workload="${waiting}"]`);
    await row.waitFor({ timeout: SAGA_MS });
    const reason = row.getByTestId("wait-reason");
    const expected = v100 && v100.idle < 3 ? `한 노드에 V100 3개 필요 · 여유 ${v100.idle}개` : "V100 3개";
    await reason.filter({ hasText: expected }).waitFor();
    const estimate = await row.getByTestId("estimated-start").locator("time").getAttribute("datetime");
    if (!estimate || Date.parse(estimate) < Date.now()) throw new Error(`estimated start ${estimate}`);
    await shot(admin, "queue-01-wait-reasons");
  });

  await step("an admin's reorder elsewhere redraws this queue live (queue.changed on the stream)", async () => {
    const second = await submit(admin, (await call(admin, "GET", `/api/trainer/training-requests/${waiting}`)).body.app_id,
      `waits too ${suffix}`, { gpu_type: "V100", gpu_count: 3, memory: "1GB", max_runtime: "2m" });
    const order = async () => admin.locator('[data-testid="queue-table"] tbody tr[data-workload]').evaluateAll((rows) => rows.map((r) => r.dataset.workload));
    await until("both waiting rows", async () => (await order()).join() === [waiting, second].join(), SAGA_MS);
    // another admin session moves the second ahead: this page is not reloaded
    const moved = await call(admin, "PATCH", `/api/scheduler/queue/${second}`, { before: waiting });
    if (moved.status !== 200) throw new Error(`move: ${moved.status} ${JSON.stringify(moved.body)}`);
    await until("the new order without a reload", async () => (await order()).join() === [second, waiting].join(), 15_000);
  });

  await step("a viewer opens the run page: the DAG and the log, nothing to change", async () => {
    const users = await createUsers(admin, ["viewer"]);
    viewer = await logIn(browser, "viewer", users.viewer.id, users.viewer.password);
    await viewer.goto(`${BASE}/runs/${workload}`);
    await node(viewer, probe()).and(viewer.locator('[data-status="succeeded"]')).waitFor();
    await viewer.getByTestId("log").waitFor();
    await viewer.goto(`${BASE}/queue`);
    const row = viewer.locator(`[data-testid="queue-table"] [data-workload="${waiting}"]`);
    await row.getByTestId("wait-reason").waitFor();
    for (const button of await row.getByRole("button").all()) {
      if (!(await button.isDisabled())) throw new Error(`a viewer's ${await button.textContent()} is enabled`);
    }
  });
} finally {
  // leave the stack as it was: whatever still waits or runs is cancelled
  for (const id of submitted) if (pages.admin) await call(pages.admin, "POST", `/api/scheduler/workloads/${id}/cancel`).catch(() => {});
  await finish(browser);
}

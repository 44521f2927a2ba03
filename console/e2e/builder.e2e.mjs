// The Builder as people use it: a researcher builds seed 001's example App on the canvas (PreProcessor-App
// to import, then RL-DesignOpt-v1: the four-component chain env-simulator → rl-agent → reward-calc →
// param-optimizer by drags, the import as its second Task, env vars with a secret), sees a BL-09 refusal
// at the edge, edits a component with the threshold badge following, tidies and undoes, deletes with the
// keyboard, meets an edit conflict from a second window, views the workflow SVG and the spec JSON; a viewer
// sees nothing editable. Then the canvas benchmark: 200 components and 300 edges (layout time, drag frames).
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, ARTIFACTS_DIR, CHROMIUM;
// BENCH_COMPONENTS / BENCH_EDGES (default 200 / 300; 0 skips the benchmark).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_PASSWORD, ARTIFACTS, BASE, call, createUsers, finish, launch, logIn, shot, step, suffix } from "./lib.mjs";

const CHAIN = ["env-simulator", "rl-agent", "reward-calc", "param-optimizer"];
const CYCLE = "순환 참조가 감지되었습니다. 이 연결을 추가하면 순환이 발생합니다";
const DUPLICATE = "이미 존재하는 연결입니다";
const BENCH_COMPONENTS = Number(process.env.BENCH_COMPONENTS ?? 200);
const BENCH_EDGES = Number(process.env.BENCH_EDGES ?? 300);

const browser = await launch();

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function libraryIds(page, names) {
  const ids = {};
  for (const name of names) {
    const answer = await call(page, "GET", `/api/library/components?q=${encodeURIComponent(name)}&page_size=100`);
    const found = answer.body.items.find((c) => c.name === name);
    expect(found, `library component ${name} not found`);
    ids[name] = found.component_id;
  }
  return ids;
}

/** create an App through the list's form; answers its id (the App page opens) */
async function createApp(page, name) {
  await page.goto(`${BASE}/builder`);
  await page.getByLabel("App 이름").fill(name);
  await page.getByRole("button", { name: "App 생성" }).click();
  await page.waitForURL(/\/builder\/APP-[0-9A-F]{6}$/);
  return page.url().split("/").pop();
}

async function addTask(page, name) {
  await page.getByLabel("새 Task 이름").fill(name);
  await page.getByRole("button", { name: "Task 추가" }).click();
  await page.locator(`[data-testid=tasks-table] tr`, { hasText: name }).waitFor();
}

/** drag a library component from the palette onto the canvas at (x, y) of the canvas */
async function dropFromPalette(page, name, id, x, y) {
  await page.getByLabel("검색").fill(name);
  // the list has caught up with the search (a drag from an item about to be replaced goes nowhere)
  await page.waitForFunction((name) => {
    const items = [...document.querySelectorAll(".palette-item")];
    return items.length > 0 && items.every((i) => i.dataset.name.includes(name));
  }, name);
  const item = page.locator(`.palette-item[data-component-id="${id}"]`);
  await item.dragTo(page.locator("[data-testid=canvas] .react-flow__pane"), { targetPosition: { x, y } });
  await page.locator(`.react-flow__node[data-id="${id}"]`).waitFor();
  await page.locator("[data-save=saved]").waitFor();
}

/** drag from one node's source handle to another's target handle, as a person connects them */
async function connectByDrag(page, fromId, toId) {
  const source = await page.locator(`.react-flow__node[data-id="${fromId}"] .react-flow__handle.source`).boundingBox();
  const target = await page.locator(`.react-flow__node[data-id="${toId}"] .react-flow__handle.target`).boundingBox();
  await page.mouse.move(source.x + source.width / 2, source.y + source.height / 2);
  await page.mouse.down();
  await page.mouse.move(target.x + target.width / 2, target.y + target.height / 2, { steps: 12 });
  await page.mouse.up();
}

const edgeCount = (page) => page.locator(".react-flow__edge:not(.react-flow__edge-refused)").count();
const nodePosition = (page, id) =>
  page.locator(`.react-flow__node[data-id="${id}"]`).evaluate((el) => el.style.transform);

try {
  let admin;
  let users;
  await step("the admin logs in and creates a researcher and a viewer", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    users = await createUsers(admin, ["researcher", "viewer"]);
  });

  let researcher;
  let ids;
  let sourceApp;
  await step("the researcher sees the App list (task count, component count, largest component)", async () => {
    researcher = await logIn(browser, "researcher", users.researcher.id, users.researcher.password);
    ids = await libraryIds(researcher, [...CHAIN, "data-loader"]);
    await researcher.getByRole("link", { name: "빌더" }).click();
    await researcher.getByRole("heading", { name: "빌더" }).waitFor();
    await researcher.getByRole("table", { name: "App 목록 (최근 수정 순)" }).waitFor();
  });

  await step("the researcher builds the App to import: PreProcessor-App with data-loader on its Task", async () => {
    sourceApp = await createApp(researcher, `PreProcessor-App ${suffix}`);
    await addTask(researcher, "data-preprocessing");
    await researcher.getByRole("link", { name: "data-preprocessing 편집" }).click();
    await researcher.locator("[data-testid=canvas]").waitFor();
    await dropFromPalette(researcher, "data-loader", ids["data-loader"], 200, 150);
    // the image came from the library (BL-01)
    await researcher.locator(`.react-flow__node[data-id="${ids["data-loader"]}"]`).click();
    const registry = await researcher.getByLabel("레지스트리").inputValue();
    expect(registry.includes("data-loader"), `image registry not filled from the library: ${registry}`);
  });

  let appId;
  await step("the researcher creates RL-DesignOpt-v1 with the Task parameter-optimization", async () => {
    appId = await createApp(researcher, `RL-DesignOpt-v1 ${suffix}`);
    await addTask(researcher, "parameter-optimization");
    await researcher.getByRole("link", { name: "Task 편집", exact: true }).click();
    await researcher.locator("[data-testid=canvas]").waitFor();
  });

  await step("drags the four components onto the canvas from the palette (filtered by type too)", async () => {
    await researcher.getByLabel("유형").selectOption("trainer");
    await researcher.waitForFunction(() => {
      const items = [...document.querySelectorAll(".palette-item")];
      return items.length > 0 && items.every((i) => i.classList.contains("type-trainer"));
    });
    await researcher.getByLabel("유형").selectOption("");
    for (const [i, name] of CHAIN.entries()) await dropFromPalette(researcher, name, ids[name], 40 + (i % 2) * 300, 30 + i * 120);
    expect((await researcher.locator(".react-flow__node").count()) === 4, "four nodes on the canvas");
  });

  await step("connects the chain by dragging handles; the order follows", async () => {
    for (let i = 0; i < CHAIN.length - 1; i += 1) {
      await connectByDrag(researcher, ids[CHAIN[i]], ids[CHAIN[i + 1]]);
      await researcher.waitForFunction((n) => document.querySelectorAll(".react-flow__edge:not(.react-flow__edge-refused)").length === n, i + 1);
    }
    const task = await call(researcher, "GET", `/api/builder/apps/${appId}/tasks/TASK-001`);
    expect(JSON.stringify(task.body.workflow.map((e) => [e.from, e.to])) === JSON.stringify(CHAIN.slice(0, -1).map((n, i) => [ids[n], ids[CHAIN[i + 1]]])), `workflow: ${JSON.stringify(task.body.workflow)}`);
  });

  await step("a connection closing a cycle is refused with the builder's BL-09 message at the edge", async () => {
    await connectByDrag(researcher, ids["param-optimizer"], ids["env-simulator"]);
    const refusal = researcher.getByTestId("edge-refusal");
    await refusal.waitFor();
    expect((await refusal.getAttribute("data-code")) === "cycle", "cycle refusal");
    expect((await refusal.textContent()).includes(CYCLE), `message: ${await refusal.textContent()}`);
    expect((await edgeCount(researcher)) === 3, "the refused edge was not added");
    await shot(researcher, "builder-03-refusal");
    await refusal.getByRole("button", { name: "메시지 닫기" }).click();
    await connectByDrag(researcher, ids["env-simulator"], ids["rl-agent"]);
    await researcher.getByTestId("edge-refusal").filter({ hasText: DUPLICATE }).waitFor();
    await researcher.getByTestId("edge-refusal").getByRole("button").click();
  });

  await step("tidy lays the chain out left to right, and one Ctrl+Z puts every node back", async () => {
    const before = await Promise.all(CHAIN.map((n) => nodePosition(researcher, ids[n])));
    await researcher.getByTestId("tidy").click();
    await researcher.getByTestId("layout-ms").waitFor();
    const after = await Promise.all(CHAIN.map((n) => nodePosition(researcher, ids[n])));
    expect(JSON.stringify(after) !== JSON.stringify(before), "tidy moved nothing");
    const xs = await Promise.all(CHAIN.map((n) => researcher.locator(`.react-flow__node[data-id="${ids[n]}"]`).boundingBox().then((b) => b.x)));
    expect(xs.every((x, i) => i === 0 || x > xs[i - 1]), `left to right: ${xs}`);
    await researcher.waitForTimeout(300); // the view fits the tidied nodes
    await researcher.locator(`.react-flow__node[data-id="${ids["rl-agent"]}"]`).click();
    await researcher.getByTestId("component-panel").waitFor();
    await shot(researcher, "builder-02-canvas");
    await researcher.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
    await researcher.keyboard.press("Control+z");
    await researcher.waitForFunction(
      ({ ids, before }) => ids.every((id, i) => document.querySelector(`.react-flow__node[data-id="${id}"]`).style.transform === before[i]),
      { ids: CHAIN.map((n) => ids[n]), before },
    );
    await researcher.keyboard.press("Control+Shift+z");
    await researcher.waitForFunction(
      ({ ids, after }) => ids.every((id, i) => document.querySelector(`.react-flow__node[data-id="${id}"]`).style.transform === after[i]),
      { ids: CHAIN.map((n) => ids[n]), after },
    );
  });

  await step("the side panel edits rl-agent; the approval badge follows the form and the change saves itself", async () => {
    await researcher.locator(`.react-flow__node[data-id="${ids["rl-agent"]}"]`).click();
    const panel = researcher.getByTestId("component-panel");
    const badge = panel.getByTestId("threshold-badge");
    await badge.filter({ hasText: "승인 필요" }).waitFor(); // 4 × A100, 128GB: at the threshold (BL-06)
    await panel.getByLabel("GPU 개수").fill("2");
    await panel.getByLabel("메모리").fill("64GB");
    await badge.filter({ hasText: "자동 승인" }).waitFor(); // live, before any save
    await researcher.waitForFunction(async ({ appId, id }) => {
      const task = await (await fetch(`/api/builder/apps/${appId}/tasks/TASK-001`)).json();
      return task.components.find((c) => c.component_id === id).resources.gpu_count === 2;
    }, { appId, id: ids["rl-agent"] }, { timeout: 10_000 });
    await researcher.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
    await researcher.keyboard.press("Control+z"); // undo the change: back to 4 GPUs
    await researcher.waitForFunction(async ({ appId, id }) => {
      const task = await (await fetch(`/api/builder/apps/${appId}/tasks/TASK-001`)).json();
      return task.components.find((c) => c.component_id === id).resources.gpu_count === 4;
    }, { appId, id: ids["rl-agent"] }, { timeout: 10_000 });
  });

  await step("Delete removes reward-calc with its edges; the order updates; Ctrl+Z brings both back", async () => {
    await researcher.locator(`.react-flow__node[data-id="${ids["reward-calc"]}"]`).click();
    await researcher.keyboard.press("Delete");
    await researcher.locator(`.react-flow__node[data-id="${ids["reward-calc"]}"]`).waitFor({ state: "detached" });
    await researcher.waitForFunction(() => document.querySelectorAll(".react-flow__edge").length === 1);
    const task = await call(researcher, "GET", `/api/builder/apps/${appId}/tasks/TASK-001`);
    expect(JSON.stringify(task.body.order) === JSON.stringify([ids["env-simulator"], ids["rl-agent"], ids["param-optimizer"]]), `order: ${task.body.order}`);
    await researcher.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
    await researcher.keyboard.press("Control+z");
    await researcher.locator(`.react-flow__node[data-id="${ids["reward-calc"]}"]`).waitFor();
    await researcher.waitForFunction(() => document.querySelectorAll(".react-flow__edge").length === 3);
    const back = await call(researcher, "GET", `/api/builder/apps/${appId}/tasks/TASK-001`);
    expect(JSON.stringify(back.body.order) === JSON.stringify(CHAIN.map((n) => ids[n])), `order after undo: ${back.body.order}`);
  });

  await step("App 관리: import PreProcessor-App (its Task shows its origin) and set env vars with a masked secret", async () => {
    await researcher.getByRole("link", { name: "App 관리" }).click();
    await researcher.getByLabel("가져올 App").selectOption(sourceApp);
    await researcher.getByRole("button", { name: "가져오기", exact: true }).click();
    const imported = researcher.locator(`[data-testid=tasks-table] tr[data-imported-from="${sourceApp}"]`);
    await imported.waitFor();
    expect((await imported.textContent()).includes("data-preprocessing"), "the imported Task");
    await imported.getByTestId("imported-from").filter({ hasText: sourceApp }).waitFor();
    for (const [key, value, secret] of [["NCCL_DEBUG", "INFO", false], ["WANDB_API_KEY", `wandb-${suffix}`, true]]) {
      await researcher.getByRole("button", { name: "변수 추가" }).click();
      const row = researcher.locator("[data-testid=env-table] tbody tr").last();
      await row.getByRole("textbox").first().fill(key);
      if (secret) await row.getByRole("checkbox").check();
      await row.locator("input:not([type=checkbox])").nth(1).fill(value);
    }
    await researcher.getByRole("button", { name: "환경 변수 저장" }).click();
    await researcher.locator('[data-testid=env-table] tr[data-env="WANDB_API_KEY"][data-secret="true"]').getByText("설정됨").waitFor();
    const html = await researcher.content();
    expect(!html.includes(`wandb-${suffix}`), "the secret's value is on the page");
    await shot(researcher, "builder-01-apps-app");
  });

  await step("two windows edit one App: the second edit from a stale revision gets the conflict message", async () => {
    const other = await researcher.context().newPage();
    await other.goto(`${BASE}/builder/${appId}/tasks/TASK-001`);
    await other.locator(`.react-flow__node[data-id="${ids["env-simulator"]}"]`).waitFor();
    // this window edits first
    await researcher.goto(`${BASE}/builder/${appId}/tasks/TASK-001`);
    await researcher.locator(`.react-flow__node[data-id="${ids["param-optimizer"]}"]`).click();
    await researcher.getByTestId("component-panel").getByLabel("태그").fill("2.1");
    await researcher.waitForFunction(() => document.querySelector("[data-save]")?.dataset.save === "saved", null, { timeout: 10_000 });
    // the other window, still at the old revision, edits too
    await other.locator(`.react-flow__node[data-id="${ids["env-simulator"]}"]`).click();
    await other.getByTestId("component-panel").getByLabel("GPU 개수").fill("1");
    const conflict = other.getByTestId("edit-conflict");
    await conflict.filter({ hasText: "다른 사용자가 이 App을 먼저 수정했습니다" }).waitFor({ timeout: 10_000 });
    await shot(other, "builder-05-conflict");
    await conflict.getByRole("button", { name: "최신 내용 불러오기" }).click();
    await conflict.waitFor({ state: "detached" });
    await other.close();
  });

  await step("워크플로우 시각화: each Task's SVG, the spec generated, its JSON viewed and downloaded with its history", async () => {
    await researcher.getByRole("link", { name: "워크플로우 시각화" }).click();
    const images = researcher.getByTestId("workflow-svg");
    await images.first().waitFor();
    expect((await images.count()) === 2, "two Tasks, two diagrams");
    await researcher.waitForFunction(() => [...document.querySelectorAll("[data-testid=workflow-svg]")].every((img) => img.complete && img.naturalWidth > 0));
    const svg = await researcher.evaluate(async (src) => (await fetch(src)).text(), await images.first().getAttribute("src"));
    expect(svg.startsWith("<svg") && CHAIN.every((n) => svg.includes(n)), "the SVG names the chain");
    await researcher.getByRole("button", { name: "스펙 파일 생성" }).click();
    const json = researcher.getByTestId("spec-json");
    await json.waitFor();
    const spec = JSON.parse(await json.textContent());
    expect(spec.app_id === appId && spec.tasks.length === 2, `spec tasks: ${spec.tasks?.length}`);
    expect(spec.tasks[1].imported_from === sourceApp && spec.imported_apps[0].app_ref === sourceApp, "the import in the spec");
    expect(spec.tasks[0].workflow.length === 3 && spec.tasks[0].components.length === 4, "the chain in the spec");
    expect(!JSON.stringify(spec).includes(`wandb-${suffix}`), "the secret's value is in the spec");
    const row = researcher.locator(`[data-testid=spec-versions] tr[data-version="${spec.version}"]`);
    await row.waitFor();
    const [download] = await Promise.all([researcher.waitForEvent("download"), row.getByRole("link", { name: /JSON 다운로드/ }).click()]);
    const saved = join(ARTIFACTS, `builder-spec-${spec.version}.json`);
    await download.saveAs(saved);
    await shot(researcher, "builder-04-workflow");
  });

  await step("a viewer sees the Builder with nothing to change, and the reason", async () => {
    const viewer = await logIn(browser, "viewer", users.viewer.id, users.viewer.password);
    await viewer.goto(`${BASE}/builder`);
    expect(await viewer.getByRole("button", { name: "App 생성" }).isDisabled(), "viewer may create an App");
    await viewer.goto(`${BASE}/builder/${appId}`);
    await viewer.getByTestId("app-reason").filter({ hasText: "뷰어는 조회만 할 수 있습니다." }).waitFor();
    for (const name of ["Task 추가", "가져오기", "환경 변수 저장"]) {
      expect(await viewer.getByRole("button", { name, exact: true }).isDisabled(), `${name} enabled for a viewer`);
    }
    await viewer.goto(`${BASE}/builder/${appId}/tasks/TASK-001`);
    await viewer.locator(`.react-flow__node[data-id="${ids["rl-agent"]}"]`).click();
    await viewer.getByTestId("editor-reason").waitFor();
    const adds = viewer.locator(".palette-item button");
    for (let i = 0; i < (await adds.count()); i += 1) expect(await adds.nth(i).isDisabled(), "a palette button is enabled");
    expect((await viewer.locator(".palette-item[draggable=true]").count()) === 0, "palette items draggable");
    expect((await viewer.locator(".react-flow__handle.connectable").count()) === 0, "handles connectable");
    expect(await viewer.getByTestId("component-panel").getByLabel("GPU 개수").getAttribute("readonly") !== null, "panel editable");
    expect(await viewer.getByRole("button", { name: "컴포넌트 삭제" }).isDisabled(), "delete enabled");
    expect(await viewer.getByTestId("tidy").isDisabled(), "tidy enabled");
    await viewer.keyboard.press("Delete");
    await viewer.waitForTimeout(300);
    expect((await viewer.locator(".react-flow__node").count()) === 4, "Delete removed a node for a viewer");
    await shot(viewer, "builder-06-viewer");
    await viewer.goto(`${BASE}/builder/${appId}/workflow`);
    expect(await viewer.getByRole("button", { name: "스펙 파일 생성" }).isDisabled(), "viewer may generate a spec");
    // and the service refuses all the same
    const refused = await call(viewer, "POST", `/api/builder/apps/${appId}/tasks`, { name: "nope" });
    expect(refused.status === 403, `viewer add task: ${refused.status}`);
  });

  await step("the App list shows both Apps with their counts and largest component", async () => {
    await researcher.goto(`${BASE}/builder`);
    const row = researcher.locator(`[data-testid=apps-table] tr[data-app="${appId}"]`);
    await row.waitFor();
    const cells = await row.locator("td").allTextContents();
    expect(cells[2] === "2" && cells[3] === "5", `counts: ${cells}`);
    expect(cells[4].includes("rl-agent") && cells[4].includes("승인 필요"), `largest: ${cells[4]}`);
    await shot(researcher, "builder-01-apps");
  });

  if (BENCH_COMPONENTS > 0) {
    await step(`benchmark: ${BENCH_COMPONENTS} components and ${BENCH_EDGES} edges: ELK layout and drag frame times`, async () => {
      const figures = await benchmark(researcher, admin);
      writeFileSync(join(ARTIFACTS, "bench-console-canvas.json"), JSON.stringify(figures, null, 2));
      console.log(`bench ${JSON.stringify(figures)}`);
      expect(figures.layout_ms < 1000, `layout took ${figures.layout_ms} ms`);
    });
  }
} finally {
  await finish(browser);
}

/** a Task with `count` components and `edges` acyclic edges, built through the API */
async function bigTask(page, count, edges, shape = "layers", reuse = null) {
  const made = await page.evaluate(async ({ count, edges, suffix, shape, reuse }) => {
    const token = decodeURIComponent(document.cookie.split("; ").find((c) => c.startsWith("avatar_csrf="))?.split("=")[1] ?? "");
    const send = async (method, path, body, rev) => {
      const headers = { "Content-Type": "application/json", "X-CSRF-Token": token };
      if (rev !== undefined) headers["If-Match"] = `"${rev}"`;
      for (;;) {
        const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
        if (r.status === 429) {
          // the gateway's per-user rate limit: wait as it says, as a client should
          await new Promise((done) => setTimeout(done, 1000 * Number(r.headers.get("retry-after") ?? 2)));
          continue;
        }
        if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
        return r.json();
      }
    };
    const types = ["trainer", "data_loader", "preprocessor", "evaluator", "other"];
    const ids = [...(reuse ?? [])];
    for (let i = ids.length; i < count; i += 1) {
      const c = await send("POST", "/api/library/components", {
        name: `bench-${suffix}-${shape}-${count}-${String(i).padStart(3, "0")}`, image: { registry: "registry.avatar.io/bench", tag: "1.0" },
        type: types[i % types.length], resources: { gpu_type: "V100", gpu_count: 1 + (i % 4), memory: "16GB" },
      });
      ids.push(c.component_id);
    }
    const app = await send("POST", "/api/builder/apps", { name: `canvas-bench-${shape}-${count}-${suffix}` });
    const task = await send("POST", `/api/builder/apps/${app.app_id}/tasks`, { name: `bench-${count}` });
    for (const id of ids) await send("POST", `/api/builder/apps/${app.app_id}/tasks/${task.task_id}/components`, { component_id: id });
    // acyclic: an edge always runs from a lower index to a higher one. "layers": a pipeline of stages
    // (count/10 stages of 10, each edge to one of the next two stages); "chain": all in one line plus
    // random far links (count layers deep: the worst case for a layered layout)
    const pairs = new Set();
    let seed = 7;
    const random = (m) => {
      seed = (seed * 48271) % 2147483647;
      return seed % m;
    };
    const most = Math.min(edges, (count * (count - 1)) / 2);
    if (shape === "chain" || count < 20) {
      for (let i = 0; i + 1 < count && pairs.size < edges; i += 1) pairs.add(`${i}>${i + 1}`);
      while (pairs.size < most) {
        const a = random(count);
        const b = random(count);
        if (a !== b) pairs.add(`${Math.min(a, b)}>${Math.max(a, b)}`);
      }
    } else {
      const width = 10;
      const stages = Math.ceil(count / width);
      while (pairs.size < most) {
        const stage = random(stages - 1);
        const next = Math.min(stages - 1, stage + 1 + random(2));
        const a = stage * width + random(width);
        const b = next * width + random(width);
        if (a < count && b < count) pairs.add(`${a}>${b}`);
      }
    }
    for (const pair of pairs) {
      const [a, b] = pair.split(">").map(Number);
      await send("POST", `/api/builder/apps/${app.app_id}/tasks/${task.task_id}/edges`, { from: ids[a], to: ids[b] });
    }
    return { appId: app.app_id, taskId: task.task_id, ids, edges: pairs.size };
  }, { count, edges, suffix, shape, reuse });
  return made;
}

/** p95 of requestAnimationFrame deltas while the mouse drags a node across the canvas */
async function dragFrames(page, nodeId) {
  const box = await page.locator(`.react-flow__node[data-id="${nodeId}"]`).boundingBox();
  await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (now) => {
      window.__frames.push(now - last);
      last = now;
      if (window.__framesOn) requestAnimationFrame(tick);
    };
    window.__framesOn = true;
    requestAnimationFrame(tick);
  });
  const x = box.x + box.width / 2;
  const y = box.y + 12;
  await page.mouse.move(x, y);
  await page.mouse.down();
  for (let i = 1; i <= 120; i += 1) await page.mouse.move(x + Math.sin(i / 10) * 220, y + (i % 40) * 4);
  await page.mouse.up();
  const frames = await page.evaluate(() => {
    window.__framesOn = false;
    return window.__frames.slice(2); // the first deltas measure the set-up, not the drag
  });
  const sorted = [...frames].sort((a, b) => a - b);
  const pick = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 10) / 10;
  return { frames: frames.length, p50_ms: pick(0.5), p95_ms: pick(0.95), max_ms: pick(1) };
}

async function openCanvas(page, appId, taskId, count) {
  await page.goto(`${BASE}/builder/${appId}/tasks/${taskId}`);
  await page.waitForFunction((n) => document.querySelectorAll(".react-flow__node").length === n, count, { timeout: 60_000 });
}

/** two tidies of the open canvas: the first loads elkjs's chunk, the second is the layout alone */
async function tidyTwice(page) {
  const layouts = [];
  for (let i = 1; i <= 2; i += 1) {
    await page.getByTestId("tidy").click();
    await page.locator(`[data-testid=layout-ms][data-count="${i}"]`).waitFor({ timeout: 60_000 });
    layouts.push(Number(await page.getByTestId("layout-ms").getAttribute("data-ms")));
  }
  return layouts;
}

async function benchmark(page, other) {
  const small = await bigTask(page, 1, 0);
  const big = await bigTask(page, BENCH_COMPONENTS, BENCH_EDGES);
  // the same library components in a second App, built by another user (the rate limit is per user)
  const chain = await bigTask(other, BENCH_COMPONENTS, BENCH_EDGES, "chain", big.ids);
  await openCanvas(page, small.appId, small.taskId, 1);
  const baseline = await dragFrames(page, small.ids[0]);
  const began = Date.now();
  await openCanvas(page, big.appId, big.taskId, BENCH_COMPONENTS);
  const firstRenderMs = Date.now() - began;
  const layouts = await tidyTwice(page);
  const loaded = await dragFrames(page, big.ids[Math.floor(BENCH_COMPONENTS / 2)]);
  await shot(page, "builder-07-bench-canvas");
  await openCanvas(other, chain.appId, chain.taskId, BENCH_COMPONENTS);
  const chainLayouts = await tidyTwice(other);
  return {
    components: BENCH_COMPONENTS,
    edges: big.edges,
    canvas_open_ms: firstRenderMs,
    layout_ms: layouts[1],
    layout_first_ms_with_elk_load: layouts[0],
    shape: "a pipeline: 20 stages of 10 components, each edge to one of the next two stages",
    chain_layout_ms: chainLayouts[1],
    chain_shape: "one chain through all components plus random far links (200 layers deep)",
    drag: loaded,
    baseline_one_component_drag: baseline,
    machine: "headless Chromium (Debian), software rendering, 2 CPU cores shared",
  };
}

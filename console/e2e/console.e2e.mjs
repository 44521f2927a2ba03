// The main flow: a training request followed through approval, the loop test's reward chart, the queue
// and the model download, all updated live from the SSE stream; a viewer changes nothing.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, APP_ID, SMALL_APP_ID, ARTIFACTS_DIR, CHROMIUM.
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, BASE, ADMIN_PASSWORD, call, finish, launch, logIn, required, shot, step, suffix } from "./lib.mjs";

const APP_ID = required("APP_ID");
const SMALL_APP_ID = required("SMALL_APP_ID");
const SAGA_MS = Number(process.env.SAGA_TIMEOUT_MS ?? 120_000);
const RESEARCHER = { id: `res-${suffix}`, password: `researcher password ${suffix}` };
const VIEWER = { id: `view-${suffix}`, password: `viewer password ${suffix}` };

const browser = await launch();

let workload;
const waiting = [];
try {
  let admin;
  await step("the login screen, in Korean, says how to log in", async () => {
    const context = await browser.newContext({ locale: "ko-KR" });
    const page = await context.newPage();
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login/);
    await page.getByRole("heading", { name: "로그인" }).waitFor();
    await shot(page, "01-login");
    await page.getByLabel("사용자 ID").fill("admin");
    await page.getByLabel("비밀번호").fill("not the password");
    await page.getByRole("button", { name: "로그인" }).click();
    await page.getByRole("alert").filter({ hasText: "wrong user or password" }).waitFor();
    await context.close();
  });

  await step("the admin logs in and the user menu shows the role", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    const role = admin.getByTestId("role");
    if ((await role.getAttribute("data-role")) !== "admin" || (await role.textContent()) !== "관리자") {
      throw new Error(`role shown: ${await role.textContent()}`);
    }
    await admin.locator('[data-live="open"]').waitFor();
  });

  await step("the admin creates a researcher and a viewer through the API with the CSRF header", async () => {
    for (const [who, role] of [[RESEARCHER, "researcher"], [VIEWER, "viewer"]]) {
      const answer = await call(admin, "POST", "/api/users", {
        id: who.id, display_name: `E2E ${role}`, role, kind: "person", password: who.password,
      });
      if (answer.status !== 201) throw new Error(`creating ${who.id}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  });

  let researcher;
  await step("the researcher submits a training request and sees it in the history", async () => {
    researcher = await logIn(browser, "researcher", RESEARCHER.id, RESEARCHER.password);
    const answer = await call(researcher, "POST", "/api/trainer/training-requests", {
      app_id: APP_ID, name: `console e2e ${suffix}`, priority: "high", training_config: { episodes: 10 },
    });
    if (answer.status !== 202) throw new Error(`submit: ${answer.status} ${JSON.stringify(answer.body)}`);
    workload = answer.body.workload_id;
    await researcher.getByRole("link", { name: "학습 이력", exact: true }).click();
    await researcher.locator(`[data-workload="${workload}"]`).waitFor();
    await shot(researcher, "02-trainer-history");
  });

  await step("its detail shows the saga timeline, growing live (approval.required arrives without a reload)", async () => {
    await researcher.getByRole("link", { name: `console e2e ${suffix}` }).click();
    await researcher.getByTestId("timeline").locator('[data-type="training.requested"]').waitFor();
    await researcher.getByTestId("timeline").locator('[data-type="approval.required"]').waitFor({ timeout: 30_000 });
    await shot(researcher, "03-trainer-detail");
  });

  await step("the admin's approval screen: approve disabled with 테스트 필요 until the loop test passed", async () => {
    await admin.getByRole("link", { name: "승인", exact: true }).click();
    await admin.locator(`[data-testid="approvals-table"] [data-workload="${workload}"]`).waitFor();
    await shot(admin, "04-approvals");
    await admin.getByRole("link", { name: `console e2e ${suffix}` }).click();
    const approve = admin.getByRole("button", { name: "승인", exact: true });
    await approve.waitFor();
    if (!(await approve.isDisabled())) throw new Error("approve is enabled before the loop test");
    const warning = await admin.getByTestId("test-required").textContent();
    if (!warning.includes("테스트 필요")) throw new Error(`warning: ${warning}`);
    const reasons = await admin.getByTestId("reasons").textContent();
    if (!reasons.trim()) throw new Error("no reason why approval is needed");
    const reject = admin.getByRole("button", { name: "반려" });
    if (!(await reject.isDisabled())) throw new Error("reject is enabled without a comment");
    await shot(admin, "05-approval-detail-test-required");
    // the spec the request was made from, one click away
    await admin.getByRole("link", { name: "스펙과 워크플로우 보기" }).click();
    await admin.locator('[data-testid="spec-versions"] tr[aria-current="true"]').waitFor();
    const spec = await admin.getByTestId("spec-json").textContent();
    if (!spec.includes(APP_ID)) throw new Error("the approval's spec link shows another App's spec");
    await admin.goBack();
    await admin.getByRole("button", { name: "최소 실행 테스트 실행" }).waitFor();
  });

  await step("the admin runs the loop test and the reward chart appears live", async () => {
    await admin.getByRole("button", { name: "최소 실행 테스트 실행" }).click();
    await admin.getByTestId("reward-chart").waitFor({ timeout: SAGA_MS });
    await admin.getByTestId("reward-chart").locator("svg").first().waitFor();
    const points = Number(await admin.getByTestId("reward-chart").getAttribute("data-points"));
    if (points < 3) throw new Error(`chart has ${points} points`);
    await admin.locator('[data-testid="loop-test-status"] [data-status="passed"]').waitFor({ timeout: SAGA_MS });
    await shot(admin, "06-approval-loop-test-chart");
  });

  await step("approve is enabled now; the admin approves", async () => {
    const approve = admin.getByRole("button", { name: "승인", exact: true });
    await approve.click();
    await admin.locator('[data-testid="approval-status"] [data-status="approved"]').waitFor();
  });

  await step("the queue screen shows it run live, and the researcher's timeline reaches 완료 (모델 저장)", async () => {
    await admin.getByRole("link", { name: "실행 대기열", exact: true }).click();
    await admin.getByTestId("queue-table").waitFor();
    const row = admin.locator(`[data-testid="recent-table"] [data-workload="${workload}"]`);
    await row.waitFor({ timeout: SAGA_MS });
    await row.locator('[data-status="running"], [data-status="completed"]').waitFor({ timeout: SAGA_MS });
    await shot(admin, "07-queue");
    await researcher.getByTestId("detail-status").locator('[data-status="model stored"]').waitFor({ timeout: SAGA_MS });
    await researcher.getByTestId("timeline").locator('[data-type="model.stored"]').waitFor();
    await shot(researcher, "08-trainer-detail-done");
  });

  await step("the models screen lists the model and downloads it", async () => {
    await admin.getByRole("link", { name: "모델", exact: true }).click();
    const row = admin.locator(`[data-testid="models-table"] [data-workload="${workload}"]`);
    await row.waitFor({ timeout: SAGA_MS });
    await shot(admin, "09-models");
    const [download] = await Promise.all([
      admin.waitForEvent("download"),
      row.getByRole("link", { name: /다운로드/ }).click(),
    ]);
    const failure = await download.failure();
    if (failure) throw new Error(`download failed: ${failure}`);
    const size = statSync(await download.path()).size;
    if (size < 1024) throw new Error(`downloaded ${size} bytes`);
    console.log(`     downloaded ${download.suggestedFilename()}: ${size} bytes`);
    await row.getByRole("link", { name: /보기/ }).click();
    await admin.getByRole("heading", { name: /모델/ }).waitFor();
    await shot(admin, "10-model-detail");
  });

  await step("with every node drained, two small requests wait in the queue; the admin reorders them and changes a priority", async () => {
    const nodes = await call(admin, "GET", "/api/scheduler/nodes");
    for (const node of nodes.body.items) {
      const drained = await call(admin, "PATCH", `/api/scheduler/nodes/${node.name}`, { status: "Drain" });
      if (drained.status !== 200) throw new Error(`drain ${node.name}: ${drained.status} ${JSON.stringify(drained.body)}`);
    }
    await admin.getByRole("link", { name: "실행 대기열", exact: true }).click();
    for (const name of ["wait-1", "wait-2"]) {
      const answer = await call(researcher, "POST", "/api/trainer/training-requests", {
        app_id: SMALL_APP_ID, name: `${name} ${suffix}`, priority: "normal",
        resources: { gpu_type: "V100", gpu_count: 1, memory: "32GB", max_runtime: "10m" }, training_config: { episodes: 5 },
      });
      if (answer.status !== 202) throw new Error(`submit ${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
      waiting.push(answer.body.workload_id);
    }
    const order = () => admin.locator('[data-testid="queue-table"] tbody tr[data-workload]').evaluateAll(
      (rows) => rows.map((row) => row.getAttribute("data-workload")));
    const expectOrder = async (wanted, what) => {
      const deadline = Date.now() + 30_000;
      let seen;
      while (Date.now() < deadline) {
        seen = (await order()).filter((id) => wanted.includes(id));
        if (JSON.stringify(seen) === JSON.stringify(wanted)) return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      throw new Error(`${what}: queue order ${JSON.stringify(seen)}, wanted ${JSON.stringify(wanted)}`);
    };
    await expectOrder(waiting, "both arrive live");
    await shot(admin, "07b-queue-waiting");
    await admin.getByRole("button", { name: `wait-2 ${suffix} 위로 이동` }).click();
    await expectOrder([waiting[1], waiting[0]], "after moving wait-2 up");
    await admin.getByLabel(`wait-1 ${suffix} 우선순위`).selectOption("high");
    await expectOrder([waiting[0], waiting[1]], "after raising wait-1 to high");
    await shot(admin, "07c-queue-reordered");
  });

  await step("the researcher cancels one; it leaves the admin's queue live; re-activated nodes run the other", async () => {
    await researcher.goto(`${BASE}/trainer/${waiting[1]}`);
    await researcher.getByRole("button", { name: "취소" }).click();
    await researcher.getByTestId("detail-status").locator('[data-status="cancelled"]').waitFor({ timeout: 30_000 });
    await admin.locator(`[data-testid="queue-table"] [data-workload="${waiting[1]}"]`).waitFor({ state: "detached", timeout: 30_000 });
    const nodes = await call(admin, "GET", "/api/scheduler/nodes");
    for (const node of nodes.body.items) await call(admin, "PATCH", `/api/scheduler/nodes/${node.name}`, { status: "Active" });
    await admin.locator(`[data-testid="queue-table"] [data-workload="${waiting[0]}"]`).waitFor({ state: "detached", timeout: SAGA_MS });
  });

  await step("a lost live connection shows a banner; it goes once the stream resumes (the gateway restarted)", async () => {
    // the test runner stops the gateway when it sees the request file and restarts it, then writes the done file
    writeFileSync(join(ARTIFACTS, "outage.request"), workload);
    await admin.getByTestId("live-lost").waitFor({ timeout: 30_000 });
    await shot(admin, "11-live-lost");
    const deadline = Date.now() + 60_000;
    while (!existsSync(join(ARTIFACTS, "outage.done"))) {
      if (Date.now() > deadline) throw new Error("the gateway was not restarted");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await admin.getByTestId("live-lost").waitFor({ state: "detached", timeout: 30_000 });
    await admin.locator('[data-live="open"]').waitFor();
  });

  await step("a viewer sees the screens and can change nothing (every button disabled, with the reason)", async () => {
    const viewer = await logIn(browser, "viewer", VIEWER.id, VIEWER.password);
    if ((await viewer.getByTestId("role").getAttribute("data-role")) !== "viewer") throw new Error("not a viewer");
    for (const path of [`/approvals/${workload}`, `/trainer/${workload}`, "/queue"]) {
      await viewer.goto(`${BASE}${path}`);
      await viewer.locator("main h1").first().waitFor();
      await viewer.waitForLoadState("networkidle");
      const enabled = await viewer.locator("main button:not([disabled]), main select:not([disabled]), main textarea:not([disabled])").count();
      if (enabled) throw new Error(`${path}: ${enabled} enabled controls for a viewer`);
    }
    await viewer.goto(`${BASE}/approvals/${workload}`);
    await viewer.getByTestId("reason").first().waitFor();
    await viewer.getByTestId("reward-chart").locator("svg").first().waitFor();
    await shot(viewer, "12-viewer-approval");
    const refused = await call(viewer, "POST", `/api/approval/approvals/${workload}/loop-test`, {});
    if (refused.status !== 403) throw new Error(`a viewer's loop test answered ${refused.status}`);
  });

  await step("English is the second language", async () => {
    await admin.getByLabel("언어").selectOption("en");
    await admin.getByRole("link", { name: "Queue" }).waitFor();
    await admin.getByRole("link", { name: "Queue" }).click();
    await admin.getByRole("heading", { name: "Queue" }).waitFor();
    await shot(admin, "13-queue-english");
    await admin.getByLabel("Language").selectOption("ko");
  });
} catch {
  // reported by step()
} finally {
  await finish(browser);
}

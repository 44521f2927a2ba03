// Models (MD-03, MD-05, MD-06) in the browser: two trainings of one App give two versions; a researcher
// points a new alias at the first, moves it to the second, rolls it back, and compares the two versions'
// metrics; a viewer sees the aliases and their history but can change nothing.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, SMALL_APP_ID, ARTIFACTS_DIR, CHROMIUM.
import { ADMIN_PASSWORD, BASE, call, createUsers, finish, launch, logIn, required, shot, step, suffix } from "./lib.mjs";

const APP_ID = required("SMALL_APP_ID");
const SAGA_MS = Number(process.env.SAGA_TIMEOUT_MS ?? 120_000);
const ALIAS = `prod-${suffix}`;

async function storedModelOf(page, workload) {
  const deadline = Date.now() + SAGA_MS;
  while (Date.now() < deadline) {
    const answer = await call(page, "GET", `/api/models/apps/${APP_ID}/models`);
    const model = answer.body?.versions?.find((v) => v.workload_id === workload && v.status === "stored");
    if (model) return model;
    await page.waitForTimeout(500);
  }
  throw new Error(`no stored model for ${workload} within ${SAGA_MS} ms`);
}

const aliasRow = (page) => page.locator(`[data-testid="aliases"] tr[data-alias="${ALIAS}"]`);

const browser = await launch();
try {
  let admin, researcher, users, first, second;
  await step("two trainings of one App each leave a stored model version", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    users = await createUsers(admin, ["researcher", "viewer"]);
    researcher = await logIn(browser, "researcher", users.researcher.id, users.researcher.password);
    const workloads = [];
    for (const episodes of [3, 6]) {
      const answer = await call(researcher, "POST", "/api/trainer/training-requests", {
        app_id: APP_ID, name: `models e2e ${episodes} ${suffix}`, priority: "normal", training_config: { episodes },
      });
      if (answer.status !== 202) throw new Error(`submit: ${answer.status} ${JSON.stringify(answer.body)}`);
      workloads.push(answer.body.workload_id);
    }
    first = await storedModelOf(researcher, workloads[0]);
    second = await storedModelOf(researcher, workloads[1]);
  });

  await step("the model screen shows the source spec, run logs and the App's versions", async () => {
    await researcher.goto(`${BASE}/models/${first.model_id}`);
    await researcher.getByRole("heading", { name: `모델 ${first.name}` }).waitFor();
    await researcher.locator(`[data-testid="versions"] tr[data-model="${second.model_id}"]`).waitFor();
    await researcher.getByTestId("run-logs").getByRole("link", { name: "로그 열기" }).first().waitFor();
    await researcher.getByText("펼쳐 보기").first().click();
    const spec = await researcher.getByTestId("model-spec").textContent();
    if (!spec.includes(APP_ID)) throw new Error("the source spec does not name its App");
    await shot(researcher, "models-01-detail");
  });

  await step("a new alias points at the first version; it has nothing to roll back to", async () => {
    const form = researcher.getByRole("form", { name: "별칭 지정" });
    await form.getByLabel("별칭 이름").fill(ALIAS);
    await form.getByRole("button", { name: "별칭 지정" }).click();
    await aliasRow(researcher).and(researcher.locator(`[data-model="${first.model_id}"]`)).waitFor();
    if (!(await aliasRow(researcher).getByRole("button", { name: `${ALIAS} 별칭 롤백` }).isDisabled())) {
      throw new Error("rollback offered for an alias's first move");
    }
  });

  await step("on the second version, the alias moves here; its history keeps both moves", async () => {
    await researcher.goto(`${BASE}/models/${second.model_id}`);
    await aliasRow(researcher).getByRole("button", { name: `${ALIAS} 별칭을 v${second.version}(으)로 이동` }).click();
    await aliasRow(researcher).and(researcher.locator(`[data-model="${second.model_id}"]`)).waitFor();
    await aliasRow(researcher).getByText("이력 2건").click();
    await researcher.getByTestId(`history-${ALIAS}`).locator("li").nth(1).waitFor();
    await shot(researcher, "models-02-aliases");
  });

  await step("roll back returns it to the first version, and the move is marked undone", async () => {
    await aliasRow(researcher).getByRole("button", { name: `${ALIAS} 별칭 롤백` }).click();
    await aliasRow(researcher).and(researcher.locator(`[data-model="${first.model_id}"]`)).waitFor();
    await aliasRow(researcher).getByText("이력 3건").waitFor(); // still open from the step before
    await researcher.getByTestId(`history-${ALIAS}`).locator('li[data-action="rollback"]').waitFor();
    await researcher.getByTestId(`history-${ALIAS}`).locator('li[data-undone="true"]').waitFor();
  });

  await step("the two versions compared: a metrics table with the best marked, and the bars", async () => {
    await researcher.getByRole("checkbox", { name: `v${first.version} 비교에 포함` }).check();
    await researcher.getByRole("link", { name: "선택한 2개 비교" }).click();
    await researcher.getByRole("heading", { name: "모델 지표 비교" }).waitFor();
    const table = researcher.getByTestId("compare-table");
    await table.locator("tbody tr[data-metric]").first().waitFor();
    await researcher.getByTestId("metric-bars").locator("svg").first().waitFor();
    await shot(researcher, "models-03-compare");
  });

  await step("a viewer sees the alias and its history, with every control disabled and the reason", async () => {
    const viewer = await logIn(browser, "viewer", users.viewer.id, users.viewer.password);
    await viewer.goto(`${BASE}/models/${first.model_id}`);
    await aliasRow(viewer).waitFor();
    await viewer.waitForLoadState("networkidle");
    const enabled = await viewer.locator('[data-testid="aliases"] button:not([disabled])').count();
    if (enabled) throw new Error(`${enabled} alias controls enabled for a viewer`);
    await aliasRow(viewer).getByText("뷰어는 조회만 할 수 있습니다.").first().waitFor();
    const refused = await call(viewer, "POST", `/api/models/apps/${APP_ID}/aliases/${ALIAS}/rollback`);
    if (refused.status !== 403) throw new Error(`a viewer's rollback answered ${refused.status}`);
  });
} catch {
  // reported by step()
} finally {
  await finish(browser);
}

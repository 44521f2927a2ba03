// Models (MD-03, MD-05, MD-06) in the browser: two trainings of one App give two versions; an admin points
// a new alias at the first, moves it to the second and rolls it back (the App's aliases follow its owner:
// only the owner, `kim` who built it through tests/e2e's Demo, or an admin moves them); a researcher who
// does not own the App sees the controls disabled naming the owner, and the service's 403 naming the owner
// when the console cannot ask the builder; the researcher compares the two versions' metrics; a viewer sees
// the aliases and their history but can change nothing.
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
  let admin, researcher, users, first, second, owner;
  await step("two trainings of one App each leave a stored model version", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    users = await createUsers(admin, ["researcher", "viewer"]);
    researcher = await logIn(browser, "researcher", users.researcher.id, users.researcher.password);
    owner = (await call(admin, "GET", `/api/builder/apps/${APP_ID}`)).body?.owner;
    if (!owner || owner === users.researcher.id) throw new Error(`the App's owner is ${owner}, not someone else`);
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

  await step("an admin points a new alias at the first version; it has nothing to roll back to", async () => {
    await admin.goto(`${BASE}/models/${first.model_id}`);
    const form = admin.getByRole("form", { name: "별칭 지정" });
    await form.getByLabel("별칭 이름").fill(ALIAS);
    await form.getByRole("button", { name: "별칭 지정" }).click();
    await aliasRow(admin).and(admin.locator(`[data-model="${first.model_id}"]`)).waitFor();
    if (!(await aliasRow(admin).getByRole("button", { name: `${ALIAS} 별칭 롤백` }).isDisabled())) {
      throw new Error("rollback offered for an alias's first move");
    }
  });

  await step("on the second version, the alias moves here; its history keeps both moves", async () => {
    await admin.goto(`${BASE}/models/${second.model_id}`);
    await aliasRow(admin).getByRole("button", { name: `${ALIAS} 별칭을 v${second.version}(으)로 이동` }).click();
    await aliasRow(admin).and(admin.locator(`[data-model="${second.model_id}"]`)).waitFor();
    await aliasRow(admin).getByText("이력 2건").click();
    await admin.getByTestId(`history-${ALIAS}`).locator("li").nth(1).waitFor();
    await shot(admin, "models-02-aliases");
  });

  await step("roll back returns it to the first version, and the move is marked undone", async () => {
    await aliasRow(admin).getByRole("button", { name: `${ALIAS} 별칭 롤백` }).click();
    await aliasRow(admin).and(admin.locator(`[data-model="${first.model_id}"]`)).waitFor();
    await aliasRow(admin).getByText("이력 3건").waitFor(); // still open from the step before
    await admin.getByTestId(`history-${ALIAS}`).locator('li[data-action="rollback"]').waitFor();
    await admin.getByTestId(`history-${ALIAS}`).locator('li[data-undone="true"]').waitFor();
  });

  await step("a researcher who does not own the App may not move its alias: the owner is named, nothing moves", async () => {
    const moveHere = () => aliasRow(researcher).getByRole("button", { name: `${ALIAS} 별칭을 v${second.version}(으)로 이동` });
    await researcher.goto(`${BASE}/models/${second.model_id}`);
    await aliasRow(researcher).getByText(`소유자(${owner}) 또는 관리자만 할 수 있습니다.`).first().waitFor();
    if (!(await moveHere().isDisabled())) throw new Error("the move is offered to a researcher who does not own the App");
    // when the console cannot ask the builder who owns the App, the controls stay on and the service decides
    const builder = `**/api/builder/apps/${APP_ID}`;
    await researcher.route(builder, (route) => route.fulfill({
      status: 503, contentType: "application/json", body: JSON.stringify({ detail: "builder unavailable" }) }));
    try {
      await researcher.reload();
      await moveHere().click(); // waits until it is enabled
      const refusal = `app ${APP_ID} belongs to '${owner}'; only its owner or an admin may change it`;
      await researcher.getByRole("alert").filter({ hasText: `(403): ${refusal}` }).waitFor();
      await shot(researcher, "models-04-refused");
    } finally {
      await researcher.unroute(builder);
    }
    const still = await call(researcher, "GET", `/api/models/apps/${APP_ID}/aliases/${ALIAS}`);
    if (still.body?.model_id !== first.model_id) throw new Error(`the refused move moved the alias: ${still.body?.model_id}`);
    const refused = await call(researcher, "POST", `/api/models/apps/${APP_ID}/aliases/${ALIAS}/rollback`);
    if (refused.status !== 403 || !String(refused.body?.detail).includes(`belongs to '${owner}'`)) {
      throw new Error(`a stranger's rollback answered ${refused.status} ${JSON.stringify(refused.body)}`);
    }
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

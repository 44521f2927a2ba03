// The library and the trainer's submit and compare screens in a real browser: a researcher registers a
// component (a refused memory value shown at its field), edits it into a new version; a second researcher
// sees edit disabled with the reason and the service refuses too; a researcher submits a training from
// /trainer/new (defaults from the App, the service's messages per field) and lands on its detail; finished
// trainings are compared with charts; a viewer can change nothing.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, APP_ID (needs approval), SMALL_APP_ID
// (auto-approved), ARTIFACTS_DIR, CHROMIUM; SAGA_TIMEOUT_MS optional.
import { ADMIN_PASSWORD, BASE, accessible, call, createUsers, finish, launch, logIn, required, shot, step, suffix } from "./lib.mjs";

const APP_ID = required("APP_ID");
const SMALL_APP_ID = required("SMALL_APP_ID");
const SAGA_MS = Number(process.env.SAGA_TIMEOUT_MS ?? 240_000);
const COMPONENT = `e2e-evaluator-${suffix}`;

const browser = await launch();

async function expectDisabled(locator, what) {
  await locator.waitFor();
  if (!(await locator.isDisabled())) throw new Error(`${what} is enabled`);
}

/** the text appears (the screen may still be refetching): waits, then says what was shown instead */
async function expectText(locator, text, what, timeout = 15_000) {
  await locator.waitFor();
  try {
    await locator.filter({ hasText: text }).first().waitFor({ timeout });
  } catch {
    throw new Error(`${what}: expected "${text}", shown "${(await locator.first().textContent()) ?? ""}"`);
  }
}

/** a training's status through the API, until it is `status` (the screens are checked elsewhere) */
async function until(page, workloadId, statuses, timeout = SAGA_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const answer = await call(page, "GET", `/api/trainer/training-requests/${workloadId}`);
    if (statuses.includes(answer.body?.status)) return answer.body;
    if (["failed", "rejected", "cancelled", "refused"].includes(answer.body?.status)) {
      throw new Error(`${workloadId} ended ${answer.body.status}: ${answer.body.outcome}`);
    }
    if (Date.now() > deadline) throw new Error(`${workloadId} is still ${answer.body?.status} after ${timeout} ms`);
    await page.waitForTimeout(1000);
  }
}

async function submitThroughApi(page, body) {
  const answer = await call(page, "POST", "/api/trainer/training-requests", body);
  if (answer.status !== 202) throw new Error(`submit: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.workload_id;
}

try {
  let admin, owner, other, viewer, users, componentId, submitted;
  const trainings = [];

  await step("the admin creates two researchers and a viewer", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    users = await createUsers(admin, ["researcher", "viewer"]);
    users.second = { id: `res2-${suffix}`, password: `second researcher ${suffix}` };
    const answer = await call(admin, "POST", "/api/users", {
      id: users.second.id, display_name: "E2E second researcher", role: "researcher", kind: "person", password: users.second.password,
    });
    if (answer.status !== 201) throw new Error(`creating ${users.second.id}: ${answer.status}`);
  });

  await step("a researcher registers a component; a bad memory value shows the service's message at its field", async () => {
    owner = await logIn(browser, "owner", users.researcher.id, users.researcher.password);
    await owner.getByRole("link", { name: "라이브러리", exact: true }).click();
    await owner.getByRole("heading", { name: "컴포넌트 라이브러리" }).waitFor();
    await owner.getByRole("button", { name: "컴포넌트 등록" }).click();
    await owner.getByRole("heading", { name: "컴포넌트 등록" }).waitFor();
    await owner.getByLabel("이름", { exact: true }).fill(COMPONENT);
    await owner.getByLabel("유형", { exact: true }).selectOption("evaluator");
    await owner.getByLabel("설명", { exact: true }).fill("first description");
    await owner.getByLabel("레지스트리").fill("registry.avatar.io/e2e-evaluator");
    await owner.getByLabel("태그", { exact: true }).fill("1.0");
    await owner.getByLabel("GPU 유형").fill("A100");
    await owner.getByLabel("GPU 수", { exact: true }).fill("1");
    await owner.getByLabel("메모리", { exact: true }).fill("lots");
    await owner.getByLabel("실행 명령").fill("python\n-m\ncomponents.probe");
    await owner.getByLabel("파라미터").fill('{"threshold": 0.5}');
    await owner.getByRole("button", { name: "등록", exact: true }).click();
    const memory = owner.getByLabel("메모리", { exact: true });
    await owner.locator('[aria-invalid="true"]').first().waitFor();
    if ((await memory.getAttribute("aria-invalid")) !== "true") throw new Error("memory is not marked invalid");
    await expectText(owner.getByTestId("field-error").first(), "invalid memory value 'lots'", "the memory field's message");
    await memory.fill("16GB");
    await owner.getByRole("button", { name: "등록", exact: true }).click();
    await owner.waitForURL(/\/library\/CL-/);
    componentId = decodeURIComponent(new URL(owner.url()).pathname.split("/").pop());
    await expectText(owner.getByTestId("current-version"), "1.0.0", "the first version");
  });

  await step("the library list finds it by search and by type", async () => {
    await owner.getByRole("link", { name: /목록으로/ }).click();
    await owner.getByRole("searchbox", { name: "검색" }).fill(COMPONENT);
    await owner.locator(`[data-testid="library-table"] [data-component="${componentId}"]`).waitFor();
    await owner.getByLabel("유형", { exact: true }).selectOption("evaluator");
    await owner.waitForURL(/type=evaluator/);
    await owner.locator(`[data-testid="library-table"] [data-component="${componentId}"]`).waitFor();
    await owner.getByLabel("유형", { exact: true }).selectOption("trainer");
    await owner.locator('[data-testid="library-table"]').getByText("항목이 없습니다.").waitFor();
    await owner.getByLabel("유형", { exact: true }).selectOption("");
    await owner.getByRole("searchbox", { name: "검색" }).fill("");
    await owner.locator(`[data-testid="library-table"] [data-component="${componentId}"]`).waitFor();
    await shot(owner, "library-01-list");
    await accessible(owner, "the library list");
  });

  await step("its owner edits it: a new version, the old one kept in the history", async () => {
    await owner.getByRole("link", { name: COMPONENT }).click();
    await owner.getByRole("button", { name: "수정", exact: true }).click();
    await owner.getByRole("heading", { name: `컴포넌트 수정: ${COMPONENT}` }).waitFor();
    await owner.getByLabel("설명", { exact: true }).fill("second description, more precise");
    await owner.getByLabel("태그", { exact: true }).fill("1.1");
    await owner.getByRole("button", { name: "새 버전으로 저장" }).click();
    await owner.waitForURL(new RegExp(`/library/${componentId}$`));
    await expectText(owner.getByTestId("current-version"), "1.0.1", "the new version");
    await expectText(owner.getByTestId("component-description"), "second description", "the description");
    await owner.locator('[data-testid="versions"] [data-version="1.0.0"]').waitFor();
    await expectText(owner.locator('[data-testid="versions"] [data-version="1.0.1"]'), "설명", "what changed");
    await owner.getByRole("button", { name: "1.0.0 보기" }).click();
    await expectText(owner.getByTestId("version-snapshot"), '"tag": "1.0"', "the old version as published");
    await shot(owner, "library-02-detail");
    await accessible(owner, "the component detail");
  });

  await step("a second researcher sees edit disabled with the reason, and the service refuses the change", async () => {
    other = await logIn(browser, "other", users.second.id, users.second.password);
    await other.goto(`${BASE}/library/${componentId}`);
    const edit = other.getByRole("button", { name: "수정", exact: true });
    await expectDisabled(edit, "edit for another researcher");
    await expectText(other.getByTestId("reason").first(), `소유자(${users.researcher.id}) 또는 관리자만`, "the reason");
    await other.goto(`${BASE}/library/${componentId}/edit`);
    await expectText(other.getByTestId("form-disabled-reason"), `소유자(${users.researcher.id})`, "the form's reason");
    await expectDisabled(other.getByLabel("설명", { exact: true }), "the description field");
    const refused = await call(other, "PATCH", `/api/library/components/${componentId}`, { description: "mine now" });
    if (refused.status !== 403) throw new Error(`the service answered ${refused.status} to another researcher`);
  });

  await step("a researcher submits a training from /trainer/new: defaults from the App, the service's messages per field", async () => {
    await owner.getByRole("link", { name: "학습 이력", exact: true }).click();
    await owner.getByRole("link", { name: "학습 요청", exact: true }).click();
    await owner.waitForURL(/\/trainer\/new$/);
    await owner.getByLabel("완료된 App").selectOption(SMALL_APP_ID);
    await expectText(owner.getByTestId("resources-source"), "가장 큰 컴포넌트 data-loader", "where the resources came from");
    const episodes = owner.getByLabel("에피소드 수 (episodes)");
    if (!(await episodes.inputValue())) throw new Error("episodes are not filled from the App");
    if ((await owner.getByLabel("GPU 수", { exact: true }).inputValue()) !== "1") throw new Error("GPU count is not the largest component's");
    if ((await owner.getByLabel("감가율 (gamma)").inputValue()) !== "0.99") throw new Error("gamma is not the §4.2 default");
    await owner.getByLabel("요청 이름").fill(`library e2e A ${suffix}`);
    await owner.getByLabel("우선순위").selectOption("high");
    await shot(owner, "training-01-submit");
    await accessible(owner, "the submit form");
    // out of range: the service's own messages, each at its field
    await episodes.fill("0");
    await owner.getByLabel("감가율 (gamma)").fill("2");
    await owner.getByRole("button", { name: "학습 요청 제출" }).click();
    await owner.locator('[aria-invalid="true"]').nth(1).waitFor();
    if ((await episodes.getAttribute("aria-invalid")) !== "true") throw new Error("episodes are not marked invalid");
    await expectText(owner.locator(".field-invalid").filter({ has: episodes }), "greater than or equal to 1", "episodes' message");
    await expectText(owner.locator(".field-invalid").filter({ has: owner.getByLabel("감가율 (gamma)") }), "less than or equal to 1", "gamma's message");
    // below what the largest component needs: the trainer's domain message at the GPU count
    await episodes.fill("10");
    await owner.getByLabel("감가율 (gamma)").fill("0.95");
    await owner.getByLabel("GPU 수", { exact: true }).fill("0");
    await owner.getByRole("button", { name: "학습 요청 제출" }).click();
    await expectText(owner.locator(".field-invalid").filter({ has: owner.getByLabel("GPU 수", { exact: true }) }), "is below the 1 GPUs", "the envelope message");
    await owner.getByLabel("GPU 수", { exact: true }).fill("1");
    await owner.getByRole("button", { name: "학습 요청 제출" }).click();
    await owner.waitForURL(/\/trainer\/WL-/);
    submitted = decodeURIComponent(new URL(owner.url()).pathname.split("/").pop());
    await owner.getByTestId("timeline").locator('[data-type="training.requested"]').waitFor();
    const sent = await call(owner, "GET", `/api/trainer/training-requests/${submitted}`);
    const config = sent.body.training_config;
    if (config.episodes !== 10 || config.gamma !== 0.95 || sent.body.priority !== "high") {
      throw new Error(`what was submitted: ${JSON.stringify({ config, priority: sent.body.priority })}`);
    }
    trainings.push(submitted);
  });

  await step("more trainings: the small App once more, the approval-needing App twice (loop test, approve)", async () => {
    trainings.push(await submitThroughApi(owner, {
      app_id: SMALL_APP_ID, name: `library e2e B ${suffix}`, training_config: { episodes: 20, learning_rate: 0.01 },
    }));
    for (const [label, rate] of [["C", 0.001], ["D", 0.05]]) {
      const id = await submitThroughApi(owner, {
        app_id: APP_ID, name: `library e2e ${label} ${suffix}`, training_config: { episodes: 30, learning_rate: rate },
      });
      await until(owner, id, ["awaiting approval"], 60_000);
      const started = await call(admin, "POST", `/api/approval/approvals/${id}/loop-test`);
      if (started.status >= 300) throw new Error(`loop test of ${id}: ${started.status} ${JSON.stringify(started.body)}`);
      trainings.push(id);
    }
    for (const id of trainings.slice(2)) {
      const deadline = Date.now() + SAGA_MS;
      for (;;) {
        const approval = await call(admin, "GET", `/api/approval/approvals/${id}`);
        if (approval.body?.loop_test?.status === "passed") break;
        if (approval.body?.loop_test?.status === "failed") throw new Error(`loop test of ${id} failed`);
        if (Date.now() > deadline) throw new Error(`loop test of ${id} did not pass`);
        await admin.waitForTimeout(1000);
      }
      const approved = await call(admin, "POST", `/api/approval/approvals/${id}/approve`);
      if (approved.status >= 300) throw new Error(`approve ${id}: ${approved.status} ${JSON.stringify(approved.body)}`);
    }
    for (const id of trainings) await until(owner, id, ["model stored", "completed", "completed (model not stored yet)"]);
  });

  await step("the history's checkboxes open the comparison: reward curves overlaid, a metric as bars, the metrics table", async () => {
    await owner.goto(`${BASE}/trainer`);
    const compare = owner.getByRole("button", { name: /선택한 학습 비교/ });
    await expectDisabled(compare, "compare with nothing ticked");
    for (const id of trainings) {
      await owner.locator(`[data-workload="${id}"] input[type="checkbox"]`).check();
    }
    await compare.click();
    await owner.waitForURL(/\/trainer\/compare\?ids=/);
    await owner.getByRole("heading", { name: "학습 비교" }).waitFor();
    for (const id of trainings) await owner.locator(`[data-testid="compare-requests"] [data-workload="${id}"]`).waitFor();
    const curves = owner.getByTestId("reward-curves-chart");
    await curves.locator("svg").waitFor({ timeout: 30_000 });
    if ((await curves.locator("svg path").count()) < 10) throw new Error("the reward curves chart drew nothing");
    if ((await curves.getAttribute("data-series")) !== "2") throw new Error(`curves drawn: ${await curves.getAttribute("data-series")}`);
    await expectText(owner.getByTestId("no-curve"), `library e2e A ${suffix}`, "the trainings without a curve");
    await owner.getByTestId("metric-bar-chart").locator("svg").waitFor();
    await owner.locator('[data-testid="compare-metrics"] [data-metric="rl-agent.final_reward"]').waitFor();
    await owner.getByLabel("그래프로 볼 지표").selectOption("rl-agent.final_reward");
    await owner.locator('[data-testid="metric-bar-chart"][data-metric="rl-agent.final_reward"]').waitFor();
    await shot(owner, "training-02-compare");
    await accessible(owner, "the comparison");
  });

  await step("a viewer can change nothing: register, edit and submit disabled with the reason; the services refuse", async () => {
    viewer = await logIn(browser, "viewer", users.viewer.id, users.viewer.password);
    await viewer.goto(`${BASE}/library`);
    await expectDisabled(viewer.getByRole("button", { name: "컴포넌트 등록" }), "register for a viewer");
    await expectText(viewer.getByTestId("reason").first(), "뷰어는 조회만", "the viewer's reason");
    await viewer.goto(`${BASE}/library/${componentId}`);
    await expectDisabled(viewer.getByRole("button", { name: "수정", exact: true }), "edit for a viewer");
    await viewer.goto(`${BASE}/trainer/new?app=${SMALL_APP_ID}`);
    await expectText(viewer.getByTestId("form-disabled-reason"), "뷰어는 조회만", "the submit form's reason");
    await expectDisabled(viewer.getByRole("button", { name: "학습 요청 제출" }), "submit for a viewer");
    await viewer.goto(`${BASE}/trainer/compare?ids=${trainings.join(",")}`);
    await viewer.getByTestId("metric-bar-chart").waitFor();
    const register = await call(viewer, "POST", "/api/library/components", {
      name: "viewer's", image: { registry: "r", tag: "1" }, resources: { gpu_type: "A100", gpu_count: 0, memory: "1GB" },
    });
    const submit = await call(viewer, "POST", "/api/trainer/training-requests", { app_id: SMALL_APP_ID });
    if (register.status !== 403 || submit.status !== 403) throw new Error(`the services answered ${register.status}, ${submit.status}`);
  });
} finally {
  await finish(browser);
}

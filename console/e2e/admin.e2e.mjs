// The resources and admin areas in a real browser: an admin reads the §7.2 table, drains a node and
// activates it again, sees the usage chart; creates a user, edits and re-roles them, deactivates them (their
// open session, in a second browser, is refused within seconds); creates a token (shown once), uses and
// revokes it; filters the audit log and downloads its CSV; changes a threshold (and puts it back). A
// researcher and a viewer see the admin controls disabled or hidden, with the reason.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, ARTIFACTS_DIR, CHROMIUM.
import { readFileSync } from "node:fs";
import { BASE, ADMIN_PASSWORD, accessible, call, createUsers, finish, launch, logIn, pages, shot, step, suffix } from "./lib.mjs";

const SOON_MS = 10_000; // "within seconds": a deactivated user's open session

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** a call with an API token, from outside any browser (as another system would make it) */
async function withToken(token, path) {
  const response = await fetch(`${BASE}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  return response.status;
}

/** a minimal CSV reader (quoted cells, doubled quotes, line breaks inside quotes) for checking the export */
function parseCsv(text) {
  const rows = [];
  let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

const browser = await launch();
let thresholdsBefore = null;
let admin;
try {
  let people;
  await step("the admin logs in and makes a researcher and a viewer", async () => {
    admin = await logIn(browser, "admin", "admin", ADMIN_PASSWORD);
    admin.on("dialog", (dialog) => void dialog.accept()); // every confirm() of this script is meant
    await admin.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
    people = await createUsers(admin, ["researcher", "viewer"]);
  });

  // ------------------------------------------------------------------ resources (RS-01…RS-06)
  await step("the §7.2 table shows total / requested / used / idle with their shares, as the scheduler answers", async () => {
    await admin.getByRole("link", { name: "리소스", exact: true }).click();
    await admin.waitForURL(/\/resources$/);
    await admin.getByRole("heading", { name: "전체 리소스 현황" }).waitFor();
    const table = admin.getByTestId("cluster-table");
    await table.waitFor();
    const { body } = await call(admin, "GET", "/api/scheduler/resources");
    for (const gpu of body.gpus) {
      const row = table.locator(`tr[data-resource="gpu:${gpu.gpu_type}"]`);
      expect((await row.locator("th").textContent()) === `GPU (${gpu.gpu_type})`, `row of ${gpu.gpu_type}`);
      expect((await row.locator("td").first().textContent()) === String(gpu.total), `total of ${gpu.gpu_type}`);
      const share = Math.round((gpu.allocated / gpu.total) * 1000) / 10;
      const requested = await row.locator('[data-col="requested"]').textContent();
      expect(requested === `${gpu.allocated} (${share}%)`, `requested of ${gpu.gpu_type}: ${requested}`);
      const idle = await row.locator('[data-col="idle"]').textContent();
      expect(idle.startsWith(String(gpu.total - gpu.allocated)), `idle of ${gpu.gpu_type}: ${idle}`);
      if (gpu.used === null) {
        expect((await row.locator('[data-col="used"]').textContent()) === "측정 안 됨", "unmeasured GPU use is said so");
      }
    }
    for (const key of ["memory", "cpu"]) await table.locator(`tr[data-resource="${key}"]`).waitFor();
    await admin.getByRole("heading", { name: "노드 상태" }).waitFor();
    await admin.getByRole("heading", { name: "워크로드별 자원 사용량" }).waitFor();
    await shot(admin, "resources-01-table");
    await accessible(admin, "resources");
  });

  let node;
  await step("the admin drains a node, sees it Drain, then activates it", async () => {
    const nodes = admin.getByTestId("nodes-table");
    const first = nodes.locator("tr[data-node]").first();
    node = await first.getAttribute("data-node");
    expect((await first.getAttribute("data-status")) === "Active", `${node} starts Active`);
    await admin.getByRole("button", { name: `${node} 드레인` }).click();
    await nodes.locator(`tr[data-node="${node}"][data-status="Drain"]`).waitFor();
    await admin.getByRole("status").filter({ hasText: `${node}: Drain` }).waitFor();
    const { body } = await call(admin, "GET", "/api/scheduler/nodes");
    expect(body.items.find((n) => n.name === node).status === "Drain", "the scheduler has it drained");
    await admin.getByRole("button", { name: `${node} 활성화` }).click();
    await nodes.locator(`tr[data-node="${node}"][data-status="Active"]`).waitFor();
  });

  await step("the usage-over-time chart draws the scheduler's samples", async () => {
    const chart = admin.getByTestId("usage-chart");
    await chart.waitFor();
    await admin.locator('[data-testid="usage-chart"][data-sampled="true"]').waitFor({ timeout: 60_000 });
    await chart.locator("svg").first().waitFor();
    expect(Number(await chart.getAttribute("data-points")) > 1, "the window has buckets");
    await admin.getByLabel("자원", { exact: true }).selectOption("memory");
    await admin.getByText("사용량 추이 차트 · 메모리").first().waitFor();
    await admin.getByLabel("자원", { exact: true }).selectOption("gpu");
    await chart.scrollIntoViewIfNeeded();
    await shot(admin, "resources-02-chart");
  });

  // ------------------------------------------------------------------ users (AU-02)
  const member = { id: `e2e-u-${suffix}`, password: `member password ${suffix}` };
  let memberPage;
  await step("the admin creates a user from the users screen, and that user logs in", async () => {
    await admin.getByRole("link", { name: "관리", exact: true }).click();
    await admin.waitForURL(/\/admin\/users$/);
    await admin.getByText("사용자 만들기").first().click();
    const form = admin.getByTestId("create-user");
    await form.getByLabel("ID").fill(member.id);
    await form.getByLabel("이름").fill(`E2E member ${suffix}`);
    await form.getByLabel("이메일").fill(`${member.id}@example.com`);
    await form.getByLabel("역할").selectOption("researcher");
    await form.getByLabel("비밀번호 (로컬 로그인)").fill(member.password);
    await form.getByRole("button", { name: "사용자 만들기" }).click();
    await admin.getByTestId("users-message").filter({ hasText: `${member.id}을(를) 만들었습니다.` }).waitFor();
    await admin.locator(`tr[data-user="${member.id}"]`).waitFor();
    memberPage = await logIn(browser, "member", member.id, member.password);
    expect((await memberPage.getByTestId("role").getAttribute("data-role")) === "researcher", "the member is a researcher");
    await memberPage.locator('[data-live="open"]').waitFor();
  });

  await step("the admin edits the user's name and changes their role", async () => {
    await admin.getByRole("button", { name: `${member.id} 편집` }).click();
    const editor = admin.getByRole("form", { name: `${member.id} 편집` });
    await editor.getByLabel("이름").fill(`E2E member renamed ${suffix}`);
    await editor.getByRole("button", { name: "저장" }).click();
    await admin.getByTestId("users-message").filter({ hasText: `${member.id}: 저장했습니다.` }).waitFor();
    const row = admin.locator(`tr[data-user="${member.id}"]`);
    await row.getByText(`E2E member renamed ${suffix}`).waitFor();
    await admin.getByLabel(`${member.id} 역할`).selectOption("viewer");
    await admin.getByTestId("users-message").filter({ hasText: "역할을 뷰어(으)로 바꿨습니다." }).waitFor();
    const { body } = await call(admin, "GET", `/api/users/${member.id}`);
    expect(body.role === "viewer" && body.display_name === `E2E member renamed ${suffix}`, JSON.stringify(body));
    // the admin's own row: no role change or deactivation of oneself, and it says why
    const own = admin.locator('tr[data-user="admin"]');
    if (await own.count()) {
      expect(await own.getByRole("button", { name: "admin 비활성화" }).isDisabled(), "an admin cannot deactivate themselves here");
      await own.getByTestId("reason").filter({ hasText: "자기 자신에게는 할 수 없습니다" }).waitFor();
    }
    await shot(admin, "admin-01-users");
    await accessible(admin, "users");
  });

  await step("the admin deactivates the user and their open session is refused within seconds", async () => {
    await admin.getByRole("button", { name: `${member.id} 비활성화` }).click();
    await admin.locator(`tr[data-user="${member.id}"][data-active="false"]`).waitFor();
    const deadline = Date.now() + SOON_MS;
    let status = 200;
    while (Date.now() < deadline && status !== 401) {
      status = (await call(memberPage, "GET", "/api/auth/me")).status;
      if (status !== 401) await memberPage.waitForTimeout(250);
    }
    expect(status === 401, `the deactivated user's session still answers ${status} after ${SOON_MS} ms`);
    // and the console sends them to the login screen (the live stream's reset, or the next request)
    await memberPage.goto(`${BASE}/queue`);
    await memberPage.waitForURL(/\/login\?next=/, { timeout: SOON_MS });
    await memberPage.context().close();
    delete pages.member;
    await admin.getByRole("button", { name: `${member.id} 다시 활성화` }).click();
    await admin.locator(`tr[data-user="${member.id}"][data-active="true"]`).waitFor();
  });

  // ------------------------------------------------------------------ API tokens
  const tokenName = `e2e-token-${suffix}`;
  await step("the admin creates a token: its secret is shown once, copies, works; then revokes it", async () => {
    await admin.getByRole("navigation", { name: "관리 메뉴" }).getByRole("link", { name: "API 토큰" }).click();
    await admin.waitForURL(/\/admin\/tokens$/);
    const form = admin.getByTestId("create-token");
    await form.getByLabel("이름").fill(tokenName);
    await form.getByLabel("역할").selectOption("viewer");
    await form.getByLabel("유효 기간 (일)").fill("7");
    await form.getByRole("button", { name: "토큰 만들기" }).click();
    const box = admin.getByTestId("created-token");
    await box.waitFor();
    const secret = await admin.getByTestId("token-secret").inputValue();
    expect(secret.startsWith("avt_"), `the secret: ${secret.slice(0, 6)}…`);
    await box.getByRole("button", { name: "복사", exact: true }).click();
    await box.getByRole("status").filter({ hasText: /복사했습니다|복사하지 못했습니다/ }).waitFor();
    const row = admin.locator("tr[data-token]").filter({ hasText: tokenName });
    await row.waitFor();
    expect(!(await admin.getByTestId("tokens-table").textContent()).includes(secret), "the list never shows a secret");
    expect((await withToken(secret, "/api/auth/me")) === 200, "the new token works");
    await shot(admin, "admin-02-tokens");
    await accessible(admin, "tokens");
    await box.getByRole("button", { name: "복사했습니다, 숨기기" }).click();
    await box.waitFor({ state: "detached" });
    expect(!(await admin.content()).includes(secret), "once hidden, the secret is gone from the page");
    await admin.getByRole("button", { name: `${tokenName} 폐기` }).click();
    await admin.getByRole("status").filter({ hasText: `${tokenName}을(를) 폐기했습니다.` }).waitFor();
    await row.waitFor({ state: "detached" });
    const deadline = Date.now() + SOON_MS;
    let status = 200;
    while (Date.now() < deadline && (status = await withToken(secret, "/api/auth/me")) !== 401) await admin.waitForTimeout(250);
    expect(status === 401, `the revoked token still answers ${status}`);
    await admin.getByLabel("폐기된 토큰도 보기").check();
    await admin.locator('tr[data-token][data-revoked="true"]').filter({ hasText: tokenName }).waitFor();
  });

  // ------------------------------------------------------------------ audit log (AU-04)
  await step("the admin filters the audit log to the user's changes and downloads them as CSV", async () => {
    await admin.getByRole("navigation", { name: "관리 메뉴" }).getByRole("link", { name: "감사 로그" }).click();
    await admin.waitForURL(/\/admin\/audit/);
    const filters = admin.getByTestId("audit-filters");
    await filters.getByLabel("사용자").fill("admin");
    await filters.getByLabel("작업 (접두어, 예: approval.)").fill("user.");
    await filters.getByLabel("대상 ID").fill(member.id);
    const hourAgo = new Date(Date.now() - 3600_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await filters.getByLabel("시작 (이후)").fill(hourAgo);
    await filters.getByRole("button", { name: "적용" }).click();
    await admin.waitForURL(new RegExp(`target_id=${member.id}`));
    const table = admin.getByTestId("audit-table");
    for (const action of ["user.create", "user.update", "user.role", "user.deactivate", "user.reactivate"]) {
      await table.locator(`tr[data-action="${action}"]`).first().waitFor();
    }
    const actions = await table.locator("tr[data-action]").evaluateAll((rows) => rows.map((r) => r.dataset.action));
    expect(actions.every((a) => a.startsWith("user.")), `only user. actions: ${actions}`);
    await shot(admin, "admin-03-audit");
    await accessible(admin, "audit");
    const [download] = await Promise.all([admin.waitForEvent("download"), admin.getByTestId("audit-csv").click()]);
    const rows = parseCsv(readFileSync(await download.path(), "utf8")).filter((r) => r.length > 1);
    const [header, ...records] = rows;
    const col = (name) => header.indexOf(name);
    expect(col("action") >= 0 && col("user") >= 0 && col("target_id") >= 0, `CSV header: ${header}`);
    expect(records.length === actions.length, `CSV has ${records.length} rows, the screen ${actions.length}`);
    expect(records.every((r) => r[col("target_id")] === member.id && r[col("user")] === "admin"), "CSV rows match the filter");
    const csvActions = new Set(records.map((r) => r[col("action")]));
    for (const action of ["user.create", "user.role", "user.deactivate"]) expect(csvActions.has(action), `CSV has ${action}`);
  });

  // ------------------------------------------------------------------ approval thresholds
  await step("the admin changes an approval threshold and puts it back", async () => {
    await admin.getByRole("navigation", { name: "관리 메뉴" }).getByRole("link", { name: "승인 임계치" }).click();
    await admin.waitForURL(/\/admin\/thresholds$/);
    thresholdsBefore = (await call(admin, "GET", "/api/approval/thresholds")).body;
    const gpu = admin.getByLabel("GPU 수");
    await gpu.fill(String(thresholdsBefore.gpu_count + 1));
    await admin.getByRole("button", { name: "저장" }).click();
    await admin.getByRole("status").filter({ hasText: `저장했습니다: GPU ${thresholdsBefore.gpu_count + 1}개` }).waitFor();
    expect((await call(admin, "GET", "/api/approval/thresholds")).body.gpu_count === thresholdsBefore.gpu_count + 1, "saved");
    await accessible(admin, "thresholds");
    await gpu.fill(String(thresholdsBefore.gpu_count));
    await admin.getByRole("button", { name: "저장" }).click();
    await admin.getByRole("status").filter({ hasText: `저장했습니다: GPU ${thresholdsBefore.gpu_count}개` }).waitFor();
    thresholdsBefore = null; // restored
  });

  // ------------------------------------------------------------------ a researcher and a viewer
  for (const role of ["researcher", "viewer"]) {
    await step(`a ${role} sees no admin menu, "관리자만" at /admin, and node controls disabled with the reason`, async () => {
      const page = await logIn(browser, role, people[role].id, people[role].password);
      expect((await page.getByRole("navigation", { name: "주 메뉴" }).getByRole("link", { name: "관리", exact: true }).count()) === 0,
             "no admin link in the menu");
      await page.goto(`${BASE}/admin`);
      await page.getByTestId("admin-only").filter({ hasText: "관리자만 볼 수 있는 화면입니다." }).waitFor();
      await page.goto(`${BASE}/admin/audit`);
      await page.getByTestId("admin-only").waitFor();
      await page.goto(`${BASE}/resources`);
      const drain = page.getByRole("button", { name: `${node} 드레인` });
      await drain.waitFor();
      expect(await drain.isDisabled(), "drain is disabled");
      await page.locator(`tr[data-node="${node}"]`).getByTestId("reason").filter({ hasText: "관리자만 할 수 있습니다." }).waitFor();
      const refused = await call(page, "PATCH", `/api/scheduler/nodes/${node}`, { status: "Drain" });
      expect(refused.status === 403, `the scheduler refuses a ${role}'s drain: ${refused.status}`);
      // their own tokens, from the user menu
      await page.getByRole("region", { name: "사용자 메뉴" }).getByRole("link", { name: "내 API 토큰" }).click();
      await page.getByRole("heading", { name: "내 API 토큰" }).waitFor();
      expect((await page.getByLabel("토큰 주인").count()) === 0, "no owner choice: only their own tokens");
      const name = `${role}-token-${suffix}`;
      await page.getByTestId("create-token").getByLabel("이름").fill(name);
      await page.getByRole("button", { name: "토큰 만들기" }).click();
      await page.getByTestId("created-token").waitFor();
      await page.locator("tr[data-token]").filter({ hasText: name }).waitFor();
      if (role === "viewer") await shot(page, "admin-04-viewer-tokens");
      await page.context().close();
      delete pages[role];
    });
  }
} finally {
  if (thresholdsBefore && admin) {
    await call(admin, "PUT", "/api/approval/thresholds", { gpu_count: thresholdsBefore.gpu_count, memory: thresholdsBefore.memory }).catch(() => {});
  }
  await finish(browser);
}

// What every browser script shares: its environment, numbered steps that screenshot every open page on a
// failure, logging in through the login screen, and JSON calls made from inside a page as the console makes them.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export const BASE = required("GATEWAY_URL").replace(/\/$/, "");
export const ADMIN_PASSWORD = required("ADMIN_PASSWORD");
export const ARTIFACTS = process.env.ARTIFACTS_DIR ?? ".run/console-artifacts";
export const suffix = Math.random().toString(36).slice(2, 8);
mkdirSync(ARTIFACTS, { recursive: true });

/** the pages open in this script, by name: screenshotted when a step fails */
export const pages = {};
const tally = { passed: 0, failed: 0 };

export async function step(title, action) {
  const began = Date.now();
  try {
    await action();
    tally.passed += 1;
    console.log(`ok   ${title} (${((Date.now() - began) / 1000).toFixed(1)}s)`);
  } catch (error) {
    tally.failed += 1;
    console.log(`FAIL ${title}: ${error?.stack ?? error}`);
    for (const [name, page] of Object.entries(pages)) {
      await page.screenshot({ path: join(ARTIFACTS, `failure-${name}.png`), fullPage: true }).catch(() => {});
    }
    throw error;
  }
}

export const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** a JSON call from inside the page, as the console makes it: the session cookie and the CSRF cookie's token */
export async function call(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const token = document.cookie.split("; ").find((c) => c.startsWith("avatar_csrf="))?.split("=")[1];
      const response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": decodeURIComponent(token ?? "") },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json().catch(() => null) };
    },
    { method, path, body },
  );
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
}

/** a new browser context logged in through the login screen; lands on /queue */
export async function logIn(browser, name, user, password) {
  const context = await browser.newContext({ acceptDownloads: true, locale: "ko-KR", viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  pages[name] = page;
  page.on("pageerror", (error) => console.log(`[${name}] page error: ${error.message}`));
  await page.goto(`${BASE}/queue`);
  await page.waitForURL(/\/login\?next=/);
  await page.getByLabel("사용자 ID").fill(user);
  await page.getByLabel("비밀번호").fill(password);
  await page.getByRole("button", { name: "로그인" }).click();
  await page.waitForURL(/\/queue$/);
  await page.getByTestId("user").waitFor();
  return page;
}

/** creates users of the given roles through the API as `admin` (a logged-in page); answers {role: {id, password}} */
export async function createUsers(admin, roles) {
  const made = {};
  for (const role of roles) {
    const who = { id: `${role.slice(0, 4)}-${suffix}`, password: `${role} password ${suffix}` };
    const answer = await call(admin, "POST", "/api/users", {
      id: who.id, display_name: `E2E ${role}`, role, kind: "person", password: who.password,
    });
    if (answer.status !== 201) throw new Error(`creating ${who.id}: ${answer.status} ${JSON.stringify(answer.body)}`);
    made[role] = who;
  }
  return made;
}

/** the last line the runner (tests/e2e/test_console.py) reads; exits 1 when a step failed */
export async function finish(browser) {
  await browser?.close().catch(() => {});
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exit(tally.failed ? 1 : 0);
}

/** axe-core's WCAG 2.1 A/AA violations on what the page shows now */
export async function axeViolations(page) {
  const { AxeBuilder } = await import("@axe-core/playwright");
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  return result.violations;
}

export const seriousOnes = (violations) => violations.filter((v) => v.impact === "serious" || v.impact === "critical");

export function describeViolations(violations) {
  return violations.map((v) => `${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
}

/** no serious or critical axe-core violation on the page as it is now (a screen with its data) */
export async function accessible(page, what) {
  const bad = seriousOnes(await axeViolations(page));
  if (bad.length) throw new Error(`${what}: ${describeViolations(bad).join("; ")}`);
}

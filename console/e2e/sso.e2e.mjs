// Single sign-on in the browser: the login screen offers the configured IdP (a real oidc-provider-mock
// process the test started); the person picks their account at the IdP's own page and comes back logged
// in, on the screen they asked for, with the role their IdP group maps to.
// Env (tests/e2e/test_console.py): GATEWAY_URL, ADMIN_PASSWORD, OIDC_SUB, ARTIFACTS_DIR, CHROMIUM.
import { BASE, finish, launch, pages, required, shot, step } from "./lib.mjs";

const SUB = required("OIDC_SUB");

const browser = await launch();
try {
  await step("the login screen offers the single sign-on next to the local login", async () => {
    const context = await browser.newContext({ locale: "ko-KR", viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    pages.sso = page;
    await page.goto(`${BASE}/approvals`);
    await page.waitForURL(/\/login\?next=/);
    await page.getByRole("link", { name: "Example SSO(으)로 로그인" }).waitFor();
    await shot(page, "sso-01-login");
  });

  await step("at the IdP the person picks their account and comes back logged in where they were going", async () => {
    const page = pages.sso;
    await page.getByRole("link", { name: "Example SSO(으)로 로그인" }).click();
    await page.waitForURL((url) => !url.href.startsWith(BASE)); // the IdP's own page
    await page.locator('input[name="sub"]').fill(SUB);
    await page.locator('form button[type="submit"], form input[type="submit"]').first().click();
    await page.waitForURL(`${BASE}/approvals`);
    await page.getByTestId("user").waitFor();
    const role = page.getByTestId("role");
    if ((await role.getAttribute("data-role")) !== "researcher") {
      throw new Error(`role after single sign-on: ${await role.getAttribute("data-role")}`);
    }
    await page.locator('[data-live="open"]').waitFor();
    await shot(page, "sso-02-logged-in");
  });
} catch {
  // reported by step()
} finally {
  await finish(browser);
}

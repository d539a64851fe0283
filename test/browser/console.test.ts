import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { type Json, register } from "../e2e/harness.js";
import { screenshot, useConsole, watchedContext } from "./browser.js";

/**
 * The console in a real Chromium against a real gateway (src/main.ts, real sandboxed
 * interpreters): every request to a host other than the gateway is blocked and recorded.
 */

const TOKEN = "browser-test-token-0123456789";
const ui = useConsole(TOKEN);

const heading = (page: Page) => page.locator("h2").first();

describe("the web console", { timeout: 90_000 }, () => {
  it("signs in: the session lives in an HttpOnly SameSite=Strict cookie that script cannot read, and nothing is stored", async () => {
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    const cookies = await ui.desktop.context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: "fngw_session", httpOnly: true, sameSite: "Strict", path: "/" });
    expect(cookies[0]!.value).not.toContain(TOKEN);
    const seen = await page.evaluate(() => ({
      cookie: document.cookie,
      local: Object.keys(localStorage).length,
      session: Object.keys(sessionStorage).length,
    }));
    expect(seen).toEqual({ cookie: "", local: 0, session: 0 });
    await page.close();
  });

  it("deploys a function, invokes it, shows its row live with its stdout, diffs two versions and rolls back", async () => {
    const page = await ui.desktop.context.newPage();
    page.on("dialog", (dialog) => void dialog.accept());
    await ui.signIn(page);
    await page.click("text=New function");
    // Both runtimes' templates are highlighted as their language.
    await page.selectOption("select[name=runtime]", "node");
    await expect.poll(() => page.locator("[data-testid=code-editor] .language-javascript .token.keyword").count()).toBeGreaterThan(0);
    await page.selectOption("select[name=runtime]", "python");
    await expect.poll(() => page.locator("[data-testid=code-editor] .language-python .token.keyword").count()).toBeGreaterThan(0);
    await page.fill("input[name=name]", "greet");
    await page.check("input[name=public]");
    await page.click("button:has-text('Deploy')");
    await page.waitForURL(/#\/fn\/greet$/);
    await expect.poll(() => heading(page).textContent()).toBe("greet v1");
    // Highlighted Python in the editor.
    await expect.poll(() => page.locator("[data-testid=code-editor] .token.keyword").count()).toBeGreaterThan(0);
    const v1 = (await (await ui.call("/api/functions/greet")).json()) as Json;
    expect(v1).toMatchObject({ runtime: "python", version: 1, public: true });

    // A second tab follows the log while the first one invokes.
    const log = await ui.desktop.context.newPage();
    await log.goto("/console/#/fn/greet/log");
    await log.getByText("No invocations yet").waitFor();
    await page.click("a[role=tab]:has-text('invoke')");
    await page.fill("input[name=path]", "?name=ada");
    await page.click("button:has-text('Send')");
    await expect.poll(() => page.locator("[data-testid=invoke-status]").textContent(), { timeout: 20_000 }).toBe("200");
    expect(JSON.parse((await page.locator("[data-testid=invoke-body]").textContent()) ?? "")).toEqual({ hello: "ada" });

    const row = log.locator("[data-testid=invocations] tr[data-id]");
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    expect(await row.textContent()).toContain("ok");
    await row.click();
    await expect.poll(() => log.locator("[data-testid=stdout]").textContent()).toBe("called\n");
    await screenshot(log, "desktop-log");
    await log.close();

    // A second version, edited in the editor.
    await page.click("a[role=tab]:has-text('code')");
    await page.click("[data-testid=code-editor]");
    await page.keyboard.press("Control+End");
    await page.keyboard.type("# second version", { delay: 40 }); // about a fast typist's pace
    await page.click("button:has-text('Save as v2')");
    await expect.poll(() => heading(page).textContent()).toBe("greet v2");
    const v2 = (await (await ui.call("/api/functions/greet")).json()) as Json;
    expect(v2.code).toBe(`${v1.code}# second version`);

    await page.click("a[role=tab]:has-text('versions')");
    await expect.poll(() => page.locator("[data-testid=diff] .added").textContent()).toBe("+ # second version\n");
    await screenshot(page, "desktop-versions");
    await page.click("button[data-version='1']");
    await expect.poll(() => heading(page).textContent()).toBe("greet v3");
    const v3 = (await (await ui.call("/api/functions/greet")).json()) as Json;
    expect(v3.code).toBe(v1.code);

    await page.click("a[role=tab]:has-text('metrics')");
    await expect.poll(() => page.locator("[data-testid=stats]").textContent()).toMatch(/^1 invocations/);
    await page.locator("[data-testid=chart] canvas").waitFor();
    // The legend names each series before any hover.
    expect(await page.locator("[data-testid=chart] .u-legend").textContent()).toMatch(/p50.*p95.*ok.*failed/);
    await screenshot(page, "desktop-metrics");
    // A window with nothing in it says so instead of drawing flat lines.
    await register(ui.call, { name: "idle", runtime: "python", code: "def handler(request):\n    return 1\n" });
    await page.goto("/console/#/fn/idle/metrics");
    await expect.poll(() => page.locator("[data-testid=chart-empty]").textContent()).toBe("No invocations in the last 1h.");
    expect(await page.locator("[data-testid=chart] canvas").count()).toBe(0);
    await page.goto("/console/#/fn/greet");
    await page.click("text=Functions");
    await expect
      .poll(() => page.locator("table.functions tbody tr:has-text('greet')").textContent())
      .toMatch(/greet.*python.*v3.*ok.*0\.0% \(0\/1\)/);
    await screenshot(page, "desktop-list");
    await page.close();
  });

  it("a hostile function's page runs in an opaque origin: no cookie, no storage, and the API refuses it", async () => {
    await register(ui.call, { name: "hostile", runtime: "python", public: true, code: HOSTILE });
    await register(ui.call, { name: "echo-cookie", runtime: "python", public: true, code: ECHO_COOKIE });
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    const apiAnswers: { status: number; consoleHeader: boolean }[] = [];
    page.on("response", (res) => {
      // Only what the function's page asked for, not the console's own calls.
      if (new URL(res.url()).pathname.startsWith("/api/") && new URL(res.frame().url()).pathname === "/fn/hostile") {
        apiAnswers.push({ status: res.status(), consoleHeader: res.request().headers()["x-fngw-console"] === "1" });
      }
    });
    const answer = await page.goto("/fn/hostile");
    expect(answer?.headers()["content-security-policy"]).toMatch(/^sandbox allow-scripts/);
    await page.locator("#out[data-done='1']").waitFor();
    const seen = JSON.parse((await page.locator("#out").textContent()) ?? "") as Record<string, string>;
    expect(seen).toEqual({
      origin: "null",
      cookie: "threw SecurityError",
      localStorage: "threw SecurityError",
      sessionStorage: "threw SecurityError",
      plain: "threw TypeError",
      withConsoleHeader: "threw TypeError",
      noCors: "opaque 0 0",
    });
    // What reached the gateway was refused; the request with the console header never got past its preflight.
    expect(apiAnswers.length).toBeGreaterThan(0);
    for (const answered of apiAnswers) expect(answered.status).toBe(401);

    // A same-origin navigation to /fn carries the cookie, but the function never sees it.
    await page.goto("/fn/echo-cookie");
    expect(await page.locator("body").textContent()).toBe("cookie: none");
    await page.close();
  });

  it("deploys a private function with packages and env, follows the install, invokes it without a token, edits, explains a failed install, deletes", async () => {
    const page = await ui.desktop.context.newPage();
    page.on("dialog", (dialog) => void dialog.accept());
    await ui.signIn(page);
    await page.click("text=New function");
    // The name rule stands under the name; a name that breaks it is refused beside the field, before anything is sent.
    await expect.poll(() => page.locator("[data-testid=name-rule]").textContent()).toContain("^[a-z0-9][a-z0-9_-]{0,62}$");
    await page.fill("input[name=name]", "Bad Name");
    await page.click("button:has-text('Deploy')");
    await expect.poll(() => page.locator("[data-error-for=name]").textContent()).toContain("does not follow the rule");
    await page.fill("input[name=name]", "packaged");
    // A limit the gateway refuses is shown beside its field.
    await page.fill("input[name=timeout_ms]", "5");
    await page.locator("[data-testid=code-editor] textarea").fill(PACKAGED);
    await page.fill("textarea[name=packages]", "six==1.16.0");
    await page.click("button:has-text('Add variable')");
    await page.fill("input[name=env-name-0]", "GREETING");
    await page.fill("input[name=env-value-0]", "hello from env");
    await page.click("button:has-text('Deploy')");
    await expect.poll(() => page.locator("[data-error-for=timeout_ms]").textContent()).toMatch(/>=100/);
    await page.fill("input[name=timeout_ms]", "4000");
    await page.click("button:has-text('Deploy')");
    await page.waitForURL(/#\/fn\/packaged\/settings$/);
    const created = (await (await ui.call("/api/functions/packaged")).json()) as Json;
    expect(created).toMatchObject({ version: 1, public: false, timeout_ms: 4000, packages: ["six==1.16.0"], env: { GREETING: "***" } });

    // The packages install while the page watches.
    const state = page.locator("[data-testid=packages-state]").first();
    await expect.poll(() => state.textContent()).toMatch(/queued for install|installing|ready/);
    await screenshot(page, "desktop-packages-installing");
    await expect.poll(() => state.textContent(), { timeout: 240_000, interval: 1000 }).toBe("ready");
    expect(await page.locator("[data-testid=packages]").textContent()).toContain("six==1.16.0 → 1.16.0");

    // Invoked from the console as the signed-in user: no token pasted.
    await page.click("a[role=tab]:has-text('invoke')");
    await page.click("button:has-text('Send')");
    await expect.poll(() => page.locator("[data-testid=invoke-status]").textContent(), { timeout: 20_000 }).toBe("200");
    expect(JSON.parse((await page.locator("[data-testid=invoke-body]").textContent()) ?? "")).toEqual({
      six: "1.16.0",
      greeting: "hello from env",
    });

    // A setting edited: a new version, the env value kept without being shown.
    await page.click("a[role=tab]:has-text('settings')");
    await page.fill("input[name=timeout_ms]", "6000");
    await page.check("input[name=network]");
    await page.click("button:has-text('Save as v2')");
    await expect.poll(() => heading(page).textContent()).toBe("packaged v2");
    const v2 = (await (await ui.call("/api/functions/packaged")).json()) as Json;
    expect(v2).toMatchObject({ version: 2, timeout_ms: 6000, network: true, env: { GREETING: "***" } });
    await page.click("a[role=tab]:has-text('invoke')");
    await page.click("button:has-text('Send')");
    await expect.poll(() => page.locator("[data-testid=invoke-body]").textContent(), { timeout: 20_000 }).toContain("hello from env");

    // A package list that cannot install: the new version waits, its failure explained; v2 keeps serving.
    await page.click("a[role=tab]:has-text('settings')");
    await page.fill("textarea[name=packages]", "fngw-no-such-package-b7e2");
    await page.click("button:has-text('Save as v3')");
    await expect.poll(() => page.locator("[data-testid=saved-note]").textContent()).toContain("pending");
    await expect.poll(() => page.locator("[data-testid=packages-error]").count(), { timeout: 240_000, interval: 1000 }).toBe(1);
    expect(await page.locator("[data-testid=packages-error]").textContent()).toMatch(/\S/);
    expect(await page.locator("[data-testid=packages]").textContent()).toContain("v3 (pending");
    expect(await page.locator("[data-testid=packages-output]").isVisible()).toBe(true);
    await screenshot(page, "desktop-packages-failed");
    await page.click("text=Functions");
    await expect
      .poll(() => page.locator("table.functions tr:has-text('packaged') [data-testid=problem]").textContent())
      .toContain("v3's packages failed");

    // Deleted, after a confirmation.
    await page.goto("/console/#/fn/packaged/settings");
    await page.click("button:has-text('Delete packaged')");
    await page.waitForURL(/#\/$/);
    expect((await ui.call("/api/functions/packaged")).status).toBe(404);
    await page.close();
  });

  it("says what a 403 lacks: a session whose token cannot invoke the function", async () => {
    await register(ui.call, { name: "locked", runtime: "python", code: "def handler(request):\n    return 'in'\n" });
    const created = (await (
      await ui.call("/api/tokens", { method: "POST", json: { name: "deployer", scopes: ["deploy"] } })
    ).json()) as Json;
    const other = await watchedContext(ui.chromium.browser, ui.server.url, { viewport: { width: 1280, height: 800 } });
    const page = await other.context.newPage();
    await page.goto("/console/#/fn/locked/invoke");
    await page.fill("input[name=token]", created.token);
    await page.click("button[type=submit]");
    await page.click("button:has-text('Send')");
    await expect.poll(() => page.locator("[data-testid=invoke-status]").textContent()).toBe("403");
    expect(await page.locator("[data-testid=invoke-refusal]").textContent()).toContain("it needs the scope invoke:locked");
    await other.context.close();
  });

  it("shows a large output in a box of bounded height that scrolls", async () => {
    await register(ui.call, { name: "chatty", runtime: "python", public: true, code: CHATTY });
    const invoked = await ui.call("/fn/chatty", { token: null });
    expect(invoked.status).toBe(500);
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    await page.goto("/console/#/fn/chatty/log");
    await page.locator("[data-testid=invocations] tr[data-id]").first().click();
    const box = page.locator("[data-testid=stdout]");
    await box.waitFor();
    const size = await box.evaluate((el) => ({ client: el.clientHeight, scroll: el.scrollHeight }));
    expect(size.client).toBeLessThan(500);
    expect(size.scroll).toBeGreaterThan(size.client * 10);
    expect(await page.evaluate(() => document.documentElement.scrollHeight)).toBeLessThan(2500);
    await screenshot(page, "desktop-large-output");
    await page.close();
  });

  it("works on a phone", async () => {
    const phone = await watchedContext(ui.chromium.browser, ui.server.url, {
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const page = await phone.context.newPage();
    await ui.signIn(page);
    await expect.poll(() => page.locator("table.functions").textContent()).toMatch(/^(?!.*…).*greet/); // details loaded
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBe(0);
    await screenshot(page, "phone-list");
    await page.goto("/console/#/fn/greet/log");
    await page.locator("[data-testid=invocations] tr[data-id]").first().click();
    await page.locator("[data-testid=stdout]").waitFor();
    await screenshot(page, "phone-log");
    await page.goto("/console/#/fn/greet/code");
    await page.locator("[data-testid=code-editor] .token.keyword").first().waitFor();
    await screenshot(page, "phone-code");
    // Every tab is in view and opens.
    for (const tab of ["code", "versions", "settings", "invoke", "log", "metrics"]) {
      const link = page.locator(`a[role=tab]:has-text('${tab}')`);
      const box = await link.boundingBox();
      expect(box, tab).not.toBeNull();
      expect(box!.x, tab).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width, tab).toBeLessThanOrEqual(390);
      await link.click();
      await page.waitForURL(new RegExp(`#/fn/greet/${tab}$`));
    }
    await screenshot(page, "phone-metrics");
    await page.goto("/console/#/fn/greet/settings");
    await page.locator("[data-testid=settings-form]").waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBe(0);
    await screenshot(page, "phone-settings");
    expect(phone.foreign).toEqual([]);
    expect(phone.errors).toEqual([]);
    await phone.context.close();
  });

  it("asked for nothing but the gateway, and no console page logged an error (CSP violations included)", () => {
    expect(ui.desktop.foreign).toEqual([]);
    // Chromium logs every 4xx a page's fetch gets; the refusals these tests provoke on purpose are asserted where they happen.
    const provoked = /Failed to load resource: the server responded with a status of 400 \(Bad Request\)$/;
    expect(ui.desktop.errors.filter((error) => error.includes("/console/") && !provoked.test(error))).toEqual([]);
  });
});

/** A page whose script tries to reach what the console holds. */
const HOSTILE = `PAGE = """<!doctype html><html><body><pre id="out">running</pre><script>
(async () => {
  const out = { origin: self.origin };
  const attempt = async (label, action) => {
    try { out[label] = await action(); } catch (e) { out[label] = "threw " + e.name; }
  };
  await attempt("cookie", () => document.cookie);
  await attempt("localStorage", () => String(localStorage.length));
  await attempt("sessionStorage", () => String(sessionStorage.length));
  await attempt("plain", async () => { const r = await fetch("/api/functions", { credentials: "include" }); return r.status + " " + (await r.text()); });
  await attempt("withConsoleHeader", async () => {
    const r = await fetch("/api/functions", { credentials: "include", headers: { "X-Fngw-Console": "1" } });
    return r.status + " " + (await r.text());
  });
  await attempt("noCors", async () => { const r = await fetch("/api/functions", { mode: "no-cors", credentials: "include" }); return r.type + " " + r.status + " " + (await r.text()).length; });
  const el = document.getElementById("out");
  el.textContent = JSON.stringify(out);
  el.dataset.done = "1";
})();
</script></body></html>"""

def handler(request):
    return (PAGE, 200, {"content-type": "text/html; charset=utf-8"})
`;

/** Uses a package and an env variable. */
const PACKAGED = `import os
import six

def handler(request):
    return {"six": six.__version__, "greeting": os.environ["GREETING"]}
`;

/** Prints far more than a screen holds, then fails. */
const CHATTY = `import sys
for i in range(20000):
    print(f"line {i} of a long output")
raise ValueError("the end of a long output")
`;

const ECHO_COOKIE = `def handler(request):
    return "cookie: " + (request.headers.get("cookie") or "none")
`;

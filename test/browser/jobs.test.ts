import { describe, expect, it } from "vitest";
import { type Json, register, waitFor } from "../e2e/harness.js";
import { screenshot, useConsole } from "./browser.js";

// The console's jobs and schedules in a real Chromium against a real gateway.

const TOKEN = "browser-jobs-token-0123456789";
const ui = useConsole(TOKEN, { ASYNC_POLL_MS: "50" });

describe("jobs and schedules in the console", { timeout: 90_000 }, () => {
  it("edits a function's schedules as JSON in the settings form and shows its next five runs", async () => {
    await register(ui.call, { name: "nightly", runtime: "python", code: "def handler(request):\n    return 'ok'\n" });
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    await page.goto("/console/#/fn/nightly/settings");
    const field = page.locator("textarea[name=schedules]");
    await expect.poll(() => field.inputValue()).toBe("[]");
    expect(await field.getAttribute("placeholder")).toContain('"cron"');
    await field.fill('[{"cron": "0 3 * * *", "timezone": "Europe/Berlin"}]');
    await page.click("button:has-text('Save')");
    await expect.poll(async () => ((await (await ui.call("/api/functions/nightly")).json()) as Json).version).toBe(2);
    await page.goto("/console/#/fn/nightly/schedules");
    const runs = page.locator("[data-testid=schedules] .next-runs li");
    await expect.poll(() => runs.count()).toBe(5);
    expect(await runs.first().textContent()).toMatch(/^\d{4}-\d{2}-\d{2}T0[12]:00:00\.000Z$/);
    await screenshot(page, "schedules");

    // A bad expression is refused with the gateway's message beside the field.
    await page.goto("/console/#/fn/nightly/settings");
    await page.locator("textarea[name=schedules]").fill('[{"cron": "61 * * * *"}]');
    await page.click("button:has-text('Save')");
    await expect.poll(() => page.locator("[data-field=schedules]").textContent()).toMatch(/not a valid cron expression/);
    await page.close();
  });

  it("lists a failed job with the dead letters, shows its attempts, and retries it", async () => {
    await register(ui.call, { name: "refuses", runtime: "python", retries: 0, code: "def handler(request):\n    return ('no', 400)\n" });
    const res = await ui.call("/fn/refuses", { method: "POST", headers: { prefer: "respond-async" } });
    const id = res.headers.get("x-invocation-id")!;
    await waitFor(async () => ((await (await ui.call(`/api/invocations/${id}`)).json()) as Json).state === "failed", "the job to fail");
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    await page.goto("/console/#/jobs");
    await page.click("[role=tab]:has-text('Failed')");
    const row = page.locator("[data-testid=jobs] tbody tr", { hasText: "refuses" });
    await expect.poll(() => row.count()).toBe(1);
    await row.locator("td.mono a").click();
    await expect.poll(() => page.locator("[data-testid=job]").textContent()).toContain("Answer 400");
    await row.locator("button:has-text('Retry')").click();
    await waitFor(
      async () => ((await (await ui.call("/api/jobs?function=refuses")).json()) as Json).items.length === 2,
      "the retry to be queued",
    );
    await screenshot(page, "jobs");
    await page.close();
  });

  it("asked for nothing but the gateway, and no console page logged an error (CSP violations included)", () => {
    expect(ui.desktop.foreign).toEqual([]);
    // Chromium logs every 4xx a page's fetch gets; the bad expression refused above is asserted where it happens.
    const provoked = /Failed to load resource: the server responded with a status of 400 \(Bad Request\)$/;
    expect(ui.desktop.errors.filter((error) => !provoked.test(error))).toEqual([]);
  });
});

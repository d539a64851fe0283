import { describe, expect, it } from "vitest";
import { type Json, register } from "../e2e/harness.js";
import { useConsole } from "./browser.js";

/**
 * The console's Invoke tab with a streamed answer, and TypeScript in the editor, in a real
 * Chromium against a real gateway.
 */

const TOKEN = "browser-stream-token-4e81c0b9d2";
const ui = useConsole(TOKEN);

describe("streaming in the console", { timeout: 90_000 }, () => {
  it("shows a streamed answer in the Invoke tab as it arrives, before the function has ended", async () => {
    await register(ui.call, {
      name: "ticks",
      runtime: "python",
      public: true,
      code: `import time
def handler(request):
    for i in range(4):
        yield f"tick {i}\\n"
        time.sleep(0.5)
`,
    });
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    await page.goto("/console/#/fn/ticks/invoke");
    await page.click("button:has-text('Send')");
    const body = page.locator("[data-testid=invoke-body]");
    await expect.poll(() => body.textContent(), { timeout: 20_000 }).toContain("tick 0");
    // The first tick is on screen while the answer is still coming.
    expect(await page.locator("[data-testid=invoke-receiving]").count()).toBe(1);
    expect(await body.textContent()).not.toContain("tick 3");
    await expect.poll(() => body.textContent(), { timeout: 20_000 }).toBe("tick 0\ntick 1\ntick 2\ntick 3\n");
    await expect.poll(() => page.locator("[data-testid=invoke-receiving]").count()).toBe(0);
    expect(ui.desktop.errors).toEqual([]);
    await page.close();
  });

  it("deploys a TypeScript function from the New function form, highlighted as TypeScript", async () => {
    const page = await ui.desktop.context.newPage();
    await ui.signIn(page);
    await page.click("text=New function");
    await page.selectOption("select[name=runtime]", "typescript");
    await expect.poll(() => page.locator("[data-testid=code-editor] .language-typescript .token.keyword").count()).toBeGreaterThan(0);
    await page.fill("input[name=name]", "typed");
    await page.click("button:has-text('Deploy')");
    await page.waitForURL(/#\/fn\/typed$/);
    expect((await (await ui.call("/api/functions/typed")).json()) as Json).toMatchObject({ runtime: "typescript", version: 1 });
    const res = await ui.call("/fn/typed?name=ts");
    expect(await res.json()).toEqual({ hello: "ts" });
    expect(ui.desktop.errors).toEqual([]);
    await page.close();
  });
});

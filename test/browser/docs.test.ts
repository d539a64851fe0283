import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDataDir, type Server, startServer } from "../e2e/harness.js";
import { type Chromium, launchChromium, screenshot, type Watched, watchedContext } from "./browser.js";

/**
 * The API reference at /docs in a real Chromium against a real gateway, with every request to
 * another host blocked and recorded: it must render from what the gateway serves alone.
 */

const TOKEN = "browser-docs-token-0123456789";
let server: Server;
let chromium: Chromium;
let watched: Watched;

beforeAll(async () => {
  server = await startServer({ env: { GATEWAY_TOKEN: TOKEN } });
  chromium = await launchChromium();
  watched = await watchedContext(chromium.browser, server.url, { viewport: { width: 1280, height: 900 } });
}, 180_000);

afterAll(async () => {
  await chromium?.close();
  await server?.stop();
  if (server) removeDataDir(server.dataDir);
});

describe("the API reference at /docs", { timeout: 90_000 }, () => {
  it("renders the API's operations with no request to any other host and no error", async () => {
    const page = await watched.context.newPage();
    const requested: string[] = [];
    page.on("request", (request) => requested.push(new URL(request.url()).pathname));
    await page.goto("/docs");
    await page.getByRole("heading", { name: /fngw/ }).first().waitFor();
    for (const path of ["/api/functions", "/api/invocations", "/api/backup", "/api/tokens"]) {
      await expect
        .poll(() => page.locator(".opblock-summary-path", { hasText: new RegExp(`^${path}$`) }).count(), { message: path })
        .toBeGreaterThan(0);
    }
    // Grouped by tag, in the document's order.
    await expect
      .poll(() => page.locator(".opblock-tag-section h3 .nostyle span, .opblock-tag-section h3 a span").allTextContents())
      .toEqual(["functions", "invoke", "invocations", "jobs", "tokens", "session", "operations"]);
    for (const summary of ["A consistent copy of the database", "The invocation log, newest first"]) {
      await expect.poll(() => page.getByText(summary).first().isVisible(), { message: summary }).toBe(true);
    }
    await screenshot(page, "docs");
    expect(watched.foreign).toEqual([]);
    expect(watched.errors).toEqual([]);
    expect(requested).toEqual(
      expect.arrayContaining(["/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js", "/openapi.json"]),
    );
    await page.close();
  });
});

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { type Call, client, removeDataDir, type Server, startServer } from "../e2e/harness.js";

/** Debian's Chromium (`apt-get install chromium`); no browser is downloaded. */
export const CHROMIUM = "/usr/bin/chromium";
export const SCREENSHOTS = new URL("./screenshots/", import.meta.url).pathname;

/** The set-up's console build (a no-op when console/dist is newer than its sources). */
export function buildConsole(): void {
  execFileSync("sh", ["scripts/build-console.sh"], { cwd: new URL("../..", import.meta.url).pathname, stdio: "inherit" });
}

export interface Chromium {
  browser: Browser;
  close(): Promise<void>;
}

/**
 * Headless Chromium with nothing of its own talking to the network. Playwright gives it a fresh
 * `--user-data-dir` of its own (a new temporary profile per launch, removed on close); passing one
 * here is refused, since contexts need launch() rather than a persistent profile.
 */
export async function launchChromium(): Promise<Chromium> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

export interface Watched {
  context: BrowserContext;
  /** Requests to any host but the gateway: aborted, and listed here. */
  foreign: string[];
  /** Console errors and uncaught exceptions of every page (CSP violations show up here). */
  errors: string[];
}

/** A context that lets requests reach only `gatewayUrl` and records everything else it tried. */
export async function watchedContext(
  browser: Browser,
  gatewayUrl: string,
  options: Parameters<Browser["newContext"]>[0] = {},
): Promise<Watched> {
  const context = await browser.newContext({ baseURL: gatewayUrl, ...options });
  context.setDefaultTimeout(15_000);
  const gateway = new URL(gatewayUrl);
  const foreign: string[] = [];
  const errors: string[] = [];
  await context.route("**/*", async (route) => {
    const url = new URL(route.request().url());
    if (url.host === gateway.host && url.protocol === gateway.protocol) return route.continue();
    foreign.push(route.request().url());
    return route.abort("blockedbyclient");
  });
  context.on("page", (page) => watchPage(page, errors));
  return { context, foreign, errors };
}

function watchPage(page: Page, errors: string[]): void {
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`${page.url()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`${page.url()}: ${error.message}`));
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Opens the console and signs in with `token`, unless the context's session cookie is still good. */
export async function signInWith(page: Page, token: string): Promise<void> {
  await page.goto("/");
  const functions = page.getByRole("heading", { name: "Functions" });
  await Promise.race([functions.waitFor(), page.locator("input[name=token]").waitFor()]);
  if (await functions.isVisible()) return;
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await functions.waitFor();
}

/**
 * One real gateway (src/main.ts, real sandboxed interpreters; `env` beside its token) and one
 * Chromium with a desktop-sized context for a whole test file: started in beforeAll, stopped in
 * afterAll. Every request of the context to a host other than the gateway is blocked and recorded.
 */
export function useConsole(token: string, env: Record<string, string> = {}) {
  let server: Server | undefined;
  let browser: Chromium | undefined;
  let desktop: Watched | undefined;
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the console's gateway has not started (beforeAll failed)");
    return value;
  };
  beforeAll(async () => {
    buildConsole();
    server = await startServer({ env: { GATEWAY_TOKEN: token, ...env } });
    browser = await launchChromium();
    desktop = await watchedContext(browser.browser, server.url, { viewport: { width: 1280, height: 800 } });
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (server) removeDataDir(server.dataDir);
  });
  const call: Call = client(
    () => started(server).url,
    () => token,
  );
  return {
    get server(): Server {
      return started(server);
    },
    get chromium(): Chromium {
      return started(browser);
    },
    get desktop(): Watched {
      return started(desktop);
    },
    call,
    /** Opens the console and signs in with the file's token, unless the session cookie is still good. */
    signIn: (page: Page) => signInWith(page, token),
  };
}

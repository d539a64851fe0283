import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/core/config.js";
import type { TokenRecord } from "../../src/db/tokens.js";
import { InvocationFeed } from "../../src/http/feed.js";
import { FUNCTION_CSP } from "../../src/http/middleware/function-isolation.js";
import { CONSOLE_CSP } from "../../src/http/routes/console.js";
import { streamApi } from "../../src/http/routes/stream.js";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, okResult, register, TOKEN } from "./harness.js";

let gw: Gateway;
beforeAll(() => {
  gw = makeGateway();
});
afterAll(() => gw.close());

const CONSOLE = { "x-fngw-console": "1" };

/** Signs in as the console does; returns the `fngw_session=<id>` pair to send back. */
async function signIn(): Promise<string> {
  const res = await gw.call("/api/session", { method: "POST", token: null, headers: CONSOLE, json: { token: TOKEN } });
  expect(res.status).toBe(204);
  const setCookie = res.headers.get("set-cookie") ?? "";
  expect(setCookie).toMatch(/^fngw_session=[A-Za-z0-9_-]{43}; /);
  return setCookie.split(";")[0]!;
}

describe("console sessions", () => {
  it("sign-in sets an HttpOnly, SameSite=Strict, Path=/ cookie holding a random id, not the token", async () => {
    const res = await gw.call("/api/session", { method: "POST", token: null, headers: CONSOLE, json: { token: TOKEN } });
    const setCookie = res.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).not.toContain(TOKEN);
    expect(await signIn()).not.toBe(setCookie.split(";")[0]);
  });

  it("refuses a wrong token, a missing console header and a non-JSON body", async () => {
    const wrong = await gw.call("/api/session", { method: "POST", token: null, headers: CONSOLE, json: { token: "not-the-token-at-all" } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    const noHeader = await gw.call("/api/session", { method: "POST", token: null, json: { token: TOKEN } });
    expect(noHeader.status).toBe(401);
    const form = await gw.call("/api/session", {
      method: "POST",
      token: null,
      headers: { ...CONSOLE, "content-type": "text/plain" },
      body: TOKEN,
    });
    expect(form.status).toBe(415);
    expect(((await form.json()) as Json).error.code).toBe("unsupported_media_type");
  });

  it("the cookie authenticates /api only together with X-Fngw-Console: 1", async () => {
    const cookie = await signIn();
    expect((await gw.call("/api/functions", { token: null, headers: { cookie } })).status).toBe(401);
    expect((await gw.call("/api/functions", { token: null, headers: { cookie, ...CONSOLE } })).status).toBe(200);
    const forged = await gw.call("/api/functions", { token: null, headers: { cookie: "fngw_session=forged", ...CONSOLE } });
    expect(forged.status).toBe(401);
  });

  it("a state-changing request with the cookie must come from the gateway's own origin", async () => {
    const cookie = await signIn();
    const create = (origin: string) =>
      gw.call("/api/functions", {
        method: "POST",
        token: null,
        headers: { cookie, origin, ...CONSOLE },
        json: { name: `o${origin.length}`, runtime: "python", code: "pass\n" },
      });
    expect((await create("https://evil.example")).status).toBe(403);
    expect((await create("null")).status).toBe(403);
    expect((await create("http://localhost")).status).toBe(201);
  });

  it("GET /api/session tells the console whether its cookie is a live session", async () => {
    const cookie = await signIn();
    const live = await gw.call("/api/session", { token: null, headers: { cookie, ...CONSOLE } });
    expect(await live.json()).toEqual({ signed_in: true, scopes: ["admin"] });
    const none = await gw.call("/api/session", { token: null, headers: CONSOLE });
    expect(await none.json()).toEqual({ signed_in: false, scopes: [] });
  });

  it("signing out ends the session on the server", async () => {
    const cookie = await signIn();
    const out = await gw.call("/api/session", { method: "DELETE", token: null, headers: { cookie, ...CONSOLE } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toMatch(/^fngw_session=;/);
    expect((await gw.call("/api/functions", { token: null, headers: { cookie, ...CONSOLE } })).status).toBe(401);
  });
});

describe("/fn isolation", () => {
  it("every /fn answer carries the sandbox CSP, errors included", async () => {
    await register(gw, { name: "page", public: true });
    const ok = await gw.call("/fn/page", { token: null });
    expect(ok.headers.get("content-security-policy")).toBe(FUNCTION_CSP);
    expect(FUNCTION_CSP).toMatch(/^sandbox /);
    expect(FUNCTION_CSP).not.toContain("allow-same-origin");
    const missing = await gw.call("/fn/nothing-here", { token: null });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("content-security-policy")).toBe(FUNCTION_CSP);
  });

  it("the session cookie never reaches a function, and a function cannot set it", async () => {
    await register(gw, { name: "cookies", public: true });
    gw.runner.script = () =>
      okResult({
        headers: [
          ["set-cookie", "fngw_session=planted; Path=/"],
          ["set-cookie", "own=1"],
        ],
      });
    const res = await gw.call("/fn/cookies", { token: null, headers: { cookie: "a=1; fngw_session=secret-id; b=2" } });
    const seen = new Map(gw.runner.last.request.headers);
    expect(seen.get("cookie")).toBe("a=1; b=2");
    expect(res.headers.getSetCookie()).toEqual(["own=1"]);
  });
});

describe("/api/invoke: invoking as the console's signed-in user", () => {
  /** Signs in with a token of these scopes; returns the cookie pair. */
  async function signInWith(scopes: string[]): Promise<string> {
    const created = await gw.call("/api/tokens", { method: "POST", json: { name: `console-${scopes.join("-")}`, scopes } });
    const { token } = (await created.json()) as Json;
    const res = await gw.call("/api/session", { method: "POST", token: null, headers: CONSOLE, json: { token } });
    return (res.headers.get("set-cookie") ?? "").split(";")[0]!;
  }

  it("runs a private function with the session alone: the same invocation as /fn, logged, without the cookie", async () => {
    await register(gw, { name: "private-one" });
    const cookie = await signIn();
    gw.runner.script = () => okResult({ body: Buffer.from("ran") });
    const res = await gw.call("/api/invoke/private-one/sub/path?x=1", {
      method: "POST",
      token: null,
      headers: { cookie: `${cookie}; theirs=1`, origin: "http://localhost", "content-type": "text/plain", ...CONSOLE },
      body: "payload",
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ran");
    expect(res.headers.get("content-security-policy")).toBe(FUNCTION_CSP);
    const request = gw.runner.last.request;
    expect(request).toMatchObject({ method: "POST", path: "/sub/path", query: [["x", "1"]] });
    expect(new URL(request.url).pathname).toBe("/fn/private-one/sub/path");
    expect(Buffer.from(request.body).toString()).toBe("payload");
    expect(new Map(request.headers).get("cookie")).toBe("theirs=1");
    const id = res.headers.get("x-invocation-id");
    const row = (await (await gw.call(`/api/invocations/${id}`)).json()) as Json;
    expect(row).toMatchObject({ function: "private-one", method: "POST", path: "/sub/path", status: "ok" });
  });

  it("needs the session's token to cover the function: a deploy-only token gets 403 naming the scope", async () => {
    await register(gw, { name: "scoped-fn" });
    const cookie = await signInWith(["deploy"]);
    const res = await gw.call("/api/invoke/scoped-fn", { token: null, headers: { cookie, ...CONSOLE } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as Json).error.message).toContain("invoke:scoped-fn");
    const allowed = await signInWith(["invoke:scoped-*"]);
    gw.runner.script = () => okResult({});
    expect((await gw.call("/api/invoke/scoped-fn", { token: null, headers: { cookie: allowed, ...CONSOLE } })).status).toBe(200);
  });

  it("takes the cookie only with the console header, and a state-changing call only from the gateway's own origin", async () => {
    await register(gw, { name: "guarded" });
    const cookie = await signIn();
    gw.runner.script = () => okResult({});
    const before = gw.runner.calls.length;
    expect((await gw.call("/api/invoke/guarded", { token: null, headers: { cookie } })).status).toBe(401);
    const foreign = await gw.call("/api/invoke/guarded", {
      method: "POST",
      token: null,
      headers: { cookie, origin: "https://evil.example", ...CONSOLE },
      body: "x",
    });
    expect(foreign.status).toBe(403);
    expect(gw.runner.calls.length).toBe(before);
    // /fn itself still ignores the session: a private function there needs a token.
    expect((await gw.call("/fn/guarded", { token: null, headers: { cookie, ...CONSOLE } })).status).toBe(401);
  });

  it("bounds the body as /fn does (MAX_BODY_BYTES), not by the API's own limit", async () => {
    const small = makeGateway({ MAX_BODY_BYTES: "16" });
    try {
      await register(small, { name: "capped" });
      small.runner.script = () => okResult({});
      const res = await small.call("/api/invoke/capped", { method: "POST", body: "x".repeat(17) });
      expect(res.status).toBe(413);
      expect(((await res.json()) as Json).error.code).toBe("payload_too_large");
      expect((await small.call("/api/invoke/capped", { method: "POST", body: "x".repeat(16) })).status).toBe(200);
    } finally {
      small.close();
    }
  });
});

describe("FUNCTIONS_ORIGIN_ISOLATION", () => {
  it("is on unless set to off; anything else is a configuration error", () => {
    expect(loadConfig({}).FUNCTIONS_ORIGIN_ISOLATION).toBe("on");
    expect(loadConfig({ FUNCTIONS_ORIGIN_ISOLATION: "on" }).FUNCTIONS_ORIGIN_ISOLATION).toBe("on");
    expect(loadConfig({ FUNCTIONS_ORIGIN_ISOLATION: "off" }).FUNCTIONS_ORIGIN_ISOLATION).toBe("off");
    expect(() => loadConfig({ FUNCTIONS_ORIGIN_ISOLATION: "no" })).toThrow(ConfigError);
  });
});

describe("the console's files", () => {
  it("/ redirects to /console/, served with the console's CSP", async () => {
    const root = await gw.call("/", { token: null });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/console/");
    const index = await gw.call("/console/", { token: null });
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toMatch(/^text\/html/);
    expect(index.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await gw.call(asset!, { token: null });
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
  });
});

describe("POST /api/functions/:name/rollback", () => {
  it("stores the old version's code and settings as a new version, keeping the current env (secrets)", async () => {
    await register(gw, { name: "rolled", code: "print(1)\n", env: { KEY: "v1" }, timeout_ms: 1000 });
    await gw.call("/api/functions/rolled", { method: "PUT", json: { code: "print(2)\n", env: { NEW: "v2" }, timeout_ms: 2000 } });
    const res = await gw.call("/api/functions/rolled/rollback", { method: "POST", json: { version: 1 } });
    expect(res.status).toBe(201);
    const fn = (await res.json()) as Json;
    expect(fn).toMatchObject({ name: "rolled", version: 3, code: "print(1)\n", timeout_ms: 1000, env: { NEW: "***" } });
    expect(gw.stores.functions.get("rolled")?.env).toEqual({ NEW: "v2" });
    expect((await gw.call("/api/functions/rolled/rollback", { method: "POST", json: { version: 9 } })).status).toBe(404);
    expect((await gw.call("/api/functions/rolled/rollback", { method: "POST", json: { version: "1" } })).status).toBe(400);
  });
});

describe("GET /api/invocations/stream", () => {
  it("sends each finished invocation of the function as an `invocation` event", async () => {
    await register(gw, { name: "streamed", public: true });
    await register(gw, { name: "other-fn", public: true });
    const abort = new AbortController();
    const res = await gw.call("/api/invocations/stream?function=streamed", { signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(": connected")) text += (await reader.read()).value ?? "";
    gw.runner.script = () => okResult({});
    await gw.call("/fn/other-fn", { token: null });
    const invoked = await gw.call("/fn/streamed", { token: null });
    const id = invoked.headers.get("x-invocation-id");
    const EVENT = /event: invocation\ndata: (.*)\nid: .*\n\n/;
    while (!EVENT.test(text)) text += (await reader.read()).value ?? "";
    abort.abort();
    const event = EVENT.exec(text);
    expect(JSON.parse(event![1]!)).toMatchObject({ id, function: "streamed", status: "ok", http_status: 200 });
    expect(text).not.toContain("other-fn");
  });

  it("sends a keep-alive comment when nothing happens", async () => {
    // As mounted behind the API's guard, which has authenticated an admin token.
    const app = new Hono();
    app.use(async (c, next) => {
      c.set("apiToken", { scopes: ["admin"] } as TokenRecord);
      await next();
    });
    app.route("/", streamApi(new InvocationFeed(), 50));
    const abort = new AbortController();
    const res = await app.request("/", { signal: abort.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(": keep-alive\n\n")) text += (await reader.read()).value ?? "";
    abort.abort();
    expect(text.startsWith(": connected\n\n")).toBe(true);
  });

  it("refuses an unknown filter", async () => {
    expect((await gw.call("/api/invocations/stream?status=nope")).status).toBe(400);
  });
});

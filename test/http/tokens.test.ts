import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseFilesContain, expectError, type Gateway, type Json, makeGateway, register } from "./harness.js";

// Scoped tokens: admin does everything, deploy manages functions, logs:read reads the log,
// invoke:<name> / invoke:<prefix>* call private functions; hashes only, revocable, expiring.

let gw: Gateway;
const issued: Record<string, string> = {};

async function issue(name: string, scopes: string[], extra: Json = {}): Promise<Json> {
  const res = await gw.call("/api/tokens", { method: "POST", json: { name, scopes, ...extra } });
  if (res.status !== 201) throw new Error(`POST /api/tokens: ${res.status} ${await res.text()}`);
  return (await res.json()) as Json;
}

beforeAll(async () => {
  gw = await makeGateway();
  await register(gw, { name: "billing-report" });
  await register(gw, { name: "billing-export" });
  await register(gw, { name: "other" });
  await register(gw, { name: "open", public: true });
  for (const [key, scopes] of Object.entries({
    deploy: ["deploy"],
    logs: ["logs:read"],
    invokeOne: ["invoke:billing-report"],
    invokePrefix: ["invoke:billing-*"],
    invokeAll: ["invoke:*"],
    admin: ["admin"],
  })) {
    issued[key] = (await issue(key, scopes)).token;
  }
});
afterAll(() => gw.close());

type Request = [method: string, path: string, json?: unknown];
const ROUTES: Record<string, Request> = {
  "list functions": ["GET", "/api/functions"],
  "show a function": ["GET", "/api/functions/other"],
  register: ["POST", "/api/functions", { name: "made-by-scope", runtime: "python", code: "x = 1\n" }],
  update: ["PUT", "/api/functions/other", { timeout_ms: 2000 }],
  "roll back": ["POST", "/api/functions/other/rollback", { version: 1 }],
  delete: ["DELETE", "/api/functions/no-such-function"],
  "read the log": ["GET", "/api/invocations"],
  // An invalid filter: a token that may follow the stream gets the 400 rather than an endless stream.
  "follow the log": ["GET", "/api/invocations/stream?status=nope"],
  "read stats": ["GET", "/api/functions/other/stats"],
  "list tokens": ["GET", "/api/tokens"],
  "create a token": ["POST", "/api/tokens", { name: "x", scopes: ["deploy"] }],
  "call billing-report": ["GET", "/fn/billing-report"],
  "call billing-export": ["GET", "/fn/billing-export"],
  "call other": ["GET", "/fn/other"],
  "call a public function": ["GET", "/fn/open"],
};

// What each token gets for each request: the status, and for a 403 the scope the message names.
const ALLOWED = (status = 200) => ({ status });
const DENIED = (scope: string) => ({ status: 403, scope });
const created = ALLOWED(201);
const MATRIX: Record<string, Record<string, { status: number; scope?: string }>> = {
  deploy: {
    "list functions": ALLOWED(),
    "show a function": ALLOWED(),
    register: created,
    update: ALLOWED(),
    "roll back": created,
    delete: ALLOWED(404),
    "read the log": DENIED("logs:read"),
    "follow the log": DENIED("logs:read"),
    "read stats": DENIED("logs:read"),
    "list tokens": DENIED("admin"),
    "create a token": DENIED("admin"),
    "call billing-report": DENIED("invoke:billing-report"),
    "call billing-export": DENIED("invoke:billing-export"),
    "call other": DENIED("invoke:other"),
    "call a public function": ALLOWED(),
  },
  logs: {
    "list functions": DENIED("deploy"),
    "show a function": DENIED("deploy"),
    register: DENIED("deploy"),
    update: DENIED("deploy"),
    "roll back": DENIED("deploy"),
    delete: DENIED("deploy"),
    "read the log": ALLOWED(),
    "follow the log": ALLOWED(400),
    "read stats": ALLOWED(),
    "list tokens": DENIED("admin"),
    "create a token": DENIED("admin"),
    "call billing-report": DENIED("invoke:billing-report"),
    "call billing-export": DENIED("invoke:billing-export"),
    "call other": DENIED("invoke:other"),
    "call a public function": ALLOWED(),
  },
  invokeOne: {
    "list functions": DENIED("deploy"),
    register: DENIED("deploy"),
    "read the log": DENIED("logs:read"),
    "follow the log": DENIED("logs:read"),
    "list tokens": DENIED("admin"),
    "call billing-report": ALLOWED(),
    "call billing-export": DENIED("invoke:billing-export"),
    "call other": DENIED("invoke:other"),
    "call a public function": ALLOWED(),
  },
  invokePrefix: {
    "list functions": DENIED("deploy"),
    "call billing-report": ALLOWED(),
    "call billing-export": ALLOWED(),
    "call other": DENIED("invoke:other"),
  },
  invokeAll: {
    "list functions": DENIED("deploy"),
    "call billing-report": ALLOWED(),
    "call other": ALLOWED(),
    "create a token": DENIED("admin"),
  },
  admin: Object.fromEntries(
    Object.keys(ROUTES).map((route) => [
      route,
      ["register", "roll back", "create a token"].includes(route)
        ? created
        : route === "delete"
          ? ALLOWED(404)
          : route === "follow the log"
            ? ALLOWED(400)
            : ALLOWED(),
    ]),
  ),
};

describe("what each scope may do", () => {
  const cases = Object.entries(MATRIX).flatMap(([token, routes]) =>
    Object.entries(routes).map(([route, expected]) => ({ token, route, ...expected })),
  );
  it.each(cases)("$token: $route → $status", async ({ token, route, status, scope }) => {
    const [method, path, json] = ROUTES[route]!;
    if (route === "register") await gw.call("/api/functions/made-by-scope", { method: "DELETE" });
    const res = await gw.call(path, { method, json, token: issued[token] });
    if (status === 403) {
      await expectError(res, 403, "forbidden", new RegExp(`'${scope!.replace("*", "\\*")}' scope`));
    } else {
      expect(res.status, await res.clone().text()).toBe(status);
    }
  });
});

describe("POST /api/tokens", () => {
  it("shows the token once, stores only its hash, and lists tokens without secrets", async () => {
    const made = await issue("ci", ["deploy", "invoke:ci-*"], { expires_at: "2031-01-01T00:00:00Z" });
    expect(made).toMatchObject({
      name: "ci",
      scopes: ["deploy", "invoke:ci-*"],
      expires_at: "2031-01-01T00:00:00.000Z",
      last_used_at: null,
    });
    expect(made.id).toMatch(/^tok_[0-9a-f]{16}$/);
    expect(made.token).toMatch(/^fngw_[A-Za-z0-9_-]{43}$/);
    expect(await databaseFilesContain(gw, made.token)).toBe(false);
    const listed = ((await (await gw.call("/api/tokens")).json()) as Json).items as Json[];
    expect(listed.map((t) => t.id)).toContain(made.id);
    expect(listed.map((t) => t.id)).toContain("root");
    expect(JSON.stringify(listed)).not.toContain(made.token);
    for (const t of listed) expect(Object.keys(t).sort()).toEqual(["created_at", "expires_at", "id", "last_used_at", "name", "scopes"]);
  });

  it.each<[string, Json, RegExp]>([
    ["an unknown scope", { name: "x", scopes: ["root"] }, /^scopes\.0: must be admin, deploy/],
    ["an invoke scope that names no function", { name: "x", scopes: ["invoke:"] }, /^scopes\.0: /],
    ["a wildcard inside a name", { name: "x", scopes: ["invoke:a*b"] }, /^scopes\.0: /],
    ["no scope", { name: "x", scopes: [] }, /^scopes: give at least one scope/],
    ["a repeated scope", { name: "x", scopes: ["deploy", "deploy"] }, /^scopes: must not repeat/],
    ["no name", { scopes: ["deploy"] }, /^name: is required/],
    ["an expiry in the past", { name: "x", scopes: ["deploy"], expires_at: "2020-01-01T00:00:00Z" }, /^expires_at: must be in the future/],
    ["an expiry without a zone", { name: "x", scopes: ["deploy"], expires_at: "2031-01-01T00:00:00" }, /^expires_at: must be an ISO 8601/],
  ])("answers 400 for %s", async (_, json, message) => {
    await expectError(await gw.call("/api/tokens", { method: "POST", json }), 400, "invalid_request", message);
  });
});

describe("a token's life", () => {
  it("records when it was last used, to the minute", async () => {
    const made = await issue("used", ["logs:read"]);
    expect((await gw.call("/api/invocations", { token: made.token })).status).toBe(200);
    const listed = ((await (await gw.call("/api/tokens")).json()) as Json).items.find((t: Json) => t.id === made.id);
    expect(listed.last_used_at).toBe(new Date(gw.clock.now).toISOString());
  });

  it("stops working once it expires (401, saying so)", async () => {
    const made = await issue("short", ["logs:read"], { expires_at: new Date(gw.clock.now + 60_000).toISOString() });
    expect((await gw.call("/api/invocations", { token: made.token })).status).toBe(200);
    gw.clock.now += 60_000;
    await expectError(await gw.call("/api/invocations", { token: made.token }), 401, "unauthorized", /expired/);
    await expectError(await gw.call("/fn/other", { token: made.token }), 401, "unauthorized", /expired/);
  });

  it("stops working at once when deleted; a second delete is 404", async () => {
    const made = await issue("revoked", ["invoke:other"]);
    expect((await gw.call("/fn/other", { token: made.token })).status).toBe(200);
    expect((await gw.call(`/api/tokens/${made.id}`, { method: "DELETE" })).status).toBe(204);
    await expectError(await gw.call("/fn/other", { token: made.token }), 401, "unauthorized", /invalid token/);
    await expectError(await gw.call(`/api/tokens/${made.id}`, { method: "DELETE" }), 404, "not_found");
  });

  it("answers 401 before 403: a wrong token learns nothing of scopes", async () => {
    await expectError(await gw.call("/api/tokens", { token: "not-a-token" }), 401, "unauthorized");
  });

  it("writes no log row for a 403 invocation, as for a 401", async () => {
    const before = await gw.logCount();
    await expectError(await gw.call("/fn/billing-export", { token: issued.logs }), 403, "forbidden");
    expect(await gw.logCount()).toBe(before);
  });
});

describe("the hot path", () => {
  it("authenticates an invocation's token without an SQL statement", async () => {
    await gw.call("/fn/other", { token: issued.invokeAll }); // last_used_at written now, not again within the minute
    const queries = await gw.queriesDuring(async () => {
      for (let i = 0; i < 1000; i++) expect(gw.cluster.tokens.authenticate(issued.invokeAll!).kind).toBe("ok");
    });
    expect(queries).toEqual([]);
  });
});

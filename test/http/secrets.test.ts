import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseFilesContain, envSeenBy, expectError, type Gateway, type Json, makeGateway, register } from "./harness.js";

// Env values are secrets: shown masked, kept by the mask on a PUT, kept across a rollback, and
// never stored in clear.

let gw: Gateway;
beforeAll(async () => {
  gw = await makeGateway();
});
afterAll(() => gw.close());

const SECRET = "s3cret-value-that-must-not-leak-7f3a";

async function show(name: string): Promise<Json> {
  return (await (await gw.call(`/api/functions/${name}`)).json()) as Json;
}

describe("PUT with the masked env that GET shows", () => {
  it.each<[string, Record<string, string>, Record<string, string>, Record<string, string>]>([
    ["keeps every value when the whole masked env is sent back", { A: SECRET, B: "b" }, { A: "***", B: "***" }, { A: SECRET, B: "b" }],
    ["keeps masked values and sets new ones", { A: SECRET, B: "b" }, { A: "***", B: "new" }, { A: SECRET, B: "new" }],
    ["drops a variable left out of the env", { A: SECRET, B: "b" }, { A: "***" }, { A: SECRET }],
    ["clears the env with an empty one", { A: SECRET }, {}, {}],
  ])("%s", async (_, before, put, after) => {
    const name = `mask-${Object.keys(put).join("").toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`;
    await register(gw, { name, env: before });
    const res = await gw.call(`/api/functions/${name}`, { method: "PUT", json: { env: put } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Json).env).toEqual(Object.fromEntries(Object.keys(after).map((k) => [k, "***"])));
    expect(await envSeenBy(gw, name)).toEqual(after);
  });

  it("keeps the secret when the whole GET answer is PUT back (a rollback by hand)", async () => {
    await register(gw, { name: "roundtrip", env: { TOKEN: SECRET } });
    const { name, version, created_at, updated_at, environment, pending_version, ...settings } = await show("roundtrip");
    const res = await gw.call("/api/functions/roundtrip", { method: "PUT", json: settings });
    expect(res.status).toBe(200);
    expect(await envSeenBy(gw, "roundtrip")).toEqual({ TOKEN: SECRET });
  });

  it.each<[string, string, Json]>([
    ["on a PUT, for a variable that has no current value", "PUT", { env: { TOKEN: "***", NEW_ONE: "***" } }],
    ["on a POST, where nothing has a value yet", "POST", { name: "masked-new", runtime: "python", code: "x", env: { K: "***" } }],
  ])("answers 400 for the mask %s", async (_, method, json) => {
    const res = await gw.call(method === "PUT" ? "/api/functions/roundtrip" : "/api/functions", { method, json });
    await expectError(res, 400, "invalid_request", /env: "\*\*\*" keeps a variable's current value, and (NEW_ONE|K) has none/);
    expect(await envSeenBy(gw, "roundtrip")).toEqual({ TOKEN: SECRET });
  });
});

describe("POST /api/functions/:name/rollback", () => {
  beforeAll(async () => {
    await register(gw, { name: "rb", code: "v1 = 1\n", timeout_ms: 1000, env: { KEY: "old-key" } });
    await gw.call("/api/functions/rb", {
      method: "PUT",
      json: { code: "v2 = 2\n", timeout_ms: 2000, env: { KEY: "new-key", EXTRA: "e" } },
    });
  });

  it("makes version N's code and settings current as a new version, keeping the current env", async () => {
    const res = await gw.call("/api/functions/rb/rollback", { method: "POST", json: { version: 1 } });
    expect(res.status).toBe(201);
    const fn = (await res.json()) as Json;
    expect(fn).toMatchObject({ name: "rb", version: 3, code: "v1 = 1\n", timeout_ms: 1000, env: { KEY: "***", EXTRA: "***" } });
    expect(await envSeenBy(gw, "rb")).toEqual({ KEY: "new-key", EXTRA: "e" });
    expect(gw.runner.last.code).toBe("v1 = 1\n");
    expect(gw.runner.last.timeoutMs).toBe(1000);
    const versions = ((await (await gw.call("/api/functions/rb/versions")).json()) as Json).items.map((v: Json) => v.version);
    expect(versions).toEqual([3, 2, 1]);
  });

  it.each<[string, string, unknown, number, string, RegExp]>([
    ["a version that does not exist", "rb", { version: 9 }, 404, "not_found", /no version 9/],
    ["an unknown function", "nope", { version: 1 }, 404, "not_found", /no function named 'nope'/],
    ["a missing version", "rb", {}, 400, "invalid_request", /^version: is required/],
    ["a version that is not a positive integer", "rb", { version: 0 }, 400, "invalid_request", /^version: /],
    ["an unknown field", "rb", { version: 1, code: "x" }, 400, "invalid_request", /code/],
  ])("answers an error for %s", async (_, name, json, status, code, message) => {
    await expectError(await gw.call(`/api/functions/${name}/rollback`, { method: "POST", json }), status, code, message);
  });

  it("answers 405 with Allow for other methods", async () => {
    const res = await gw.call("/api/functions/rb/rollback");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });
});

describe("env values at rest", () => {
  it("are never in the database's files in clear, in any version", async () => {
    await register(gw, { name: "at-rest", env: { DB_PASSWORD: SECRET } });
    await gw.call("/api/functions/at-rest", { method: "PUT", json: { code: "y = 2\n" } });
    await gw.call("/api/functions/at-rest/rollback", { method: "POST", json: { version: 1 } });
    expect(await databaseFilesContain(gw, SECRET)).toBe(false);
    expect(await databaseFilesContain(gw, "DB_PASSWORD")).toBe(true); // the names are not secret: the search itself works
    const stored = await gw.sql("SELECT env FROM function_versions WHERE function_name = 'at-rest'");
    expect(stored).toHaveLength(3);
    for (const row of stored) {
      const env = typeof row.env === "string" ? JSON.parse(row.env) : row.env; // text on SQLite, jsonb on PostgreSQL
      expect(env.DB_PASSWORD).toMatch(/^fngw1:[0-9a-f]{16}:[A-Za-z0-9+/]+=*$/);
    }
  });
});

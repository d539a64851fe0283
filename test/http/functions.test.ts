import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeGateway, PY_HELLO, register, type Gateway } from "./harness.js";

let gw: Gateway;
beforeAll(() => {
  gw = makeGateway({ MAX_CODE_BYTES: "1000", MAX_TIMEOUT_MS: "60000", MAX_MEMORY_MB: "512", MAX_ENV_VARS: "3" });
});
afterAll(() => gw.close());

type Json = Record<string, any>; // test-side view of response bodies: any keeps the assertions short

async function body(res: Response): Promise<Json> {
  return (await res.json()) as Json;
}

async function expectError(res: Response, status: number, code: string, messagePart?: string | RegExp) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  const json = await body(res);
  expect(json.error.code).toBe(code);
  expect(typeof json.error.message).toBe("string");
  expect(json.error.message).not.toMatch(/\n\s+at /); // never a stack trace
  if (messagePart) expect(json.error.message).toMatch(messagePart);
  return json;
}

describe("POST /api/functions", () => {
  it("registers a function as version 1 with the defaults from the configuration", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "hello", runtime: "python", code: PY_HELLO } });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/api/functions/hello");
    const fn = await body(res);
    expect(fn).toMatchObject({
      name: "hello",
      version: 1,
      runtime: "python",
      code: PY_HELLO,
      timeout_ms: gw.config.DEFAULT_TIMEOUT_MS,
      memory_mb: gw.config.DEFAULT_MEMORY_MB,
      network: false,
      public: false,
      env: {},
    });
    expect(Date.parse(fn.created_at)).not.toBeNaN();
    expect(fn.updated_at).toBe(fn.created_at);
  });

  it("answers 409 when the name is taken", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "hello", runtime: "node", code: "x" } });
    await expectError(res, 409, "conflict", /exists/);
  });

  it("accepts every setting and masks env values in its answer", async () => {
    const fn = await register(gw, {
      name: "full_1",
      runtime: "node",
      code: "export default () => 1",
      timeout_ms: 60000,
      memory_mb: 512,
      network: true,
      public: true,
      env: { API_KEY: "secret", _X: "y" },
    });
    expect(fn).toMatchObject({ runtime: "node", timeout_ms: 60000, memory_mb: 512, network: true, public: true });
    expect(fn.env).toEqual({ API_KEY: "***", _X: "***" });
    expect(JSON.stringify(fn)).not.toContain("secret");
  });

  it("answers 400 invalid_json on a body that is not JSON", async () => {
    const res = await gw.call("/api/functions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"name": "x",',
    });
    await expectError(res, 400, "invalid_json");
  });

  it("answers 415 with a hint when the body is not sent as JSON", async () => {
    const res = await gw.call("/api/functions", { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    await expectError(res, 415, "unsupported_media_type", /Content-Type: application\/json/);
  });

  it("answers 400 naming each missing field", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "nofields" } });
    const json = await expectError(res, 400, "invalid_request");
    expect(json.error.message).toContain("runtime: is required");
    expect(json.error.message).toContain("code: is required");
  });

  it("answers 400 on an empty body", async () => {
    const res = await gw.call("/api/functions", { method: "POST" });
    await expectError(res, 400, "invalid_request", /name: is required/);
  });

  it.each([
    ["Upper", "uppercase"],
    ["-leading-dash", "a leading dash"],
    ["has space", "a space"],
    ["a".repeat(64), "64 characters"],
    ["dots.not.allowed", "a dot"],
    ["", "nothing"],
  ])("answers 400 for the name %j (%s)", async (name) => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name, runtime: "python", code: PY_HELLO } });
    await expectError(res, 400, "invalid_request", /^name: /);
  });

  it("accepts a 63-character name", async () => {
    await register(gw, { name: `a${"b".repeat(62)}` });
  });

  it("answers 400 for an unknown runtime", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "ruby", runtime: "ruby", code: "puts 1" } });
    await expectError(res, 400, "invalid_request", /^runtime: /);
  });

  it("answers 400 for an unknown field instead of ignoring it", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "typo", runtime: "python", code: "x", timeout: 5 } });
    await expectError(res, 400, "invalid_request", /timeout/);
  });

  it("answers 400 for code over MAX_CODE_BYTES, counted in UTF-8 bytes", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "big", runtime: "python", code: "é".repeat(501) } });
    await expectError(res, 400, "invalid_request", /^code: .*1000 bytes/);
  });

  it("answers 400 for empty code", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "empty", runtime: "python", code: "" } });
    await expectError(res, 400, "invalid_request", /^code: /);
  });

  it("answers 413 for a body far larger than any function may be", async () => {
    const res = await gw.call("/api/functions", {
      method: "POST",
      json: { name: "huge", runtime: "python", code: "x".repeat(400_000) },
    });
    await expectError(res, 413, "payload_too_large");
  });

  it.each([
    [{ timeout_ms: 60001 }, /^timeout_ms: /],
    [{ timeout_ms: 50 }, /^timeout_ms: /],
    [{ timeout_ms: 1.5 }, /^timeout_ms: /],
    [{ memory_mb: 16 }, /^memory_mb: /],
    [{ memory_mb: 513 }, /^memory_mb: /],
    [{ network: "yes" }, /^network: /],
    [{ public: 1 }, /^public: /],
    [{ env: { "BAD-NAME": "x" } }, /^env\.BAD-NAME: /],
    [{ env: { "1ST": "x" } }, /^env\.1ST: /],
    [{ env: { A: 1 } }, /^env\.A: /],
    [{ env: { A: "1", B: "2", C: "3", D: "4" } }, /^env: at most 3 variables/],
    [{ env: { A: "nul\0byte" } }, /NUL/],
  ])("answers 400 for %j", async (settings, message) => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "limits", runtime: "python", code: "x", ...settings } });
    await expectError(res, 400, "invalid_request", message);
  });

  it("answers 400 for an env variable named __proto__ rather than dropping it", async () => {
    const body = '{"name":"proto","runtime":"python","code":"x","env":{"__proto__":"x","A":"1"}}';
    const res = await gw.call("/api/functions", { method: "POST", headers: { "content-type": "application/json" }, body });
    await expectError(res, 400, "invalid_request", /^env\.__proto__: /);
  });

  it("answers 401 without the token", async () => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "anon", runtime: "python", code: "x" }, token: null });
    await expectError(res, 401, "unauthorized");
  });
});

describe("GET /api/functions", () => {
  it("lists every function by name with runtime, version and updated_at", async () => {
    const res = await gw.call("/api/functions");
    expect(res.status).toBe(200);
    const { items } = await body(res);
    const names = items.map((f: Json) => f.name);
    expect(names).toEqual([...names].sort());
    expect(items.find((f: Json) => f.name === "hello")).toEqual({
      name: "hello",
      runtime: "python",
      version: 1,
      public: false,
      updated_at: expect.any(String),
    });
  });
});

describe("GET /api/functions/:name", () => {
  it("returns the current version with its code and masked env", async () => {
    const res = await gw.call("/api/functions/full_1");
    expect(res.status).toBe(200);
    const fn = await body(res);
    expect(fn.code).toBe("export default () => 1");
    expect(fn.env).toEqual({ API_KEY: "***", _X: "***" });
  });

  it("answers 404 for an unknown function", async () => {
    await expectError(await gw.call("/api/functions/nope"), 404, "not_found", /nope/);
  });

  it("answers 400 for a name that cannot exist", async () => {
    await expectError(await gw.call("/api/functions/Bad.Name"), 400, "invalid_request", /^name: /);
  });
});

describe("PUT /api/functions/:name", () => {
  it("stores a new version and keeps the fields it does not mention, env included", async () => {
    const before = await body(await gw.call("/api/functions/full_1"));
    const res = await gw.call("/api/functions/full_1", { method: "PUT", json: { code: "export default () => 2" } });
    expect(res.status).toBe(200);
    const fn = await body(res);
    expect(fn).toMatchObject({ version: 2, code: "export default () => 2", runtime: "node", timeout_ms: 60000, public: true });
    expect(fn.env).toEqual({ API_KEY: "***", _X: "***" });
    expect(fn.created_at).toBe(before.created_at);
    expect((await body(await gw.call("/api/functions/full_1"))).version).toBe(2);
    // The unmasked value was carried over, not the mask.
    expect(gw.stores.functions.get("full_1")?.env.API_KEY).toBe("secret");
  });

  it("can change the runtime, the limits, the env and public in a new version", async () => {
    const res = await gw.call("/api/functions/full_1", {
      method: "PUT",
      json: { runtime: "python", code: PY_HELLO, timeout_ms: 1000, memory_mb: 64, network: false, public: false, env: { ONLY: "1" } },
    });
    expect(await body(res)).toMatchObject({ version: 3, runtime: "python", timeout_ms: 1000, memory_mb: 64, public: false, env: { ONLY: "***" } });
  });

  it("accepts the name in the body when it is the same, and refuses a rename", async () => {
    expect((await gw.call("/api/functions/full_1", { method: "PUT", json: { name: "full_1", code: "x" } })).status).toBe(200);
    await expectError(await gw.call("/api/functions/full_1", { method: "PUT", json: { name: "other", code: "x" } }), 400, "invalid_request", /renamed/);
  });

  it("answers 404 for an unknown function", async () => {
    await expectError(await gw.call("/api/functions/nope", { method: "PUT", json: { code: "x" } }), 404, "not_found");
  });

  it("validates like POST", async () => {
    await expectError(await gw.call("/api/functions/full_1", { method: "PUT", json: { runtime: "cobol" } }), 400, "invalid_request", /^runtime: /);
    await expectError(
      await gw.call("/api/functions/full_1", { method: "PUT", headers: { "content-type": "application/json" }, body: "nope" }),
      400,
      "invalid_json",
    );
  });
});

describe("GET /api/functions/:name/versions", () => {
  it("lists every version newest first, each with its code and its env masked", async () => {
    const res = await gw.call("/api/functions/full_1/versions");
    expect(res.status).toBe(200);
    const { name, items } = await body(res);
    expect(name).toBe("full_1");
    expect(items.map((v: Json) => v.version)).toEqual([4, 3, 2, 1]);
    expect(items[3]).toMatchObject({ name: "full_1", version: 1, runtime: "node", code: "export default () => 1", env: { API_KEY: "***", _X: "***" } });
  });

  it("returns one version with its code at /versions/:n", async () => {
    const v1 = await body(await gw.call("/api/functions/full_1/versions/1"));
    expect(v1).toMatchObject({ name: "full_1", version: 1, code: "export default () => 1", env: { API_KEY: "***", _X: "***" } });
  });

  it("answers 404 for an unknown version or function, 400 for a version that is not a positive integer", async () => {
    await expectError(await gw.call("/api/functions/full_1/versions/99"), 404, "not_found", /no version 99/);
    await expectError(await gw.call("/api/functions/nope/versions"), 404, "not_found");
    await expectError(await gw.call("/api/functions/full_1/versions/0"), 400, "invalid_request", /^version: /);
  });
});

describe("DELETE /api/functions/:name", () => {
  it("removes the function and its versions; the name can be registered again from version 1", async () => {
    await register(gw, { name: "doomed" });
    await gw.call("/api/functions/doomed", { method: "PUT", json: { code: "x" } });
    const res = await gw.call("/api/functions/doomed", { method: "DELETE" });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    await expectError(await gw.call("/api/functions/doomed"), 404, "not_found");
    await expectError(await gw.call("/api/functions/doomed/versions"), 404, "not_found");
    const count = gw.database.sqlite.prepare("select count(*) from function_versions where function_name = 'doomed'").pluck().get();
    expect(count).toBe(0);
    expect((await register(gw, { name: "doomed" })).version).toBe(1);
  });

  it("answers 404 for an unknown function", async () => {
    await expectError(await gw.call("/api/functions/nope", { method: "DELETE" }), 404, "not_found");
  });
});

describe("unknown routes", () => {
  it("answer 404 in the error shape", async () => {
    await expectError(await gw.call("/api/nothing-here"), 404, "not_found");
    await expectError(await gw.call("/nothing-here"), 404, "not_found");
  });
});

describe("max_concurrency", () => {
  it("is null unless set, stored per version, and can be cleared with null", async () => {
    const created = await register(gw, { name: "limited", max_concurrency: 2 });
    expect(created.max_concurrency).toBe(2);
    const cleared = await body(await gw.call("/api/functions/limited", { method: "PUT", json: { max_concurrency: null } }));
    expect(cleared).toMatchObject({ version: 2, max_concurrency: null });
    expect((await register(gw, { name: "unlimited" })).max_concurrency).toBeNull();
  });

  it.each([0, 1.5, 10_000])("answers 400 for max_concurrency %s", async (value) => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "badlimit", runtime: "python", code: "x", max_concurrency: value } });
    await expectError(res, 400, "invalid_request", /^max_concurrency: /);
  });
});

describe("PUT /api/functions/:name without anything to change", () => {
  it.each([["no body", undefined], ["an empty object", {}], ["only the name", { name: "hello" }]])("answers 400 for %s", async (_what, json) => {
    await register(gw, { name: "unchanged" }).catch(() => undefined);
    const res = await gw.call("/api/functions/unchanged", json === undefined ? { method: "PUT" } : { method: "PUT", json });
    await expectError(res, 400, "invalid_request", /at least one field/);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, PY_HELLO, register, runScenarios, type Scenario } from "./harness.js";

let gw: Gateway;
beforeAll(async () => {
  gw = await makeGateway({ MAX_CODE_BYTES: "1000", MAX_TIMEOUT_MS: "60000", MAX_MEMORY_MB: "512", MAX_ENV_VARS: "3" });
});
afterAll(() => gw.close());

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

  it("accepts a 63-character name", async () => {
    await register(gw, { name: `a${"b".repeat(62)}` });
  });

  const post = (
    name: string,
    json: unknown,
    expectedStatus: number,
    expectedError: string,
    expectedMessage?: Scenario["expectedMessage"],
  ): Scenario => ({ name, method: "POST", url: "/api/functions", json, expectedStatus, expectedError, expectedMessage });
  const limits = (settings: Record<string, unknown>, message: RegExp) =>
    post(
      `answers 400 for ${JSON.stringify(settings)}`,
      { name: "limits", runtime: "python", code: "x", ...settings },
      400,
      "invalid_request",
      message,
    );

  runScenarios(
    () => gw,
    [
      post("answers 409 when the name is taken", { name: "hello", runtime: "node", code: "x" }, 409, "conflict", /exists/),
      {
        name: "answers 400 invalid_json on a body that is not JSON",
        method: "POST",
        url: "/api/functions",
        headers: { "content-type": "application/json" },
        body: '{"name": "x",',
        expectedStatus: 400,
        expectedError: "invalid_json",
      },
      {
        name: "answers 415 with a hint when the body is not sent as JSON",
        method: "POST",
        url: "/api/functions",
        headers: { "content-type": "text/plain" },
        body: "{}",
        expectedStatus: 415,
        expectedError: "unsupported_media_type",
        expectedMessage: /Content-Type: application\/json/,
      },
      post("answers 400 naming each missing field", { name: "nofields" }, 400, "invalid_request", [
        "runtime: is required",
        "code: is required",
      ]),
      {
        name: "answers 400 on an empty body",
        method: "POST",
        url: "/api/functions",
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /name: is required/,
      },
      ...(
        [
          ["Upper", "uppercase"],
          ["-leading-dash", "a leading dash"],
          ["has space", "a space"],
          ["a".repeat(64), "64 characters"],
          ["dots.not.allowed", "a dot"],
          ["", "nothing"],
        ] as const
      ).map(([name, what]) =>
        post(
          `answers 400 for the name ${JSON.stringify(name)} (${what})`,
          { name, runtime: "python", code: PY_HELLO },
          400,
          "invalid_request",
          /^name: /,
        ),
      ),
      post("answers 400 for an unknown runtime", { name: "ruby", runtime: "ruby", code: "puts 1" }, 400, "invalid_request", /^runtime: /),
      post(
        "answers 400 for an unknown field instead of ignoring it",
        { name: "typo", runtime: "python", code: "x", timeout: 5 },
        400,
        "invalid_request",
        /timeout/,
      ),
      post(
        "answers 400 for code over MAX_CODE_BYTES, counted in UTF-8 bytes",
        { name: "big", runtime: "python", code: "é".repeat(501) },
        400,
        "invalid_request",
        /^code: .*1000 bytes/,
      ),
      post("answers 400 for empty code", { name: "empty", runtime: "python", code: "" }, 400, "invalid_request", /^code: /),
      post(
        "answers 413 for a body far larger than any function may be",
        { name: "huge", runtime: "python", code: "x".repeat(400_000) },
        413,
        "payload_too_large",
      ),
      limits({ timeout_ms: 60001 }, /^timeout_ms: /),
      limits({ timeout_ms: 50 }, /^timeout_ms: /),
      limits({ timeout_ms: 1.5 }, /^timeout_ms: /),
      limits({ memory_mb: 16 }, /^memory_mb: /),
      limits({ memory_mb: 513 }, /^memory_mb: /),
      limits({ network: "yes" }, /^network: /),
      limits({ public: 1 }, /^public: /),
      limits({ env: { "BAD-NAME": "x" } }, /^env\.BAD-NAME: /),
      limits({ env: { "1ST": "x" } }, /^env\.1ST: /),
      limits({ env: { A: 1 } }, /^env\.A: /),
      limits({ env: { A: "1", B: "2", C: "3", D: "4" } }, /^env: at most 3 variables/),
      limits({ env: { A: "nul\0byte" } }, /NUL/),
      {
        name: "answers 400 for an env variable named __proto__ rather than dropping it",
        method: "POST",
        url: "/api/functions",
        headers: { "content-type": "application/json" },
        body: '{"name":"proto","runtime":"python","code":"x","env":{"__proto__":"x","A":"1"}}',
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^env\.__proto__: /,
      },
      { ...post("answers 401 without the token", { name: "anon", runtime: "python", code: "x" }, 401, "unauthorized"), token: null },
    ],
  );
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

  runScenarios(
    () => gw,
    [
      {
        name: "answers 404 for an unknown function",
        url: "/api/functions/nope",
        expectedStatus: 404,
        expectedError: "not_found",
        expectedMessage: /nope/,
      },
      {
        name: "answers 400 for a name that cannot exist",
        url: "/api/functions/Bad.Name",
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^name: /,
      },
    ],
  );
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
    expect(gw.cluster.functions.get("full_1")?.env.API_KEY).toBe("secret");
  });

  it("can change the runtime, the limits, the env and public in a new version", async () => {
    const res = await gw.call("/api/functions/full_1", {
      method: "PUT",
      json: { runtime: "python", code: PY_HELLO, timeout_ms: 1000, memory_mb: 64, network: false, public: false, env: { ONLY: "1" } },
    });
    expect(await body(res)).toMatchObject({
      version: 3,
      runtime: "python",
      timeout_ms: 1000,
      memory_mb: 64,
      public: false,
      env: { ONLY: "***" },
    });
  });

  it("accepts the name in the body when it is the same, and refuses a rename", async () => {
    expect((await gw.call("/api/functions/full_1", { method: "PUT", json: { name: "full_1", code: "x" } })).status).toBe(200);
    await expectError(
      await gw.call("/api/functions/full_1", { method: "PUT", json: { name: "other", code: "x" } }),
      400,
      "invalid_request",
      /renamed/,
    );
  });

  runScenarios(
    () => gw,
    [
      {
        name: "answers 404 for an unknown function",
        method: "PUT",
        url: "/api/functions/nope",
        json: { code: "x" },
        expectedStatus: 404,
        expectedError: "not_found",
      },
      {
        name: "validates like POST: a runtime it does not know",
        method: "PUT",
        url: "/api/functions/full_1",
        json: { runtime: "cobol" },
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^runtime: /,
      },
      {
        name: "validates like POST: a body that is not JSON",
        method: "PUT",
        url: "/api/functions/full_1",
        headers: { "content-type": "application/json" },
        body: "nope",
        expectedStatus: 400,
        expectedError: "invalid_json",
      },
    ],
  );
});

describe("GET /api/functions/:name/versions", () => {
  it("lists every version newest first, each with its code and its env masked", async () => {
    const res = await gw.call("/api/functions/full_1/versions");
    expect(res.status).toBe(200);
    const { name, items } = await body(res);
    expect(name).toBe("full_1");
    expect(items.map((v: Json) => v.version)).toEqual([4, 3, 2, 1]);
    expect(items[3]).toMatchObject({
      name: "full_1",
      version: 1,
      runtime: "node",
      code: "export default () => 1",
      env: { API_KEY: "***", _X: "***" },
    });
  });

  it("returns one version with its code at /versions/:n", async () => {
    const v1 = await body(await gw.call("/api/functions/full_1/versions/1"));
    expect(v1).toMatchObject({ name: "full_1", version: 1, code: "export default () => 1", env: { API_KEY: "***", _X: "***" } });
  });

  runScenarios(
    () => gw,
    [
      {
        name: "answers 404 for an unknown version",
        url: "/api/functions/full_1/versions/99",
        expectedStatus: 404,
        expectedError: "not_found",
        expectedMessage: /no version 99/,
      },
      {
        name: "answers 404 for the versions of an unknown function",
        url: "/api/functions/nope/versions",
        expectedStatus: 404,
        expectedError: "not_found",
      },
      {
        name: "answers 400 for a version that is not a positive integer",
        url: "/api/functions/full_1/versions/0",
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^version: /,
      },
    ],
  );
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
    const [{ n } = {}] = await gw.sql("select count(*) as n from function_versions where function_name = 'doomed'");
    expect(Number(n)).toBe(0);
    // The runner is told, so that the function's warm instances stop now.
    expect(gw.runner.retired).toContain("doomed");
    expect((await register(gw, { name: "doomed" })).version).toBe(1);
  });

  runScenarios(
    () => gw,
    [
      {
        name: "answers 404 for an unknown function",
        method: "DELETE",
        url: "/api/functions/nope",
        expectedStatus: 404,
        expectedError: "not_found",
      },
    ],
  );
});

describe("unknown routes", () => {
  runScenarios(
    () => gw,
    [
      { name: "answer 404 in the error shape under /api", url: "/api/nothing-here", expectedStatus: 404, expectedError: "not_found" },
      { name: "answer 404 in the error shape elsewhere", url: "/nothing-here", expectedStatus: 404, expectedError: "not_found" },
    ],
  );
});

describe("max_concurrency", () => {
  it("is null unless set, stored per version, and can be cleared with null", async () => {
    const created = await register(gw, { name: "limited", max_concurrency: 2 });
    expect(created.max_concurrency).toBe(2);
    const cleared = await body(await gw.call("/api/functions/limited", { method: "PUT", json: { max_concurrency: null } }));
    expect(cleared).toMatchObject({ version: 2, max_concurrency: null });
    expect((await register(gw, { name: "unlimited" })).max_concurrency).toBeNull();
  });

  runScenarios(
    () => gw,
    [0, 1.5, 10_000].map((value) => ({
      name: `answers 400 for max_concurrency ${value}`,
      method: "POST",
      url: "/api/functions",
      json: { name: "badlimit", runtime: "python", code: "x", max_concurrency: value },
      expectedStatus: 400,
      expectedError: "invalid_request",
      expectedMessage: /^max_concurrency: /,
    })),
  );
});

describe("PUT /api/functions/:name without anything to change", () => {
  runScenarios(
    () => gw,
    (
      [
        ["no body", undefined],
        ["an empty object", {}],
        ["only the name", { name: "hello" }],
      ] as const
    ).map(([what, json]) => ({
      name: `answers 400 for ${what}`,
      before: (gateway) => register(gateway, { name: "unchanged" }).catch(() => undefined),
      method: "PUT",
      url: "/api/functions/unchanged",
      json,
      expectedStatus: 400,
      expectedError: "invalid_request",
      expectedMessage: /at least one field/,
    })),
  );
});

describe("PUT /api/functions/:name with what is there already", () => {
  it("stores no version: an identical redeploy answers the function as it is, marked unchanged", async () => {
    await register(gw, { name: "same", env: { B: "2", A: "1" }, timeout_ms: 2000 });
    const put = (json: unknown) => gw.call("/api/functions/same", { method: "PUT", json });
    const again = await put({ runtime: "python", code: PY_HELLO, env: { A: "1", B: "2" }, timeout_ms: 2000 });
    expect(again.status).toBe(200);
    expect(again.headers.get("x-fngw-unchanged")).toBe("1");
    expect(await body(again)).toMatchObject({ version: 1 });
    // What GET showed, masks included, is the same function too.
    const shown = await body(await gw.call("/api/functions/same"));
    const { name: _name, version: _v, environment: _e, pending_version: _p, created_at: _c, updated_at: _u, ...settings } = shown;
    expect((await body(await put(settings))).version).toBe(1);
    const changed = await put({ env: { A: "1", B: "3" } });
    expect(changed.headers.get("x-fngw-unchanged")).toBeNull();
    expect((await body(changed)).version).toBe(2);
    expect((await body(await gw.call("/api/functions/same/versions"))).items).toHaveLength(2);
  });
});

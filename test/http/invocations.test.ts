import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SaturatedError } from "../../src/core/runner.js";
import type { RunStatus } from "../../src/core/statuses.js";
import { encodeCursor } from "../../src/http/routes/invocations.js";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, okResult, register, result, runScenarios } from "./harness.js";

let gw: Gateway;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

async function get(path: string): Promise<{ status: number; json: Json }> {
  const res = await gw.call(path);
  return { status: res.status, json: (await res.json()) as Json };
}

/** Invokes `name` once with the given outcome; returns the invocation id. */
async function invoke(name: string, outcome: { status?: RunStatus; durationMs?: number; stdout?: string } = {}): Promise<string> {
  const status = outcome.status ?? "ok";
  gw.runner.script = () =>
    status === "ok"
      ? okResult(
          { body: Buffer.from("ok") },
          { durationMs: outcome.durationMs ?? 10, stdout: { data: Buffer.from(outcome.stdout ?? ""), truncated: false } },
        )
      : result({ status, durationMs: outcome.durationMs ?? 10, exitCode: 1, errorMessage: status });
  const res = await gw.call(`/fn/${name}`);
  return res.headers.get("x-invocation-id") ?? "";
}

beforeAll(async () => {
  gw = await makeGateway();
  await register(gw, { name: "alpha" });
  await register(gw, { name: "beta" });
  await register(gw, { name: "stats" });
});
afterAll(() => gw.close());

describe("GET /api/invocations", () => {
  let ids: string[];
  beforeAll(async () => {
    ids = [];
    for (let i = 0; i < 6; i++) {
      gw.clock.now += MINUTE;
      ids.push(await invoke(i % 2 === 0 ? "alpha" : "beta", { status: i === 3 ? "timeout" : "ok", stdout: "secret output" }));
    }
  });

  it("lists newest first, without stdout/stderr bodies", async () => {
    const { status, json } = await get("/api/invocations");
    expect(status).toBe(200);
    expect(json.items.slice(0, 6).map((i: Json) => i.id)).toEqual([...ids].reverse());
    expect(json.next_cursor).toBeNull();
    const first = json.items[0];
    expect(first).toMatchObject({
      id: ids[5],
      function: "beta",
      version: 1,
      status: "ok",
      http_status: 200,
      duration_ms: 10,
      exit_code: 0,
      method: "GET",
      path: "/",
      stdout_truncated: false,
    });
    expect(first.stdout).toBeUndefined();
    expect(first.stderr).toBeUndefined();
    expect(new Date(first.started_at).getTime()).toBe(gw.clock.now);
  });

  it("filters by function and by status", async () => {
    const alpha = await get("/api/invocations?function=alpha");
    expect(alpha.json.items.map((i: Json) => i.id)).toEqual([ids[4], ids[2], ids[0]]);
    const timeouts = await get("/api/invocations?status=timeout");
    expect(timeouts.json.items.map((i: Json) => i.id)).toEqual([ids[3]]);
    const both = await get("/api/invocations?function=beta&status=ok");
    expect(both.json.items.map((i: Json) => i.id)).toEqual([ids[5], ids[1]]);
  });

  it("filters by since (inclusive) and until (exclusive) in ISO 8601", async () => {
    const t = (i: number) => new Date(gw.clock.now - (5 - i) * MINUTE).toISOString();
    const window = await get(`/api/invocations?since=${t(1)}&until=${t(4)}`);
    expect(window.json.items.map((i: Json) => i.id)).toEqual([ids[3], ids[2], ids[1]]);
    const offset = new Date(gw.clock.now - 2 * MINUTE).toISOString().replace("Z", "+00:00");
    expect((await get(`/api/invocations?since=${encodeURIComponent(offset)}`)).json.items).toHaveLength(3);
    const day = new Date(gw.clock.now).toISOString().slice(0, 10);
    expect((await get(`/api/invocations?until=${day}`)).json.items).toHaveLength(0);
    expect((await get(`/api/invocations?since=2100-01-01T00:00:00Z`)).json.items).toHaveLength(0);
  });

  it("pages with an opaque cursor and limit", async () => {
    const page1 = await get("/api/invocations?limit=4");
    expect(page1.json.items.map((i: Json) => i.id)).toEqual([ids[5], ids[4], ids[3], ids[2]]);
    expect(typeof page1.json.next_cursor).toBe("string");
    const page2 = await get(`/api/invocations?limit=4&cursor=${page1.json.next_cursor}`);
    expect(page2.json.items.map((i: Json) => i.id)).toEqual([ids[1], ids[0]]);
    expect(page2.json.next_cursor).toBeNull();
  });

  it("keeps pages stable while new invocations arrive", async () => {
    const page1 = await get("/api/invocations?function=alpha&limit=2");
    expect(page1.json.items.map((i: Json) => i.id)).toEqual([ids[4], ids[2]]);
    gw.clock.now += MINUTE;
    const newer = await invoke("alpha");
    const page2 = await get(`/api/invocations?function=alpha&limit=2&cursor=${page1.json.next_cursor}`);
    expect(page2.json.items.map((i: Json) => i.id)).toEqual([ids[0]]);
    expect((await get("/api/invocations?function=alpha&limit=1")).json.items[0].id).toBe(newer);
  });

  it("uses a default limit of 50 and allows up to 500", async () => {
    for (let i = 0; i < 52; i++) await invoke("beta");
    const page = await get("/api/invocations");
    expect(page.json.items).toHaveLength(50);
    expect(page.json.next_cursor).not.toBeNull();
    expect((await get("/api/invocations?limit=500")).json.items.length).toBeGreaterThan(50);
  });

  runScenarios(
    () => gw,
    [
      ...(
        [
          ["limit=501", /^limit: /],
          ["limit=0", /^limit: /],
          ["limit=ten", /^limit: /],
          ["cursor=not-a-cursor!", /^cursor: /],
          [`cursor=${Buffer.from("0").toString("base64url")}`, /^cursor: /],
          [`cursor=${Buffer.from("12abc").toString("base64url")}`, /^cursor: /],
          [`cursor=${encodeCursor(12)}=`, /^cursor: /],
          ["since=yesterday", /^since: /],
          ["since=2025-13-01T00:00:00Z", /^since: /],
          ["since=2020-02-30", /^since: /],
          ["until=2021-02-29T00:00:00Z", /^until: /],
          ["since=2025-01-01T10:00:00", /^since: .*zone/],
          ["until=1700000000", /^until: /],
          ["since=2025-01-02&until=2025-01-01", /^since: since must not be after until/],
          ["status=exploded", /^status: /],
          ["function=Not_A_Name", /^function: /],
        ] as const
      ).map(([query, message]) => ({
        name: `answers 400 for ?${query}`,
        url: `/api/invocations?${query}`,
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: message,
      })),
      {
        name: "answers 401 without the token",
        url: "/api/invocations",
        token: null,
        expectedStatus: 401,
        expectedError: "unauthorized",
        expectedHeaders: { "www-authenticate": /^Bearer/ },
      },
    ],
  );
});

describe("GET /api/invocations?after=<id>", () => {
  let ids: string[];
  beforeAll(async () => {
    await register(gw, { name: "poll-a" });
    await register(gw, { name: "poll-b" });
    ids = [];
    for (let i = 0; i < 5; i++) ids.push(await invoke(i % 2 === 0 ? "poll-a" : "poll-b", { status: i === 2 ? "error" : "ok" }));
  });

  it("lists what finished after that invocation, oldest first, with the same filters", async () => {
    const all = await get(`/api/invocations?after=${ids[0]}`);
    expect(all.status).toBe(200);
    expect(all.json.items.map((i: Json) => i.id)).toEqual(ids.slice(1));
    expect(all.json.next_cursor).toBeNull();
    expect((await get(`/api/invocations?after=${ids[0]}&function=poll-a`)).json.items.map((i: Json) => i.id)).toEqual([ids[2], ids[4]]);
    expect((await get(`/api/invocations?after=${ids[0]}&status=error`)).json.items.map((i: Json) => i.id)).toEqual([ids[2]]);
  });

  it("continues with next_cursor passed as after while more follow, and is empty once caught up", async () => {
    const page1 = await get(`/api/invocations?after=${ids[0]}&limit=3`);
    expect(page1.json.items.map((i: Json) => i.id)).toEqual(ids.slice(1, 4));
    expect(page1.json.next_cursor).toBe(ids[3]);
    const page2 = await get(`/api/invocations?after=${page1.json.next_cursor}&limit=3`);
    expect(page2.json).toMatchObject({ items: [{ id: ids[4] }], next_cursor: null });
    const caughtUp = await get(`/api/invocations?after=${ids[4]}`);
    expect(caughtUp.json).toEqual({ items: [], next_cursor: null });
    const newer = await invoke("poll-b");
    expect((await get(`/api/invocations?after=${ids[4]}`)).json.items.map((i: Json) => i.id)).toEqual([newer]);
  });

  runScenarios(
    () => gw,
    [
      {
        name: "answers 400 for an id the log does not hold",
        url: "/api/invocations?after=0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f",
        expectedStatus: 400,
        expectedError: "unknown_invocation",
        expectedMessage: /^after: no invocation with id '0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f'/,
      },
      {
        name: "answers 400 for an empty after",
        url: "/api/invocations?after=",
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^after: /,
      },
      {
        name: "answers 400 for after with cursor",
        url: `/api/invocations?after=x&cursor=${encodeCursor(3)}`,
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^after: after and cursor do not combine/,
      },
      {
        name: "answers 401 without the token",
        url: "/api/invocations?after=x",
        token: null,
        expectedStatus: 401,
        expectedError: "unauthorized",
      },
    ],
  );
});

describe("GET /api/invocations/:id", () => {
  it("returns one invocation with stdout and stderr", async () => {
    gw.runner.script = () =>
      okResult({}, { stdout: { data: Buffer.from("out"), truncated: false }, stderr: { data: Buffer.from("err"), truncated: true } });
    const id = (await gw.call("/fn/alpha")).headers.get("x-invocation-id");
    const { status, json } = await get(`/api/invocations/${id}`);
    expect(status).toBe(200);
    expect(json).toMatchObject({ id, function: "alpha", stdout: "out", stderr: "err", stdout_truncated: false, stderr_truncated: true });
  });

  runScenarios(
    () => gw,
    [
      {
        name: "answers 404 for an unknown id",
        url: "/api/invocations/0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f",
        expectedStatus: 404,
        expectedError: "not_found",
      },
    ],
  );
});

describe("a deleted function's log", () => {
  it("stays queryable by function, by id and in stats", async () => {
    await register(gw, { name: "ephemeral" });
    const id = await invoke("ephemeral", { durationMs: 7 });
    expect((await gw.call("/api/functions/ephemeral", { method: "DELETE" })).status).toBe(204);
    expect((await get("/api/invocations?function=ephemeral")).json.items.map((i: Json) => i.id)).toEqual([id]);
    expect((await get(`/api/invocations/${id}`)).json.function).toBe("ephemeral");
    const stats = await get("/api/functions/ephemeral/stats");
    expect(stats.status).toBe(200);
    expect(stats.json).toMatchObject({ count: 1, duration_ms: { p50: 7 } });
  });
});

describe("GET /api/functions/:name/stats", () => {
  beforeAll(async () => {
    // One slow call two days before the rest, that only a 7d window sees.
    await invoke("stats", { durationMs: 5000 });
    gw.clock.now += 48 * HOUR;
    // Durations 1..100 ms, shuffled, within the last hour.
    const durations = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const d of durations) await invoke("stats", { durationMs: d });
    await invoke("stats", { status: "error", durationMs: 1 });
    await invoke("stats", { status: "oom", durationMs: 1 });
    await invoke("stats", { status: "timeout", durationMs: 1000 });
    gw.runner.script = () => {
      throw new SaturatedError(1);
    };
    await gw.call("/fn/stats");
  });

  it("counts by status and gives nearest-rank percentiles of the runs in the window", async () => {
    const { status, json } = await get("/api/functions/stats/stats?window=1h");
    expect(status).toBe(200);
    expect(json).toMatchObject({
      function: "stats",
      window: "1h",
      count: 104,
      errors: 2,
      timeouts: 1,
      by_status: { ok: 100, error: 1, oom: 1, timeout: 1, rejected: 1, forbidden: 0, running: 0, interrupted: 0 },
    });
    // 103 runs: 1, 1, 1..100, 1000 (the rejected call has no run time).
    expect(json.duration_ms).toEqual({ p50: 50, p95: 96, p99: 100, max: 1000, mean: (5050 + 1 + 1 + 1000) / 103 });
    expect(json).toMatchObject({ p50: 50, p95: 96, p99: 100 });
    expect(Date.parse(json.until) - Date.parse(json.since)).toBe(HOUR);
  });

  it("defaults to 24h and widens with the window", async () => {
    expect((await get("/api/functions/stats/stats")).json).toMatchObject({ window: "24h", count: 104 });
    const week = await get("/api/functions/stats/stats?window=7d");
    expect(week.json).toMatchObject({ count: 105, duration_ms: { max: 5000 } });
    expect((await get("/api/functions/stats/stats?window=90d")).status).toBe(200);
  });

  it("reports zero and null percentiles for a window with nothing in it", async () => {
    gw.clock.now += 2 * HOUR;
    const { json } = await get("/api/functions/stats/stats?window=30m");
    gw.clock.now -= 2 * HOUR;
    expect(json).toMatchObject({ count: 0, errors: 0, duration_ms: { p50: null, p95: null, p99: null, max: null, mean: null } });
  });

  runScenarios(
    () => gw,
    [
      ...["1w", "0h", "91d", "h", "1.5h", "-1h"].map((window) => ({
        name: `answers 400 for window=${window}`,
        url: `/api/functions/stats/stats?window=${window}`,
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /^window: /,
      })),
      {
        name: "answers 404 for a function that neither exists nor appears in the log",
        url: "/api/functions/never/stats",
        expectedStatus: 404,
        expectedError: "not_found",
      },
    ],
  );
});

describe("output longer than the log keeps (LOG_OUTPUT_MAX_BYTES)", () => {
  it("stores its head and its tail with the dropped bytes counted between, in the row and the API", async () => {
    const small = await makeGateway({ LOG_OUTPUT_MAX_BYTES: "1000" });
    try {
      await register(small, { name: "chatty" });
      const lines = Array.from({ length: 400 }, (_, i) => `line ${String(i).padStart(3, "0")}\n`).join(""); // 3,600 bytes
      small.runner.script = () =>
        okResult({ body: Buffer.from("ok") }, { stdout: { data: Buffer.from(`${lines}Traceback: the end\n`), truncated: false } });
      const id = (await small.call("/fn/chatty")).headers.get("x-invocation-id");
      const shown = (await (await small.call(`/api/invocations/${id}`)).json()) as Json;
      expect(shown.stdout).toMatch(/^line 000\n/);
      expect(shown.stdout).toMatch(/Traceback: the end\n$/);
      expect(shown.stdout_truncated).toBe(true);
      expect(shown.stdout_dropped_bytes).toBeGreaterThan(2000);
      expect(shown.stdout).toContain(`[fngw] ${shown.stdout_dropped_bytes} bytes dropped here\n`);
      expect(Buffer.byteLength(shown.stdout)).toBeLessThan(1100);
      expect(await small.logRow(id)).toMatchObject({ stdout_dropped_bytes: shown.stdout_dropped_bytes, stderr_dropped_bytes: 0 });
    } finally {
      await small.close();
    }
  });
});

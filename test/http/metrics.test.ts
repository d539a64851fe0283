import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Gateway, makeGateway, parseMetrics, register, result } from "./harness.js";

let gw: Gateway;
beforeEach(async () => {
  gw = await makeGateway({ MAX_BODY_BYTES: "16" });
});
afterEach(() => gw.close());

async function tokenWith(scopes: string[]): Promise<string> {
  const res = await gw.call("/api/tokens", { method: "POST", json: { name: `t-${scopes.join("-")}`, scopes } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

async function scrape(token?: string): Promise<ReturnType<typeof parseMetrics>> {
  const res = await gw.call("/metrics", { token });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

describe("GET /metrics — who may scrape", () => {
  it("refuses a request without a token (401) and a token without metrics:read (403)", async () => {
    const anonymous = await gw.call("/metrics", { token: null });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { code: "unauthorized" } });
    const logsOnly = await gw.call("/metrics", { token: await tokenWith(["logs:read"]) });
    expect(logsOnly.status).toBe(403);
    expect(((await logsOnly.json()) as { error: { message: string } }).error.message).toMatch(/'metrics:read' scope/);
  });

  it("answers a metrics:read token and the admin token", async () => {
    expect((await scrape(await tokenWith(["metrics:read"]))).value("fngw_invocations_in_flight")).toBe(0);
    expect((await scrape()).value("fngw_invocations_in_flight")).toBe(0);
  });
});

describe("GET /metrics — the figures", () => {
  it("counts invocations by function and status, and times the runs and the log writes", async () => {
    await register(gw, { name: "hello", public: true });
    await register(gw, { name: "other", public: true });
    for (let i = 0; i < 2; i++) expect((await gw.call("/fn/hello")).status).toBe(200);
    gw.runner.script = () => result({ status: "error", exitCode: 1, durationMs: 2500, errorMessage: "boom" });
    expect((await gw.call("/fn/other")).status).toBe(500);
    expect((await gw.call("/fn/hello", { method: "POST", body: "x".repeat(64) })).status).toBe(413);

    const m = await scrape();
    expect(m.value("fngw_invocations_total", { function: "hello", status: "ok" })).toBe(2);
    expect(m.value("fngw_invocations_total", { function: "other", status: "error" })).toBe(1);
    expect(m.value("fngw_invocations_total", { function: "hello", status: "rejected" })).toBe(1);
    expect(m.value("fngw_rejections_total", { reason: "body_too_large" })).toBe(1);
    // Runs only: the refused one has no run to time. The error's 2.5 s lands in the 5 s bucket, not the 1 s one.
    expect(m.value("fngw_invocation_duration_seconds_count", { function: "hello" })).toBe(2);
    expect(m.value("fngw_invocation_duration_seconds_bucket", { function: "other", le: "1" })).toBe(0);
    expect(m.value("fngw_invocation_duration_seconds_bucket", { function: "other", le: "5" })).toBe(1);
    expect(m.value("fngw_invocation_duration_seconds_sum", { function: "other" })).toBeCloseTo(2.5);
    expect(m.value("fngw_log_write_seconds_count", { write: "start" })).toBe(4);
    expect(m.value("fngw_log_write_seconds_count", { write: "finish" })).toBe(4);
    expect(m.families.find((f) => f.name === "fngw_invocation_duration_seconds")?.type).toBe("HISTOGRAM");
    expect(m.value("fngw_database_bytes", { kind: "file" })).toBeGreaterThan(0);
    expect(m.value("fngw_database_bytes", { kind: "used" })).toBeGreaterThan(0);
    expect(m.value("process_cpu_user_seconds_total")).toBeGreaterThan(0);
  });

  it("reads in-flight invocations from admission, and queue depth and standbys from the runner's health", async () => {
    await register(gw, { name: "slow", public: true });
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    gw.runner.script = async () => {
      await held;
      return result({ response: { status: 200, headers: [], body: Buffer.from("done") } });
    };
    gw.health.value = { ready: true, queued: 3, standby_by_runtime: { python: 2, node: 1 } };
    const running = gw.call("/fn/slow");
    await new Promise((resolve) => setTimeout(resolve, 20));
    const during = await scrape();
    expect(during.value("fngw_invocations_in_flight")).toBe(1);
    expect(during.value("fngw_queue_depth")).toBe(3);
    expect(during.value("fngw_standby_interpreters", { runtime: "python" })).toBe(2);
    expect(during.value("fngw_standby_interpreters", { runtime: "node" })).toBe(1);
    finish();
    expect((await running).status).toBe(200);
    expect((await scrape()).value("fngw_invocations_in_flight")).toBe(0);
  });

  it("keeps a registry per app: a second app's figures start at zero", async () => {
    await register(gw, { name: "hello", public: true });
    await gw.call("/fn/hello");
    const second = await makeGateway();
    try {
      const res = await second.call("/metrics");
      const m = parseMetrics(await res.text());
      expect(m.value("fngw_invocations_total", { function: "hello" })).toBeUndefined();
      expect((await scrape()).value("fngw_invocations_total", { function: "hello", status: "ok" })).toBe(1);
    } finally {
      await second.close();
    }
  });
});

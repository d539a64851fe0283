// /metrics and the gateway's JSON log against the real gateway and real interpreters. README
// "Metrics and logs" is the spec.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMetrics } from "../http/harness.js";
import { client, register, removeDataDir, type Server, startServer, waitFor } from "./harness.js";

const TOKEN = "e2e-metrics-token-5d81c0a7e2";

describe("a real gateway's metrics and log", () => {
  let server: Server;
  const call = client(
    () => server.url,
    () => TOKEN,
  );
  beforeAll(async () => {
    server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, STANDBY_INTERPRETERS: "1" }, uidIndex: 0 });
    await register(call, { name: "m-ok", runtime: "python", code: 'def handler(request):\n    return {"ok": True}\n' });
    await register(call, { name: "m-fail", runtime: "node", code: "export default () => { throw new Error('boom'); };\n" });
  });
  afterAll(async () => {
    const code = await server.stop();
    removeDataDir(server.dataDir);
    expect(code, `stderr:\n${server.stderr()}`).toBe(0);
  });

  it("counts real invocations by function and status, times them, and shows the standbys", async () => {
    for (let i = 0; i < 3; i++) expect((await call("/fn/m-ok")).status).toBe(200);
    expect((await call("/fn/m-fail")).status).toBe(500);
    expect((await call("/metrics", { token: null })).status).toBe(401);
    // Standbys are started again after each run: wait for both runtimes' to be ready.
    let text = "";
    await waitFor(async () => {
      text = await (await call("/metrics")).text();
      const m = parseMetrics(text);
      return (
        (m.value("fngw_standby_interpreters", { runtime: "python" }) ?? 0) >= 1 &&
        (m.value("fngw_standby_interpreters", { runtime: "node" }) ?? 0) >= 1
      );
    }, "a ready standby of each runtime");
    const m = parseMetrics(text);
    expect(m.value("fngw_invocations_total", { function: "m-ok", status: "ok" })).toBe(3);
    expect(m.value("fngw_invocations_total", { function: "m-fail", status: "error" })).toBe(1);
    expect(m.value("fngw_invocation_duration_seconds_count", { function: "m-ok" })).toBe(3);
    expect(m.value("fngw_invocation_duration_seconds_sum", { function: "m-ok" })).toBeGreaterThan(0);
    expect(m.value("fngw_log_write_seconds_count", { write: "finish" })).toBe(4);
    expect(m.value("fngw_invocations_in_flight")).toBe(0);
    expect(m.value("fngw_queue_depth")).toBe(0);
    expect(m.value("fngw_database_bytes", { kind: "file" })).toBeGreaterThan(0);
    expect(m.value("process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("logs JSON lines on stdout, the listen line among them", () => {
    const lines = server
      .stdout()
      .split("\n")
      .filter((line) => line.length > 0);
    const parsed = lines.map((line) => JSON.parse(line) as { level: string; msg: string });
    expect(parsed.find((line) => line.msg.startsWith("fngw listening on http://"))).toMatchObject({ level: "info" });
  });
});

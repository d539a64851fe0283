// End to end: functions with isolation "function" through the real gateway: warm instances keep
// state between invocations of a version, a PUT never lets the old code answer again, every
// invocation keeps its own log row and output, and /healthz shows the instances.
import { describe, expect, it } from "vitest";
import { invocation, invocationId, type Json, useGateway } from "./harness.js";

const TOKEN = "e2e-warm-token-3f9a61c2d8";
const gateway = useGateway(TOKEN, { MAX_CONCURRENCY: "4" });

const counter = (label: string) => `import os, sys
count = 0
def handler(request):
    global count
    count += 1
    print("${label} stdout", count)
    print("${label} stderr", count, file=sys.stderr)
    return {"label": "${label}", "count": count, "pid": os.getpid()}
`;

describe("isolation: function", () => {
  it("is a setting: shown by the API, invocation by default, a bad value refused with a 400", async () => {
    const plain = await gateway.python("warm-default", `print("x")`);
    expect(plain.isolation).toBe("invocation");
    const bad = await gateway.call("/api/functions", {
      method: "POST",
      json: { name: "warm-bad", runtime: "python", code: "x=1", isolation: "process" },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Json).error).toMatchObject({ code: expect.any(String), message: expect.stringContaining("isolation") });
  });

  it("keeps state between invocations, logs each with its own output, and serves a new version at once after a PUT", async () => {
    await gateway.python("warm-counter", counter("v1"), { isolation: "function" });
    const first = await gateway.call("/fn/warm-counter");
    const second = await gateway.call("/fn/warm-counter");
    const a = (await first.json()) as Json;
    const b = (await second.json()) as Json;
    expect(a).toMatchObject({ label: "v1", count: 1 });
    expect(b).toMatchObject({ label: "v1", count: 2, pid: a.pid });

    const rowA = await invocation(gateway.call, invocationId(first));
    const rowB = await invocation(gateway.call, invocationId(second));
    expect(rowA).toMatchObject({ status: "ok", stdout: "v1 stdout 1\n", stderr: "v1 stderr 1\n" });
    expect(rowB).toMatchObject({ status: "ok", stdout: "v1 stdout 2\n", stderr: "v1 stderr 2\n" });
    expect(rowA.duration_ms).toBeGreaterThan(0);

    const health = (await (await gateway.call("/healthz")).json()) as Json;
    expect(health.sandbox.warm.count).toBeGreaterThanOrEqual(1);
    expect(health.sandbox.warm.instances).toContainEqual(
      expect.objectContaining({ function: "warm-counter", version: 1, pid: a.pid, invocations: 2, rssBytes: expect.any(Number) }),
    );

    const put = await gateway.call("/api/functions/warm-counter", { method: "PUT", json: { code: counter("v2") } });
    expect(put.status).toBe(200);
    const after = (await (await gateway.call("/fn/warm-counter")).json()) as Json;
    expect(after).toMatchObject({ label: "v2", count: 1 });
    expect(after.pid).not.toBe(a.pid);
  });

  it("logs a timed-out invocation as `timeout` and answers the next one from a fresh instance (JavaScript)", async () => {
    const code = `let count = 0;
export default (request) => {
  count += 1;
  if (new URL(request.url).searchParams.has("hang")) for (;;);
  return { count, pid: process.pid };
};`;
    await gateway.node("warm-hang", code, { isolation: "function", timeout_ms: 500 });
    const first = (await (await gateway.call("/fn/warm-hang")).json()) as Json;
    expect(first.count).toBe(1);
    const hung = await gateway.call("/fn/warm-hang?hang=1");
    expect(hung.status).toBe(504);
    expect(await invocation(gateway.call, invocationId(hung))).toMatchObject({ status: "timeout" });
    const next = (await (await gateway.call("/fn/warm-hang")).json()) as Json;
    expect(next.count).toBe(1);
    expect(next.pid).not.toBe(first.pid);
  });
});

// The HTTP edge in-process: bodies read before admission and within a deadline, response headers
// checked with Node's own rules. test/e2e/edges.test.ts covers the same over real sockets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeDropped, toHttpResponse } from "../../src/http/invoke/exchange.js";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, okResult, register } from "./harness.js";

let gw: Gateway;
beforeAll(async () => {
  gw = await makeGateway({ MAX_CONCURRENCY: "1", QUEUE_LIMIT: "0", BODY_READ_TIMEOUT_MS: "300", MAX_READING_REQUESTS: "3" });
  await register(gw, { name: "open", public: true });
});
afterAll(() => gw.close());

const logRow = (id: string | null) => gw.logRow(id);

/** A body that sends `first` and then nothing more, until cancelled. */
function stalledBody(first = "x"): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(first));
    },
  });
}

const stalledPost = (name: string) =>
  gw.call(`/fn/${name}`, { method: "POST", body: stalledBody(), token: null, duplex: "half" } as RequestInit);

describe("request bodies are read before admission, within BODY_READ_TIMEOUT_MS", () => {
  it("answers 408 to a body that stalls, with a `rejected` row, and holds no admission place meanwhile", async () => {
    const started = performance.now();
    const pending = stalledPost("open");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(gw.admission.size).toBe(0);
    const res = await pending;
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(res.status).toBe(408);
    expect(res.headers.get("connection")).toBe("close");
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe("request_timeout");
    expect(body.error.message).toContain("BODY_READ_TIMEOUT_MS");
    expect(await logRow(res.headers.get("x-invocation-id"))).toMatchObject({
      function_name: "open",
      status: "rejected",
      http_status: 408,
      request_bytes: 0,
    });
  });

  it("serves a complete request while more stalled bodies are pending than the gateway admits", async () => {
    const stalled = [stalledPost("open"), stalledPost("open")];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const res = await gw.call("/fn/open", { method: "POST", body: "hello" });
    expect(res.status).toBe(200);
    expect(gw.runner.last.request.body).toEqual(Buffer.from("hello"));
    expect((await Promise.all(stalled)).map((r) => r.status)).toEqual([408, 408]);
  });

  it("answers 429 with a `rejected` row past MAX_READING_REQUESTS bodies being received", async () => {
    const stalled = [stalledPost("open"), stalledPost("open"), stalledPost("open")];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const res = await gw.call("/fn/open", { method: "POST", body: "fourth" });
    expect(res.status).toBe(429);
    expect(((await res.json()) as Json).error.message).toContain("MAX_READING_REQUESTS");
    expect(await logRow(res.headers.get("x-invocation-id"))).toMatchObject({ status: "rejected", http_status: 429 });
    await Promise.all(stalled);
  });

  it("gives the management API the same deadline", async () => {
    const res = await gw.call("/api/functions", {
      method: "POST",
      body: stalledBody("{"),
      headers: { "content-type": "application/json" },
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(408);
    expect(((await res.json()) as Json).error.code).toBe("request_timeout");
  });
});

describe("response headers Node would refuse", () => {
  it("are dropped with the reason, by Node's own rules, and the rest go out", () => {
    const { response, dropped } = toHttpResponse({
      status: 200,
      headers: [
        ["x-ctl", "a\x01b"],
        ["x-del", "\x7f"],
        ["x-newline", "a\nb"],
        ["bad name", "v"],
        ["x-ünicode", "v"],
        ["x-good", "yes"],
        ["x-latin1", "caf\xe9"],
      ],
      body: Buffer.from("ok"),
    });
    expect(dropped.map((d) => d.name)).toEqual(["x-ctl", "x-del", "x-newline", "bad name", "x-ünicode"]);
    expect(response.headers.get("x-good")).toBe("yes");
    expect(response.headers.has("x-latin1")).toBe(true);
    const lines = describeDropped(dropped).trimEnd().split("\n");
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^\[fngw\] dropped response header x-ctl: .*x-ctl/);
    expect(lines[3]).toContain('dropped response header "bad name"');
  });

  it("are reported in the invocation's stderr after the function's own, and the row keeps the status that went out", async () => {
    gw.runner.script = () =>
      okResult(
        {
          status: 202,
          headers: [
            ["x-ctl", "\x01"],
            ["x-good", "1"],
          ],
        },
        { stderr: { data: Buffer.from("own line\n"), truncated: false } },
      );
    const res = await gw.call("/fn/open");
    expect(res.status).toBe(202);
    expect(res.headers.has("x-ctl")).toBe(false);
    expect(res.headers.get("x-invocation-id")).toBeTruthy();
    const row = (await logRow(res.headers.get("x-invocation-id")))!;
    expect(row).toMatchObject({ status: "ok", http_status: 202 });
    expect(row.stderr).toMatch(/^own line\n\[fngw\] dropped response header x-ctl: /);
  });
});

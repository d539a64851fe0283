// How /fn answers a streamed run and live output, over a scripted runner: the head as the function
// gave it (with the gateway's rules for headers), the body as it comes, the row written before the
// body's end, the admission place held until then; live output's events. TypeScript registration.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RunOptions, StreamedResponse } from "../../src/core/runner.js";
import { wantsLiveOutput } from "../../src/http/invoke/exchange.js";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, okResult, register, result } from "./harness.js";

let gw: Gateway;
beforeAll(async () => {
  gw = await makeGateway({ MAX_CONCURRENCY: "1", QUEUE_LIMIT: "0" });
  await register(gw, { name: "streams" });
});
afterAll(() => gw.close());

/** A body the test writes into, chunk by chunk; `cancelled` says whether its reader gave up. */
function body() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const state = { cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    cancel: () => {
      state.cancelled = true;
    },
  });
  return {
    stream,
    state,
    write: (text: string) => controller.enqueue(new TextEncoder().encode(text)),
    end: () => controller.close(),
    fail: () => controller.error(new Error("cut")),
  };
}

/** Scripts the next run to stream `head` with `chunks`, and to end with `ended` once the body is read. */
function streamNext(head: Omit<StreamedResponse, "body">, control: ReturnType<typeof body>, ended = result({ status: "ok" })) {
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => (finish = resolve));
  gw.runner.script = async (_spec, options: RunOptions) => {
    options.onStream?.({ ...head, body: control.stream });
    await done;
    return ended;
  };
  return finish;
}

const logRow = (id: string | null) => gw.logRow(id);

beforeEach(() => {
  gw.runner.script = () => okResult({ body: Buffer.from("{}") });
});

describe("a streamed answer", () => {
  it("goes out with the function's head and its chunks as written; the row is written before the body ends", async () => {
    const control = body();
    const finish = streamNext(
      {
        status: 201,
        headers: [
          ["x-a", "b"],
          ["connection", "close"],
          ["bad", "\u0001"],
        ],
      },
      control,
    );
    const res = await gw.call("/fn/streams");
    expect(res.status).toBe(201);
    expect(res.headers.get("x-a")).toBe("b");
    expect(res.headers.get("connection")).toBeNull();
    const id = res.headers.get("x-invocation-id");
    const reader = res.body!.getReader();
    control.write("one ");
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("one ");
    expect(await logRow(id)).toMatchObject({ status: "running" });
    control.write("two");
    control.end();
    finish();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("two");
    expect(await reader.read()).toMatchObject({ done: true });
    // The body's end reached the client only after its row was written.
    expect(await logRow(id)).toMatchObject({ status: "ok", http_status: 201, response_bytes: 7, first_byte_ms: expect.any(Number) });
    expect((await logRow(id))?.stderr).toContain("[fngw] dropped response header bad");
  });

  it("holds its admission place until the body has ended", async () => {
    const control = body();
    const finish = streamNext({ status: 200, headers: [] }, control);
    const res = await gw.call("/fn/streams");
    expect((await gw.call("/fn/streams")).status).toBe(429); // MAX_CONCURRENCY 1, QUEUE_LIMIT 0
    control.end();
    finish();
    await res.text();
    gw.runner.script = () => okResult({ body: Buffer.from("{}") });
    expect((await gw.call("/fn/streams")).status).toBe(200);
  });

  it("is marked uncached and unbuffered when it is an event stream (a Cache-Control of the function's own kept)", async () => {
    const cases: [[string, string][], string][] = [
      [[], "no-cache"],
      [[["cache-control", "private, max-age=0"]], "private, max-age=0"],
    ];
    for (const [given, expected] of cases) {
      const control = body();
      const finish = streamNext({ status: 200, headers: [["content-type", "text/event-stream; charset=utf-8"], ...given] }, control);
      const res = await gw.call("/fn/streams");
      expect(res.headers.get("cache-control")).toBe(expected);
      expect(res.headers.get("x-accel-buffering")).toBe("no");
      control.end();
      finish();
      await res.text();
    }
  });

  it("records the run's own end when it fails mid-stream: the status it sent, the bytes that went out", async () => {
    const control = body();
    const finish = streamNext({ status: 200, headers: [] }, control, result({ status: "timeout", errorMessage: "timed out after 100 ms" }));
    const res = await gw.call("/fn/streams");
    const id = res.headers.get("x-invocation-id");
    const reader = res.body!.getReader();
    control.write("partial");
    await reader.read();
    control.fail();
    finish();
    await expect(reader.read()).rejects.toThrow();
    expect(await logRow(id)).toMatchObject({ status: "timeout", http_status: 200, response_bytes: 7, error: "timed out after 100 ms" });
  });

  it("drops the body of a status that has none, and still waits for the run to log it", async () => {
    const control = body();
    const finish = streamNext({ status: 204, headers: [] }, control);
    const res = await gw.call("/fn/streams");
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    const id = res.headers.get("x-invocation-id");
    control.write("ignored");
    control.end();
    finish();
    await expect.poll(async () => (await logRow(id))?.status).toBe("ok");
  });
});

describe("live output", () => {
  it("is asked for with Accept: text/event-stream (not with q=0)", () => {
    expect(wantsLiveOutput("text/event-stream")).toBe(true);
    expect(wantsLiveOutput("application/json, text/event-stream;q=0.5")).toBe(true);
    expect(wantsLiveOutput("text/event-stream;q=0, */*")).toBe(false);
    expect(wantsLiveOutput("*/*")).toBe(false);
    expect(wantsLiveOutput(undefined)).toBe(false);
  });

  it("relays output as it comes, then the answer (base64 when binary) and how the run ended", async () => {
    gw.runner.script = (_spec, options) => {
      options.onOutput?.("stdout", Buffer.from("hello\n"));
      options.onOutput?.("stderr", Buffer.from([0xc3])); // half of "é": held until the rest comes
      options.onOutput?.("stderr", Buffer.from([0xa9, 0x0a]));
      return okResult({ status: 200, headers: [["content-type", "application/octet-stream"]], body: Buffer.from([0xff, 0]) });
    };
    const res = await gw.call("/fn/streams", { headers: { accept: "text/event-stream" } });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text();
    const id = res.headers.get("x-invocation-id");
    expect(text).toContain("event: stdout\ndata: hello\ndata: \n\n");
    expect(text).toContain("event: stderr\ndata: é\ndata: \n\n");
    const result = JSON.parse(/event: result\ndata: (.*)\n/.exec(text)![1]!) as Json;
    expect(result).toEqual({
      status: 200,
      headers: [["content-type", "application/octet-stream"]],
      body: Buffer.from([0xff, 0]).toString("base64"),
      body_encoding: "base64",
    });
    const end = JSON.parse(/event: end\ndata: (.*)\n/.exec(text)![1]!) as Json;
    expect(end).toEqual({ status: "ok", exit_code: 0, duration_ms: 12, invocation_id: id });
    expect(await logRow(id)).toMatchObject({ status: "ok", http_status: 200, response_bytes: Buffer.byteLength(text) });
  });

  it("is refused before its stream begins when the function is at its limit: a plain 429", async () => {
    const control = body();
    const finish = streamNext({ status: 200, headers: [] }, control);
    const holding = await gw.call("/fn/streams"); // holds the only place
    const res = await gw.call("/fn/streams", { headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(429); // refused before the stream began: a plain answer
    control.end();
    finish();
    await holding.text();
  });
});

describe("TypeScript functions", () => {
  it("are registered as written, and refused at registration with the line and column of a type syntax error", async () => {
    const code = "interface A { n: number }\nexport default (a: A): number => a.n;\n";
    const created = await gw.call("/api/functions", { method: "POST", json: { name: "typed", runtime: "typescript", code } });
    expect(created.status).toBe(201);
    expect(((await created.json()) as Json).code).toBe(code);
    const bad = await gw.call("/api/functions", {
      method: "POST",
      json: { name: "typed-bad", runtime: "typescript", code: "const ok = 1;\nfunction f(x: ) {}\n" },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Json).error).toMatchObject({ code: "syntax_error", line: 2, column: 15 });
  });
});

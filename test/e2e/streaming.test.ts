// End to end: answers streamed through the real gateway as the function writes them, in both
// runtimes and both isolations; Server-Sent Events passed through; live output; and the limits
// that hold while a stream runs (the deadline, MAX_RESPONSE_BYTES, a client that goes away).
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { describe, expect, it } from "vitest";
import { invocation, invocationId, type Json, useGateway, waitFor } from "./harness.js";

const TOKEN = "e2e-streaming-token-5b7c0e91d4";
const gateway = useGateway(TOKEN, { MAX_CONCURRENCY: "4", MAX_RESPONSE_BYTES: String(1024 * 1024) });
const { call } = gateway;

/** A response body read chunk by chunk, each chunk with the log row's status when it arrived. */
async function readChunks(res: Response, id: string): Promise<{ text: string; rowStatus: string }[]> {
  const reader = res.body!.getReader();
  const chunks: { text: string; rowStatus: string }[] = [];
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    // Asked only for the first chunks: by then most of the stream is still to come.
    const rowStatus = chunks.length < 2 ? String((await invocation(call, id)).status) : "";
    chunks.push({ text: decoder.decode(value, { stream: true }), rowStatus });
  }
}

const TEN_CHUNKS = {
  node: `export default () => new Response(new ReadableStream({
  async start(controller) {
    for (let i = 0; i < 10; i++) {
      controller.enqueue(new TextEncoder().encode("chunk " + i + "\\n"));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    controller.close();
  },
}), { headers: { "content-type": "text/plain" } });`,
  python: `import time
def handler(request):
    for i in range(10):
        yield f"chunk {i}\\n"
        time.sleep(0.1)
`,
} as const;

const ALL_CHUNKS = Array.from({ length: 10 }, (_, i) => `chunk ${i}\n`).join("");

describe.each(["invocation", "function"] as const)("isolation %s", (isolation) => {
  it.each(["node", "python"] as const)("streams %s's ten chunks as they are written", async (runtime) => {
    const name = `ten-${runtime}-${isolation}`;
    await gateway[runtime](name, TEN_CHUNKS[runtime], { isolation });
    const res = await call(`/fn/${name}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBeNull();
    const id = invocationId(res);
    const chunks = await readChunks(res, id);
    expect(chunks.map((c) => c.text).join("")).toBe(ALL_CHUNKS);
    // The first chunk reached the client while the function was still running, and the rest
    // came apart (100 ms apart as written), not in one piece at the end.
    expect(chunks[0]!.rowStatus).toBe("running");
    expect(chunks.length).toBeGreaterThanOrEqual(5);
    await waitFor(async () => (await invocation(call, id)).status !== "running", "the row's end");
    expect(await invocation(call, id)).toMatchObject({ status: "ok", http_status: 200, response_bytes: ALL_CHUNKS.length });
  });
});

describe("an asynchronous invocation of a streaming function", () => {
  it.each(["node", "python"] as const)("stores %s's whole body as the job's answer", async (runtime) => {
    const name = `ten-${runtime}-async`;
    await gateway[runtime](name, TEN_CHUNKS[runtime]);
    const accepted = await call(`/fn/${name}`, { method: "POST", headers: { prefer: "respond-async" } });
    expect(accepted.status).toBe(202);
    const id = invocationId(accepted);
    let job: Json = {};
    await waitFor(async () => {
      job = (await (await call(`/api/invocations/${id}`)).json()) as Json;
      return job.state === "succeeded";
    }, `job ${id} to succeed`);
    expect(job.result).toMatchObject({ status: 200, body: ALL_CHUNKS, body_encoding: "utf8", truncated: false });
    expect(job.attempts).toEqual([expect.objectContaining({ status: "ok", trigger: "async", response_bytes: ALL_CHUNKS.length })]);
  });
});

describe("Server-Sent Events", () => {
  it("passes a Python generator of dicts through as events, unbuffered and uncached", async () => {
    await gateway.python(
      "sse-py",
      `import time
def handler(request):
    for i in range(3):
        yield {"event": "tick", "id": str(i), "data": {"n": i}}
        time.sleep(0.05)
`,
    );
    const res = await call("/fn/sse-py");
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(await events(res)).toEqual(TICKS);
  });

  it("relays them as they come to a client that asks for an event stream (as EventSource does), then result and end", async () => {
    const res = await call("/fn/sse-py", { headers: { accept: "text/event-stream" } });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const found = await events(res);
    expect(found.slice(0, 3)).toEqual(TICKS);
    expect(found.slice(3).map((e) => e.event)).toEqual(["result", "end"]);
    expect(JSON.parse(found[3]!.data!)).toMatchObject({ status: 200, body: null });
    expect(JSON.parse(found[4]!.data!)).toMatchObject({ status: "ok" });
  });
});

const TICKS = [0, 1, 2].map((n) => ({ event: "tick", id: String(n), data: `{"n": ${n}}` }));

/** Every event of an event stream, as a browser's EventSource would parse them. */
async function events(res: Response): Promise<Partial<EventSourceMessage>[]> {
  const found: Partial<EventSourceMessage>[] = [];
  const parser = createParser({ onEvent: ({ event, id, data }) => found.push({ event, id, data }) });
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) parser.feed(decoder.decode(chunk, { stream: true }));
  return found;
}

const FIVE_LINES = {
  python: `import time
for i in range(5):
    print("line", i)
    time.sleep(0.2)
`,
  node: `export default async function () {
  for (let i = 0; i < 5; i++) {
    console.log("line", i);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { done: true };
}`,
} as const;

describe("live output", () => {
  it.each(["python", "node"] as const)("relays %s's stdout as events as it prints, then result and end", async (runtime) => {
    const name = `live-${runtime}`;
    await gateway[runtime](name, FIVE_LINES[runtime]);
    const res = await call(`/fn/${name}`, { headers: { accept: "text/event-stream" } });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const id = invocationId(res);
    const seen: { event: string; data: string; rowStatus: string }[] = [];
    const parser = createParser({ onEvent: ({ event, data }) => seen.push({ event: event ?? "message", data, rowStatus: "" }) });
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      const before = seen.length;
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (seen.length > before && before === 0) seen[0]!.rowStatus = String((await invocation(call, id)).status);
    }
    const stdout = seen.filter((e) => e.event === "stdout");
    expect(stdout.map((e) => e.data)).toEqual([0, 1, 2, 3, 4].map((i) => `line ${i}\n`));
    expect(stdout[0]!.rowStatus, "the first line arrived while the function ran").toBe("running");
    expect(seen.slice(-2).map((e) => e.event)).toEqual(["result", "end"]);
    const result = JSON.parse(seen.at(-2)!.data) as Json;
    const expected = runtime === "python" ? ALL_LINES : JSON.stringify({ done: true });
    expect(result).toMatchObject({ status: 200, body: expected, body_encoding: "utf8" });
    const end = JSON.parse(seen.at(-1)!.data) as Json;
    expect(end).toMatchObject({ status: "ok", exit_code: 0, invocation_id: id });
    expect(end.duration_ms).toBeGreaterThan(0);
    // The row was written before `end` went out.
    expect(await invocation(call, id)).toMatchObject({ status: "ok", http_status: 200, stdout: ALL_LINES });
  });
});

const ALL_LINES = "line 0\nline 1\nline 2\nline 3\nline 4\n";

/** Streams 64 KiB chunks for up to 30 s, 20 ms apart. */
const ENDLESS = {
  node: `export default () => new Response(new ReadableStream({
  async pull(controller) {
    controller.enqueue(new Uint8Array(65536).fill(120));
    await new Promise((resolve) => setTimeout(resolve, 20));
  },
}));`,
  python: `import time
def handler(request):
    for _ in range(1500):
        yield b"x" * 65536
        time.sleep(0.02)
`,
} as const;

describe.each(["node", "python"] as const)("limits while streaming (%s)", (runtime) => {
  it("stops the function when the client goes away, logs client_closed, and frees its place", async () => {
    const name = `gone-${runtime}`;
    await gateway[runtime](name, ENDLESS[runtime], { max_concurrency: 1, timeout_ms: 60_000 });
    const client = new AbortController();
    const res = await call(`/fn/${name}`, { signal: client.signal });
    const id = invocationId(res);
    await res.body!.getReader().read();
    client.abort();
    await waitFor(async () => (await invocation(call, id)).status !== "running", "the row's end");
    const row = await invocation(call, id);
    expect(row).toMatchObject({ status: "client_closed", http_status: 200 });
    expect(row.duration_ms).toBeLessThan(30_000);
    expect(row.response_bytes).toBeGreaterThan(0);
    // max_concurrency 1: the next invocation is admitted only because the first one's place is free.
    const next = new AbortController();
    const again = await call(`/fn/${name}`, { signal: next.signal });
    expect(again.status).toBe(200);
    next.abort();
  });

  it("ends the stream at the deadline: the client's body is cut, the row says timeout", async () => {
    const name = `deadline-${runtime}`;
    await gateway[runtime](name, TEN_CHUNKS[runtime], { timeout_ms: 500 });
    const res = await call(`/fn/${name}`);
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    const id = invocationId(res);
    await waitFor(async () => (await invocation(call, id)).status !== "running", "the row's end");
    expect(await invocation(call, id)).toMatchObject({ status: "timeout", http_status: 200, error: "timed out after 500 ms" });
  });

  it("ends the stream past MAX_RESPONSE_BYTES, and the row says so", async () => {
    const name = `cap-${runtime}`;
    await gateway[runtime](name, ENDLESS[runtime]);
    const res = await call(`/fn/${name}`);
    await expect(res.text()).rejects.toThrow();
    const id = invocationId(res);
    await waitFor(async () => (await invocation(call, id)).status !== "running", "the row's end");
    const row = await invocation(call, id);
    expect(row).toMatchObject({ status: "error", error: expect.stringContaining("MAX_RESPONSE_BYTES") });
    expect(row.response_bytes).toBeLessThanOrEqual(1024 * 1024);
  });
});

describe("metrics", () => {
  it("counts streamed invocations by mode", async () => {
    const text = await (await call("/metrics")).text();
    // Every series also carries the gateway's `node` label.
    expect(text).toMatch(/fngw_streamed_invocations_total\{function="ten-node-invocation",mode="body",node="[^"]+"\} 1/);
    expect(text).toMatch(/fngw_streamed_invocations_total\{function="live-python",mode="events",node="[^"]+"\} 1/);
    expect(text).toMatch(/fngw_invocations_total\{function="gone-node",status="client_closed",node="[^"]+"\} [1-9]/);
  });
});

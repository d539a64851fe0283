// Streamed answers through the real sandbox: a body handed on as the function writes it, under
// backpressure, in both runtimes and both isolations; the limits that end a stream; live output.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InterpreterKind } from "../../src/core/runtimes.js";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { bodyText, follow, spec, startSandbox, stopSandbox } from "./harness.js";

let handle: Awaited<ReturnType<typeof startSandbox>>;
let sandbox: Sandbox;

beforeAll(async () => {
  handle = await startSandbox({ MAX_RESPONSE_BYTES: String(1024 * 1024) });
  sandbox = handle.sandbox;
});
afterAll(() => stopSandbox(handle));

/** Ten chunks 100 ms apart, then the end: the function's stderr says when it is done writing. */
const TEN_CHUNKS: Record<InterpreterKind, string> = {
  node: `export default () => new Response(new ReadableStream({
  async start(controller) {
    for (let i = 0; i < 10; i++) {
      controller.enqueue(new TextEncoder().encode("chunk " + i + "\\n"));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    controller.close();
  },
}), { status: 201, headers: { "content-type": "text/plain", "x-streamed": "yes" } });`,
  python: `import time
def handler(request):
    def chunks():
        for i in range(10):
            yield f"chunk {i}\\n"
            time.sleep(0.1)
    return chunks(), 201, {"content-type": "text/plain", "x-streamed": "yes"}
`,
};

describe.each(["invocation", "function"] as const)("isolation %s", (isolation) => {
  describe.each(["node", "python"] as const)("%s", (runtime) => {
    it("hands the head on before the function ends, then each chunk as it is written", async () => {
      const run = follow(sandbox, spec(runtime, TEN_CHUNKS[runtime], { isolation, version: version(runtime) }));
      const stream = await run.stream;
      expect(stream.status).toBe(201);
      expect(stream.headers).toContainEqual(["x-streamed", "yes"]);
      const reads = await run.readAll();
      expect(run.settled(), "the run had not ended when the head arrived").toBe(false);
      expect(reads.at(0)!.beforeEnd, "the first chunk arrived before the function ended").toBe(true);
      // Written 100 ms apart, they come in separate reads: never all at once at the end.
      expect(reads.length).toBeGreaterThanOrEqual(5);
      expect(Buffer.concat(reads.map((r) => r.data)).toString()).toBe(Array.from({ length: 10 }, (_, i) => `chunk ${i}\n`).join(""));
      const result = await run.result;
      expect(result).toMatchObject({ status: "ok", response: { status: 201 } });
      expect(result.response?.body.length).toBe(0);
    });
  });
});

let versions = 0;
function version(runtime: string) {
  return { name: `stream-${runtime}`, version: ++versions, maxConcurrency: null };
}

describe("what stays whole", () => {
  it("sends a Response whose body is ready at once whole, not streamed", async () => {
    const run = follow(sandbox, spec("node", `export default () => new Response("all at once", { headers: { "x-a": "b" } });`));
    const result = await run.result;
    expect(run.streamed()).toBe(false);
    expect(bodyText(result)).toBe("all at once");
  });

  it("collects a streamed body into the result when nobody takes the stream", async () => {
    const result = await sandbox.run(spec("python", `def handler(request):\n    yield "a"\n    yield b"b"\n`));
    expect(result).toMatchObject({ status: "ok", response: { status: 200, headers: [["content-type", "text/plain; charset=utf-8"]] } });
    expect(bodyText(result)).toBe("ab");
  });
});

/** Writes `count` chunks of 64 KiB as fast as it may, logging each on stderr once written. */
const FLOOD: Record<InterpreterKind, (count: number) => string> = {
  node: (count) => `export default () => new Response(new ReadableStream({
  i: 0,
  pull(controller) {
    if (this.i === ${count}) return controller.close();
    controller.enqueue(new Uint8Array(65536).fill(120));
    console.error("wrote", ++this.i);
  },
}, { highWaterMark: 0 }));`,
  python: (count) => `import sys
def handler(request):
    for i in range(${count}):
        yield b"x" * 65536
        print("wrote", i + 1, file=sys.stderr)
`,
};

const written = (stderr: Buffer) => Math.max(0, ...[...stderr.toString().matchAll(/wrote (\d+)/g)].map((m) => Number(m[1])));

describe.each(["node", "python"] as const)("limits while streaming (%s)", (runtime) => {
  it("paces the function by its reader: unread, the function's writes wait", async () => {
    const run = follow(sandbox, spec(runtime, FLOOD[runtime](200), { timeoutMs: 1500 }));
    const stream = await run.stream;
    // Nothing reads the body: the deadline ends the run with most of the 12.5 MiB never written.
    const result = await run.result;
    expect(result.status).toBe("timeout");
    expect(written(result.stderr.data)).toBeLessThan(100);
    await expect(stream.body.getReader().read()).rejects.toThrow(/ended before its body did/);
  });

  it("stops the function when the reader cancels: client_closed, and the slot serves the next run", async () => {
    const run = follow(sandbox, spec(runtime, FLOOD[runtime](1000)));
    const reader = (await run.stream).body.getReader();
    await reader.read();
    await reader.cancel();
    const result = await run.result;
    expect(result).toMatchObject({ status: "client_closed" });
    expect(written(result.stderr.data)).toBeLessThan(1000);
    const next = await sandbox.run(
      spec(runtime, runtime === "node" ? `export default () => "next"` : `def handler(r):\n    return "next"`),
    );
    expect(bodyText(next)).toBe("next");
  });

  it("stops the function when the caller's signal aborts mid-stream", async () => {
    const gone = new AbortController();
    const run = follow(sandbox, spec(runtime, FLOOD[runtime](1000)), { signal: gone.signal });
    const reader = (await run.stream).body.getReader();
    await reader.read();
    gone.abort();
    expect((await run.result).status).toBe("client_closed");
    await expect(drain(reader)).rejects.toThrow(/ended before its body did/);
  });

  it("ends the stream at the deadline: timeout, and the body errors", async () => {
    const run = follow(sandbox, spec(runtime, TEN_CHUNKS[runtime], { timeoutMs: 450 }));
    const reads = await run.readAll();
    expect(run.error).toBeInstanceOf(Error);
    expect(reads.length).toBeGreaterThan(0);
    expect(Buffer.concat(reads.map((r) => r.data)).toString()).not.toContain("chunk 9");
    expect(await run.result).toMatchObject({ status: "timeout" });
  });

  it("ends the stream past MAX_RESPONSE_BYTES: an error naming the limit", async () => {
    const run = follow(sandbox, spec(runtime, FLOOD[runtime](40)));
    const reads = await run.readAll();
    expect(run.error).toBeInstanceOf(Error);
    expect(reads.reduce((n, r) => n + r.data.length, 0)).toBeLessThanOrEqual(1024 * 1024);
    expect(await run.result).toMatchObject({ status: "error", errorMessage: expect.stringContaining("MAX_RESPONSE_BYTES") });
  });

  it("reports a failure after the head as an error, the body cut short", async () => {
    const code =
      runtime === "node"
        ? `export default () => new Response(new ReadableStream({ async pull(c) { c.enqueue(new Uint8Array([65])); await new Promise((r) => setTimeout(r, 50)); throw new Error("broke"); } }));`
        : `import time\ndef handler(request):\n    yield "A"\n    time.sleep(0.05)\n    raise ValueError("broke")\n`;
    const run = follow(sandbox, spec(runtime, code));
    const reads = await run.readAll();
    expect(Buffer.concat(reads.map((r) => r.data)).toString()).toBe("A");
    expect(run.error).toBeInstanceOf(Error);
    expect(await run.result).toMatchObject({ status: "error", errorMessage: expect.stringContaining("broke") });
  });
});

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  for (;;) if ((await reader.read()).done) return;
}

describe("events and generators", () => {
  it("sends a Python generator of dicts as Server-Sent Events, one per dict", async () => {
    const result = await sandbox.run(
      spec(
        "python",
        `def handler(request):
    yield {"data": {"n": 1}}
    yield {"event": "note", "id": "2", "data": "two\\nlines"}
    yield {"comment": "keep-alive", "retry": 1000}
`,
      ),
    );
    expect(result.response?.headers).toContainEqual(["content-type", "text/event-stream"]);
    expect(bodyText(result)).toBe('data: {"n": 1}\n\nevent: note\nid: 2\ndata: two\ndata: lines\n\n: keep-alive\nretry: 1000\n\n');
  });

  it("sends a JavaScript async generator of objects as events too, and refuses an unknown field", async () => {
    const ok = await sandbox.run(
      spec("node", `export default async function* () { yield { data: [1] }; yield { event: "e", data: "x" }; }`),
    );
    expect(bodyText(ok)).toBe("data: [1]\n\nevent: e\ndata: x\n\n");
    const bad = await sandbox.run(spec("node", `export default async function* () { yield { message: "hi" }; }`));
    expect(bad).toMatchObject({ status: "error", errorMessage: expect.stringContaining("message") });
  });

  it("streams a Python async generator, and refuses a dict under another content type", async () => {
    const agen = await sandbox.run(
      spec(
        "python",
        `import asyncio\nasync def handler(request):\n    for i in range(3):\n        await asyncio.sleep(0.01)\n        yield str(i)\n`,
      ),
    );
    expect(bodyText(agen)).toBe("012");
    const mixed = await sandbox.run(
      spec(
        "python",
        `def handler(request):\n    def g():\n        yield {"data": 1}\n    return g(), 200, {"content-type": "text/plain"}\n`,
      ),
    );
    expect(mixed).toMatchObject({ status: "error", errorMessage: expect.stringContaining("text/event-stream") });
  });
});

const FIVE_LINES: Record<InterpreterKind, string> = {
  python: `import time
for i in range(5):
    print("line", i)
    time.sleep(0.2)
`,
  node: `for (let i = 0; i < 5; i++) {
  console.log("line", i);
  await new Promise((resolve) => setTimeout(resolve, 200));
}
export {};`,
};

describe.each(["invocation", "function"] as const)("live output (isolation %s)", (isolation) => {
  it.each(["python", "node"] as const)("hands %s's stdout on as it is written, before the run ends", async (runtime) => {
    const run = follow(sandbox, spec(runtime, FIVE_LINES[runtime], { isolation, version: version(runtime) }));
    const result = await run.result;
    expect(result.status).toBe("ok");
    const stdout = run.output.filter((o) => o.channel === "stdout");
    expect(stdout.map((o) => o.text).join("")).toBe("line 0\nline 1\nline 2\nline 3\nline 4\n");
    expect(stdout.length).toBeGreaterThanOrEqual(5);
    expect(stdout.every((o) => o.beforeEnd)).toBe(true);
  });
});

describe("what a function cannot make of the result channel", () => {
  it.each([
    [
      "a chunk without a streamed head",
      `os.write(4, b'{"kind":"chunk","length":1}\\nx')`,
      /malformed result: a body chunk outside a streamed response/,
    ],
    [
      "a chunk announcing more than MAX_RESPONSE_BYTES",
      `os.write(4, b'{"kind":"response","status":200,"headers":[],"streamed":true}\\n{"kind":"chunk","length":1099511627776}\\n')`,
      /MAX_RESPONSE_BYTES/,
    ],
    [
      "a second response after a streamed one",
      `os.write(4, b'{"kind":"response","status":200,"headers":[],"streamed":true}\\n{"kind":"body_end"}\\n{"kind":"response","status":200,"headers":[],"body_length":0}\\n')`,
      /malformed result: a second response/,
    ],
  ])("refuses %s", async (_, write, message) => {
    const result = await sandbox.run(
      spec("python", `import os, time\ndef handler(request):\n    ${write}\n    time.sleep(0.2)\n    return "ok"\n`),
    );
    expect(result).toMatchObject({ status: "error", errorMessage: expect.stringMatching(message) });
  });

  it("holds the memory limit while streaming: a function that outgrows it mid-stream ends oom", async () => {
    const run = follow(
      sandbox,
      spec(
        "python",
        `def handler(request):\n    held = []\n    while True:\n        held.append(bytearray(8 << 20))\n        yield b"x"\n`,
        { memoryMb: 64 },
      ),
    );
    await run.readAll();
    expect(run.error).toBeInstanceOf(Error);
    expect((await run.result).status).toBe("oom");
  });
});

describe("a warm instance after a streamed invocation", () => {
  const pidStream = `import os, time
def handler(request):
    yield str(os.getpid())
    time.sleep(0.05)
    yield "|done"
`;
  it("serves the next invocation when the stream ended, and is replaced when its reader cancelled", async () => {
    const target = version("warm-stream");
    const warm = spec("python", pidStream, { isolation: "function", version: target });
    // Each read waits for its run's end: the instance is busy until its end marks have come.
    const read = async () => {
      const run = follow(sandbox, warm);
      const reads = await run.readAll();
      await run.result;
      return Buffer.concat(reads.map((r) => r.data)).toString();
    };
    const first = await read();
    const second = await read();
    expect(first).toMatch(/^\d+\|done$/);
    expect(second.split("|")[0]).toBe(first.split("|")[0]);
    const cancelled = follow(sandbox, warm);
    await (await cancelled.stream).body.cancel();
    expect((await cancelled.result).status).toBe("client_closed");
    const third = await read();
    expect(third.split("|")[0]).not.toBe(first.split("|")[0]);
  });
});

describe("TypeScript", () => {
  it("runs a function with interfaces, generics and a type-only import, in both isolations", async () => {
    const code = `import type { Agent } from "node:http";
interface Greeting<T> { hello: T; agent?: Agent }
function greet<T>(who: T): Greeting<T> {
  return { hello: who };
}
enum Mood { Happy = "happy" }
export default async function (request: Request): Promise<Response> {
  const name: string = new URL(request.url).searchParams.get("name") ?? "world";
  return Response.json({ ...greet<string>(name), mood: Mood.Happy });
}
`;
    for (const isolation of ["invocation", "function"] as const) {
      const result = await sandbox.run(spec("typescript", code, { isolation, version: version("ts") }));
      expect(JSON.parse(bodyText(result))).toEqual({ hello: "world", mood: "happy" });
    }
  });

  it("names the .ts line of a thrown error in the stack on stderr", async () => {
    const code = `type Input = { n: number };

function check(input: Input): number {
  if (input.n > 1) throw new RangeError("too big: " + input.n);
  return input.n;
}
export default (): string => String(check({ n: 2 }));
`;
    const result = await sandbox.run(spec("typescript", code));
    expect(result).toMatchObject({ status: "error", errorMessage: "the function raised RangeError: too big: 2" });
    expect(result.stderr.data.toString()).toMatch(/function\.ts:4:\d+/);
  });

  it("refuses a type syntax error with its line and column, and streams like JavaScript", async () => {
    expect(await sandbox.checkSyntax("typescript", "const x: number = 1;\nlet y: = 2;\n")).toEqual({
      line: 2,
      column: 8,
      message: expect.stringContaining("SyntaxError"),
    });
    expect(await sandbox.checkSyntax("typescript", "export default (): string => 'ok';\n")).toBeNull();
    const run = follow(sandbox, spec("typescript", `export default async function* (): AsyncGenerator<string> { yield "a"; yield "b"; }`));
    expect(Buffer.concat((await run.readAll()).map((r) => r.data)).toString()).toBe("ab");
  });
});

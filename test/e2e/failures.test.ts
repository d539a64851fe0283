// End to end: how failures answer over HTTP and end in the log, and the body cap.
// The real gateway (src/main.ts) in a child process, real sandboxed Python and Node, spoken to only
// over HTTP. The README's "Writing functions" and "HTTP API" are the spec.
import { beforeAll, describe, expect, it } from "vitest";
import { invocation, invocationId, type Json, useGateway } from "./harness.js";

const TOKEN = "e2e-token-4f1c9a7d2b8e6035";
const MiB = 1024 * 1024;

const gateway = useGateway(TOKEN, { MAX_BODY_BYTES: String(MiB) });
const { call, node, python } = gateway;

describe("how failures answer over HTTP and end in the log", () => {
  it("an exception: 500 with a JSON error (no traceback), the row `error` with the traceback in stderr", async () => {
    await python("raises", `def handler(request):\n    raise ValueError("boom")\n`);
    const res = await call("/fn/raises");
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const id = invocationId(res);
    const body = (await res.json()) as Json;
    expect(body).toEqual({ error: { code: "error", message: "the function raised ValueError: boom", invocation_id: id } });
    const row = await invocation(call, id);
    expect(row).toMatchObject({ status: "error", http_status: 500, exit_code: 1, error: "the function raised ValueError: boom" });
    expect(row.stderr).toBe('Traceback (most recent call last):\n  File "function.py", line 2, in handler\nValueError: boom\n');
  });

  it("a JavaScript exception answers 500 `error` as well", async () => {
    await node("throws", `export default () => { throw new TypeError("bad input"); };`);
    const res = await call("/fn/throws");
    expect(res.status).toBe(500);
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe("error");
    expect(body.error.message).toMatch(/TypeError: bad input/);
    expect(JSON.stringify(body)).not.toMatch(/\n\s+at /); // no stack frames
    expect((await invocation(call, invocationId(res))).status).toBe("error");
  });

  it("a run past timeout_ms: 504 and the row `timeout`", async () => {
    await python("sleeps-forever", `import time\ndef handler(request):\n    time.sleep(30)\n`, { timeout_ms: 300 });
    const started = Date.now();
    const res = await call("/fn/sleeps-forever");
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5000);
    const body = (await res.json()) as Json;
    expect(body.error).toMatchObject({ code: "timeout", message: "timed out after 300 ms" });
    const row = await invocation(call, invocationId(res));
    expect(row).toMatchObject({ status: "timeout", http_status: 504, error: "timed out after 300 ms" });
    expect(row.duration_ms).toBeGreaterThanOrEqual(300);
  });

  it("a memory bomb with memory_mb 64: 500 and the row `oom`", async () => {
    await python("memory-bomb", `def handler(request):\n    hog = []\n    while True:\n        hog.append(bytearray(b"x" * (8 << 20)))\n`, {
      memory_mb: 64,
    });
    const res = await call("/fn/memory-bomb");
    expect(res.status).toBe(500);
    expect(((await res.json()) as Json).error).toMatchObject({ code: "oom", message: "exceeded its memory limit of 64 MB" });
    expect(await invocation(call, invocationId(res))).toMatchObject({ status: "oom", http_status: 500 });
  });

  it("a syscall outside the seccomp policy (syslog via ctypes): 500 `forbidden` naming the call, as the kernel reported it", async () => {
    await python(
      "syslog",
      `import ctypes, os
def handler(request):
    nr = {"x86_64": 103, "aarch64": 116}[os.uname().machine]  # syslog(SYSLOG_ACTION_READ_ALL)
    ctypes.CDLL(None).syscall(nr, 3, None, 0)
    return "survived"
`,
    );
    const res = await call("/fn/syslog");
    expect(res.status).toBe(500);
    expect(((await res.json()) as Json).error).toMatchObject({
      code: "forbidden",
      message: "the function called syslog, which the sandbox does not allow (killed)",
    });
    const row = await invocation(call, invocationId(res));
    expect(row).toMatchObject({ status: "forbidden", http_status: 500, signal: "SIGKILL", blocked_syscall: "syslog" });
    expect(row.stderr).toContain("[fngw] the sandbox refused syslog\n");
  });

  it("fork is refused: the function sees PermissionError and answers normally", async () => {
    await python(
      "forks",
      `import errno, os
def handler(request):
    try:
        pid = os.fork()
    except OSError as exc:
        return {"error": type(exc).__name__, "errno": errno.errorcode[exc.errno]}
    if pid == 0:
        os._exit(0)
    return {"forked": pid}
`,
    );
    const res = await call("/fn/forks");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ error: "PermissionError", errno: "EPERM" });
  });

  it("finds every failure by status in the log", async () => {
    for (const [status, fn] of [
      ["error", "raises"],
      ["timeout", "sleeps-forever"],
      ["oom", "memory-bomb"],
      ["forbidden", "syslog"],
    ]) {
      const page = (await (await call(`/api/invocations?status=${status}&function=${fn}`)).json()) as Json;
      expect(
        page.items.map((row: Json) => row.status),
        fn,
      ).toEqual([status]);
    }
  });
});

describe("the body cap (MAX_BODY_BYTES = 1 MiB)", () => {
  beforeAll(async () => {
    await python("size", `def handler(request):\n    return {"bytes": len(request.body)}\n`);
  });

  it("accepts a body of exactly MAX_BODY_BYTES", async () => {
    const res = await call("/fn/size", { method: "POST", body: Buffer.alloc(MiB, 7) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: MiB });
  });

  it("answers 413 to a body one byte over without running the function, and logs it `rejected`", async () => {
    const res = await call("/fn/size", { method: "POST", body: Buffer.alloc(MiB + 1, 7) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as Json).error.code).toBe("payload_too_large");
    expect(await invocation(call, invocationId(res))).toMatchObject({ status: "rejected", http_status: 413, exit_code: null });
  });

  it("answers 413 to a chunked body without Content-Length that grows past the cap, and keeps serving the connection", async () => {
    // Repeated: a gateway that drops the connection under a client still sending loses the 413 now and then.
    for (let attempt = 0; attempt < 6; attempt++) {
      const res = await call("/fn/size", { method: "POST", body: chunkedBody(8, 256 * 1024), duplex: "half" } as RequestInit);
      expect(res.status, `attempt ${attempt}`).toBe(413);
      expect(((await res.json()) as Json).error.code).toBe("payload_too_large");
      const next = await call("/fn/size", { method: "POST", body: "small" });
      expect(next.status, `the request after attempt ${attempt}`).toBe(200);
      expect(await next.json()).toEqual({ bytes: 5 });
    }
  });

  it("answers 413 to a function definition streamed past the API's own cap, and keeps serving the connection", async () => {
    for (let attempt = 0; attempt < 6; attempt++) {
      const res = await call("/api/functions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chunkedBody(8, 1024 * 1024),
        duplex: "half",
      } as RequestInit);
      expect(res.status, `attempt ${attempt}`).toBe(413);
      expect(((await res.json()) as Json).error.code).toBe("payload_too_large");
      expect((await call("/api/functions/size")).status, `the request after attempt ${attempt}`).toBe(200);
    }
  });
});

/** A body of `count` chunks of `size` bytes, sent with Transfer-Encoding: chunked. */
function chunkedBody(count: number, size: number): ReadableStream<Uint8Array> {
  const chunk = Buffer.alloc(size, 1);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < count) controller.enqueue(chunk);
      else controller.close();
    },
  });
}

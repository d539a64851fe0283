// End to end: the real gateway (src/main.ts) in a child process, real sandboxed Python and Node,
// spoken to only over HTTP. The README's "Writing functions" and "HTTP API" are the spec.
import crypto from "node:crypto";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  invocation,
  register,
  removeDataDir,
  startServer,
  type Json,
  type Server,
} from "./harness.js";

const TOKEN = "e2e-token-4f1c9a7d2b8e6035";
const MiB = 1024 * 1024;

let server: Server;
const call = client(() => server.url, () => TOKEN);

beforeAll(async () => {
  server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, MAX_BODY_BYTES: String(MiB) } });
});

afterAll(async () => {
  if (!server) return;
  const code = await server.stop();
  removeDataDir(server.dataDir);
  expect(code, `stderr:\n${server.stderr()}`).toBe(0);
});

const idOf = (res: Response): string => {
  const id = res.headers.get("x-invocation-id");
  expect(id, "x-invocation-id").toMatch(/^[0-9a-f-]{36}$/);
  return id!;
};

/** Registers a Python function with the given code (and settings). */
const python = (name: string, code: string, settings: Json = {}) => register(call, { name, runtime: "python", code, ...settings });
const node = (name: string, code: string, settings: Json = {}) => register(call, { name, runtime: "node", code, ...settings });

describe("a Python and a JavaScript function, from registration to the log", () => {
  // The README's two examples, each printing a line to stdout and one to stderr: those belong in the log.
  const pyCode = `import sys

def handler(request):
    name = request.query.get("name", "world")
    print("greeting", name)
    print("to stderr", file=sys.stderr)
    return {"hello": name}
`;
  const jsCode = `export default async function (request) {   // a Web-standard Request
  console.log("greeting", new URL(request.url).searchParams.get("name"));
  console.error("to stderr");
  return Response.json({ hello: new URL(request.url).searchParams.get("name") });
}
`;
  const ids: Record<string, string> = {};

  it("registers the Python example with POST /api/functions: 201, version 1", async () => {
    const res = await call("/api/functions", { method: "POST", json: { name: "hello-py", runtime: "python", code: pyCode } });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/api/functions/hello-py");
    expect(await res.json()).toMatchObject({ name: "hello-py", runtime: "python", version: 1, code: pyCode, public: false });
  });

  it("registers the JavaScript `export default` example: 201, version 1", async () => {
    const res = await call("/api/functions", { method: "POST", json: { name: "hello-js", runtime: "node", code: jsCode } });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ name: "hello-js", runtime: "node", version: 1, code: jsCode });
  });

  it("refuses a second registration under a taken name with 409", async () => {
    const res = await call("/api/functions", { method: "POST", json: { name: "hello-py", runtime: "python", code: pyCode } });
    expect(res.status).toBe(409);
    expect((await res.json()).error.code).toBe("conflict");
  });

  it("lists both with GET /api/functions", async () => {
    const res = await call("/api/functions");
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as Json;
    expect(items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "hello-py", runtime: "python", version: 1 }),
        expect.objectContaining({ name: "hello-js", runtime: "node", version: 1 }),
      ]),
    );
  });

  it.each(["hello-py", "hello-js"])("invokes %s at /fn/:name?name=... and answers its JSON, nothing printed in it", async (name) => {
    const res = await call(`/fn/${name}?name=ada`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.text()).toMatch(/^\{"hello": ?"ada"\}$/);
    ids[name] = idOf(res);
  });

  it.each(["hello-py", "hello-js"])("finds the invocation of %s in GET /api/invocations?function=... with duration_ms and exit_code 0", async (name) => {
    const res = await call(`/api/invocations?function=${name}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as Json;
    expect(page.next_cursor).toBeNull();
    expect(page.items).toHaveLength(1);
    const [row] = page.items;
    expect(row).toMatchObject({ id: ids[name], function: name, version: 1, status: "ok", http_status: 200, exit_code: 0, signal: null, method: "GET", path: "/" });
    expect(row.duration_ms).toBeGreaterThan(0);
    expect(row.duration_ms).toBeLessThan(10_000);
    expect(row).not.toHaveProperty("stdout");
  });

  it.each(["hello-py", "hello-js"])("shows what %s printed in the row's stdout and stderr at GET /api/invocations/:id", async (name) => {
    const row = await invocation(call, ids[name]!);
    expect(row).toMatchObject({ id: ids[name], status: "ok", exit_code: 0 });
    expect(row.stdout).toBe("greeting ada\n");
    expect(row.stderr).toBe("to stderr\n");
    expect(row.stdout_truncated).toBe(false);
  });
});

describe("the function contract over HTTP", () => {
  beforeAll(async () => {
    await python(
      "echo",
      `import hashlib
def handler(request):
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query_items,
        "headers": dict(request.headers),
        "body_sha256": hashlib.sha256(request.body).hexdigest(),
        "body_length": len(request.body),
        "json": request.json() if request.headers.get("content-type") == "application/json" else None,
    }
`,
    );
    await python(
      "returns",
      `def handler(request):
    kind = request.query["as"]
    if kind == "dict":
        return {"a": [1, 2], "b": None}
    if kind == "list":
        return [1, "two"]
    if kind == "str":
        return "plain text ✓"
    if kind == "bytes":
        return bytes(range(256))
    if kind == "tuple2":
        return {"created": True}, 201
    if kind == "tuple3":
        return "a,b\\n1,2\\n", 418, {"Content-Type": "text/csv", "X-Teapot": "short and stout"}
    if kind == "reset":
        return "ignored", 205
`,
    );
    await node(
      "returns-js",
      `export default async (request) => {
  const kind = new URL(request.url).searchParams.get("as");
  if (kind === "object") return { a: [1, 2], b: null };
  if (kind === "string") return "plain text ✓";
  if (kind === "bytes") return new Uint8Array(Array.from({ length: 256 }, (_, i) => i));
  if (kind === "response") return new Response("made by hand", { status: 202, headers: { "content-type": "text/x-made", "x-made-by": "js" } });
};
`,
    );
  });

  it("runs a Python script without a handler top to bottom: its stdout is the body, text/plain, 200", async () => {
    await python("script-py", `import sys\nprint("line one")\nsys.stdout.write("line two\\n")\n`);
    const res = await call("/fn/script-py");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("line one\nline two\n");
    expect((await invocation(call, idOf(res))).stdout).toBe("line one\nline two\n");
  });

  it("runs a JavaScript script without an export the same way", async () => {
    await node("script-js", `console.log("from a script");\nprocess.stdout.write("and more\\n");\n`);
    const res = await call("/fn/script-js");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("from a script\nand more\n");
  });

  const bytes256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  it.each([
    ["returns", "dict", 200, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual({ a: [1, 2], b: null })],
    ["returns", "list", 200, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual([1, "two"])],
    ["returns", "str", 200, /^text\/plain/, (body: Buffer) => expect(body.toString()).toBe("plain text ✓")],
    ["returns", "bytes", 200, /^application\/octet-stream$/, (body: Buffer) => expect(body.equals(bytes256)).toBe(true)],
    ["returns", "tuple2", 201, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual({ created: true })],
    ["returns", "tuple3", 418, /^text\/csv$/, (body: Buffer) => expect(body.toString()).toBe("a,b\n1,2\n")],
    ["returns-js", "object", 200, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual({ a: [1, 2], b: null })],
    ["returns-js", "string", 200, /^text\/plain/, (body: Buffer) => expect(body.toString()).toBe("plain text ✓")],
    ["returns-js", "bytes", 200, /^application\/octet-stream$/, (body: Buffer) => expect(body.equals(bytes256)).toBe(true)],
    ["returns-js", "response", 202, /^text\/x-made$/, (body: Buffer) => expect(body.toString()).toBe("made by hand")],
  ] as const)("%s ?as=%s answers %i with its content type and body", async (fn, kind, status, type, checkBody) => {
    const res = await call(`/fn/${fn}?as=${kind}`);
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toMatch(type);
    const body = Buffer.from(await res.arrayBuffer());
    checkBody(body);
    expect(res.headers.get("content-length")).toBe(String(body.byteLength));
  });

  it("answers a 205 with an empty body of declared length 0, whatever the function returned", async () => {
    const { status, headers, body } = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.request(`${server.url}/fn/returns?as=reset`, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(205);
    expect(headers["content-length"]).toBe("0");
    expect(headers["transfer-encoding"]).toBeUndefined();
    expect(body).toBe("");
  });

  it("passes the headers a tuple or a Response sets through to the client", async () => {
    expect((await call("/fn/returns?as=tuple3")).headers.get("x-teapot")).toBe("short and stout");
    expect((await call("/fn/returns-js?as=response")).headers.get("x-made-by")).toBe("js");
  });

  it("hands the function the method, the path below it and the query: /fn/echo/a/b?x=1 is path /a/b", async () => {
    const res = await call("/fn/echo/a/b?x=1&y=two&x=3", { method: "DELETE" });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Json;
    expect(seen.method).toBe("DELETE");
    expect(seen.path).toBe("/a/b");
    expect(seen.query).toEqual([["x", "1"], ["y", "two"], ["x", "3"]]);
    const row = await invocation(call, idOf(res));
    expect(row).toMatchObject({ method: "DELETE", path: "/a/b" });
    const root = (await (await call("/fn/echo")).json()) as Json;
    expect(root.path).toBe("/");
  });

  it("delivers a POSTed JSON body intact", async () => {
    const payload = { n: 1, text: "héllo ✓ \u0000", nested: { list: [true, null, 2.5] } };
    const res = await call("/fn/echo", { method: "POST", json: payload });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Json;
    expect(seen.json).toEqual(payload);
    expect(seen.body_length).toBe(Buffer.byteLength(JSON.stringify(payload)));
    expect((await invocation(call, idOf(res))).request_bytes).toBe(seen.body_length);
  });

  it("delivers a binary body byte for byte", async () => {
    const payload = crypto.randomBytes(300_000);
    const res = await call("/fn/echo", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: payload });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Json;
    expect(seen.body_length).toBe(payload.byteLength);
    expect(seen.body_sha256).toBe(crypto.createHash("sha256").update(payload).digest("hex"));
  });

  it("hands over the request headers but never the Authorization header (the gateway token)", async () => {
    const res = await call("/fn/echo", { headers: { "X-Custom": "Yes", "X-Invocation-Id": "forged" } });
    const seen = (await res.json()) as Json;
    expect(seen.headers["x-custom"]).toBe("Yes");
    expect(seen.headers["user-agent"]).toBeTypeOf("string");
    expect(seen.headers).not.toHaveProperty("authorization");
    expect(JSON.stringify(seen)).not.toContain(TOKEN);
    expect(seen.headers["x-invocation-id"]).toBe(idOf(res));
  });
});

describe("how failures answer over HTTP and end in the log", () => {
  it("an exception: 500 with a JSON error (no traceback), the row `error` with the traceback in stderr", async () => {
    await python("raises", `def handler(request):\n    raise ValueError("boom")\n`);
    const res = await call("/fn/raises");
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const id = idOf(res);
    const body = (await res.json()) as Json;
    expect(body).toEqual({ error: { code: "error", message: "ValueError: boom", invocation_id: id } });
    const row = await invocation(call, id);
    expect(row).toMatchObject({ status: "error", http_status: 500, exit_code: 1, error: "ValueError: boom" });
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
    expect((await invocation(call, idOf(res))).status).toBe("error");
  });

  it("a run past timeout_ms: 504 and the row `timeout`", async () => {
    await python("sleeps-forever", `import time\ndef handler(request):\n    time.sleep(30)\n`, { timeout_ms: 300 });
    const started = Date.now();
    const res = await call("/fn/sleeps-forever");
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5000);
    const body = (await res.json()) as Json;
    expect(body.error).toMatchObject({ code: "timeout", message: "timed out after 300 ms" });
    const row = await invocation(call, idOf(res));
    expect(row).toMatchObject({ status: "timeout", http_status: 504, error: "timed out after 300 ms" });
    expect(row.duration_ms).toBeGreaterThanOrEqual(300);
  });

  it("a memory bomb with memory_mb 64: 500 and the row `oom`", async () => {
    await python(
      "memory-bomb",
      `def handler(request):\n    hog = []\n    while True:\n        hog.append(bytearray(b"x" * (8 << 20)))\n`,
      { memory_mb: 64 },
    );
    const res = await call("/fn/memory-bomb");
    expect(res.status).toBe(500);
    expect(((await res.json()) as Json).error).toMatchObject({ code: "oom", message: "exceeded its memory limit of 64 MB" });
    expect(await invocation(call, idOf(res))).toMatchObject({ status: "oom", http_status: 500 });
  });

  it("a syscall outside the seccomp policy (syslog via ctypes): 500 `forbidden`, the blocked syscall in the row", async () => {
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
    expect(((await res.json()) as Json).error).toMatchObject({ code: "forbidden", message: "forbidden: syslog" });
    expect(await invocation(call, idOf(res))).toMatchObject({
      status: "forbidden",
      http_status: 500,
      signal: "SIGSYS",
      blocked_syscall: "syslog",
    });
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
    for (const [status, fn] of [["error", "raises"], ["timeout", "sleeps-forever"], ["oom", "memory-bomb"], ["forbidden", "syslog"]]) {
      const page = (await (await call(`/api/invocations?status=${status}&function=${fn}`)).json()) as Json;
      expect(page.items.map((row: Json) => row.status), fn).toEqual([status]);
    }
  });
});

describe("versions", () => {
  const v1 = `def handler(request):\n    return {"version": 1}\n`;
  const v2 = `def handler(request):\n    return {"version": 2}\n`;

  it("PUT stores version 2; /fn/name runs it and /fn/name@1 still runs version 1", async () => {
    await python("versioned", v1);
    const put = await call("/api/functions/versioned", { method: "PUT", json: { code: v2 } });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ name: "versioned", version: 2, code: v2 });
    expect(await (await call("/fn/versioned")).json()).toEqual({ version: 2 });
    expect(await (await call("/fn/versioned@1")).json()).toEqual({ version: 1 });
    expect(await (await call("/fn/versioned@2/sub?x=1")).json()).toEqual({ version: 2 });
    const rows = ((await (await call("/api/invocations?function=versioned")).json()) as Json).items;
    expect(rows.map((row: Json) => row.version)).toEqual([2, 1, 2]);
  });

  it("an unknown version answers 404", async () => {
    const res = await call("/fn/versioned@3");
    expect(res.status).toBe(404);
    expect(((await res.json()) as Json).error.code).toBe("not_found");
  });

  it("GET /api/functions/:name shows the current version and /versions lists every version newest first", async () => {
    expect(await (await call("/api/functions/versioned")).json()).toMatchObject({ version: 2, code: v2 });
    const res = await call("/api/functions/versioned/versions");
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as Json;
    expect(items.map((v: Json) => v.version)).toEqual([2, 1]);
  });

  it("DELETE removes the function: /fn and the API answer 404, but its invocations stay in the log", async () => {
    const before = ((await (await call("/api/invocations?function=versioned")).json()) as Json).items;
    expect(before).toHaveLength(3);
    const del = await call("/api/functions/versioned", { method: "DELETE" });
    expect(del.status).toBe(204);
    const invoke = await call("/fn/versioned");
    expect(invoke.status).toBe(404);
    expect(((await invoke.json()) as Json).error.code).toBe("not_found");
    expect((await call("/fn/versioned@1")).status).toBe(404);
    expect((await call("/api/functions/versioned")).status).toBe(404);
    const after = ((await (await call("/api/invocations?function=versioned")).json()) as Json).items;
    expect(after.map((row: Json) => row.id)).toEqual(before.map((row: Json) => row.id));
    expect(await invocation(call, before[0].id)).toMatchObject({ function: "versioned", status: "ok" });
  });
});

describe("auth", () => {
  beforeAll(async () => {
    await python("private", `def handler(request):\n    return "private"\n`);
    await python("open", `def handler(request):\n    return "open"\n`, { public: true });
  });

  it.each([
    ["no token", null],
    ["a wrong token", "not-the-token-at-all"],
  ])("/api with %s answers 401 with a JSON error", async (_what, token) => {
    for (const [method, pathname] of [["GET", "/api/functions"], ["GET", "/api/invocations"], ["DELETE", "/api/functions/private"]]) {
      const res = await call(pathname!, { method: method!, token });
      expect(res.status, `${method} ${pathname}`).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(((await res.json()) as Json).error.code).toBe("unauthorized");
    }
    expect((await call("/api/functions/private")).status).toBe(200); // not deleted
  });

  it("a non-public function at /fn answers 401 without the token or with a wrong one, and runs with it", async () => {
    const none = await call("/fn/private", { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get("x-invocation-id")).toBeTruthy();
    expect((await call("/fn/private", { token: "not-the-token-at-all" })).status).toBe(401);
    const ok = await call("/fn/private");
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("private");
  });

  it("a `public: true` function runs without a token", async () => {
    const res = await call("/fn/open", { token: null });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("open");
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
    expect(await invocation(call, idOf(res))).toMatchObject({ status: "rejected", http_status: 413, exit_code: null });
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

describe("stats", () => {
  it("GET /api/functions/:name/stats?window=1h counts the invocations made, with p50/p95/p99", async () => {
    await python(
      "counted",
      `def handler(request):\n    if "fail" in request.query:\n        raise RuntimeError("asked to")\n    return "ok"\n`,
    );
    for (let i = 0; i < 5; i++) expect((await call("/fn/counted")).status).toBe(200);
    expect((await call("/fn/counted?fail=1")).status).toBe(500);
    const res = await call("/api/functions/counted/stats?window=1h");
    expect(res.status).toBe(200);
    const stats = (await res.json()) as Json;
    expect(stats).toMatchObject({ function: "counted", window: "1h", count: 6, errors: 1, timeouts: 0 });
    expect(stats.by_status).toMatchObject({ ok: 5, error: 1 });
    const { p50, p95, p99, max } = stats.duration_ms;
    expect(p50).toBeGreaterThan(0);
    expect(p50).toBeLessThanOrEqual(p95);
    expect(p95).toBeLessThanOrEqual(p99);
    expect(p99).toBeLessThanOrEqual(max);
    expect(Date.parse(stats.until) - Date.parse(stats.since)).toBe(3600_000);
  });

  it("answers 400 to a window it cannot read and 404 for an unknown function", async () => {
    expect((await call("/api/functions/counted/stats?window=forever")).status).toBe(400);
    expect((await call("/api/functions/never-registered/stats?window=1h")).status).toBe(404);
  });
});

describe("discoverability and health", () => {
  it("/openapi.json is an OpenAPI 3 document listing every route, each $ref resolving", async () => {
    const res = await call("/openapi.json", { token: null });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Json;
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    const operations = Object.entries(doc.paths as Json).flatMap(([p, item]) =>
      Object.keys(item as Json).filter((k) => ["get", "put", "post", "delete", "patch"].includes(k)).map((m) => `${m.toUpperCase()} ${p}`),
    );
    expect(operations).toEqual(
      expect.arrayContaining([
        "POST /api/functions",
        "GET /api/functions",
        "GET /api/functions/{name}",
        "PUT /api/functions/{name}",
        "DELETE /api/functions/{name}",
        "GET /api/functions/{name}/versions",
        "GET /api/functions/{name}/stats",
        "GET /api/invocations",
        "GET /api/invocations/{id}",
        "GET /healthz",
        "GET /fn/{target}",
        "POST /fn/{target}",
      ]),
    );
    for (const [p, item] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(item as Json)) {
        expect(Object.keys((op as Json).responses ?? {}), `${method} ${p} has responses`).not.toHaveLength(0);
        // Every templated path segment is declared as a path parameter.
        for (const [, param] of p.matchAll(/\{(\w+)\}/g)) {
          expect((op as Json).parameters ?? [], `${method} ${p}`).toContainEqual(expect.objectContaining({ name: param, in: "path" }));
        }
      }
    }
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const target = ref.split("/").reduce<any>((node, key) => node?.[key], doc);
      expect(target, `$ref #/${ref}`).toBeDefined();
    }
    expect(doc.components.securitySchemes).toMatchObject({ bearer: { type: "http", scheme: "bearer" } });
  });

  it("/docs serves an HTML page pointing at the document", async () => {
    const res = await call("/docs", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<html/i);
    expect(html).toContain("/openapi.json");
  });

  it("/healthz answers without a token: ok, the sandbox ready, with its cgroup mode", async () => {
    const res = await call("/healthz", { token: null });
    expect(res.status).toBe(200);
    const health = (await res.json()) as Json;
    expect(health.ok).toBe(true);
    expect(health.sandbox).toMatchObject({ ready: true, slots: expect.any(Number), busy: 0, firewall: true });
    expect(["v1", "v2"]).toContain(health.sandbox.cgroups);
  });

  it("TRACE on a function answers 405 in the error shape (fetch cannot send it: plain node:http)", async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${server.url}/fn/anything`, { method: "TRACE", headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(405);
    expect(JSON.parse(body).error.code).toBe("method_not_allowed");
  });

  it("an unknown route answers 404 in the error shape", async () => {
    const res = await call("/nowhere");
    expect(res.status).toBe(404);
    expect(((await res.json()) as Json).error.code).toBe("not_found");
  });
});

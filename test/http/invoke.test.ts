import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { log } from "../../src/core/log.js";
import { SaturatedError } from "../../src/core/runner.js";
import { readBodyWithin } from "../../src/http/body.js";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, okResult, register, result, runScenarios, type Scenario, TOKEN } from "./harness.js";

let gw: Gateway;
beforeAll(async () => {
  gw = makeGateway({ MAX_BODY_BYTES: "1024", MAX_RESPONSE_BYTES: "4096" });
  await register(gw, { name: "hello", env: { SECRET: "s3cret" }, timeout_ms: 2000, memory_mb: 64, network: true });
  await gw.call("/api/functions/hello", { method: "PUT", json: { code: "# version 2\n" } });
  await register(gw, { name: "open", public: true });
});
afterAll(() => gw.close());
beforeEach(() => {
  gw.runner.script = (spec) => okResult({ body: Buffer.from(JSON.stringify({ path: spec.request.path })) });
});

function logRow(id: string | null): Json | undefined {
  return gw.database.sqlite.prepare("select * from invocations where id = ?").get(id) as Json | undefined;
}

function logCount(): number {
  return gw.database.sqlite.prepare("select count(*) from invocations").pluck().get() as number;
}

describe("ANY /fn/:name — what the runner is given", () => {
  it("runs the current version with its real settings and env", async () => {
    const res = await gw.call("/fn/hello");
    expect(res.status).toBe(200);
    const spec = gw.runner.last;
    expect(spec).toMatchObject({
      runtime: "python",
      code: "# version 2\n",
      env: { SECRET: "s3cret" },
      timeoutMs: 2000,
      memoryMb: 64,
      network: true,
    });
  });

  it("hands over method, the path below the function, query pairs in order, headers and the body bytes", async () => {
    const payload = new Uint8Array([0, 1, 2, 250, 255]);
    await gw.call("/fn/hello/users/7/?x=1&y=two&x=3", {
      method: "POST",
      headers: { "X-Custom": "Yes", "content-type": "application/octet-stream" },
      body: payload,
    });
    const { request } = gw.runner.last;
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/users/7/");
    expect(request.query).toEqual([
      ["x", "1"],
      ["y", "two"],
      ["x", "3"],
    ]);
    expect(request.headers).toContainEqual(["x-custom", "Yes"]);
    expect(request.headers).toContainEqual(["content-type", "application/octet-stream"]);
    expect([...request.body]).toEqual([...payload]);
    expect(request.url).toBe("http://localhost/fn/hello/users/7/?x=1&y=two&x=3");
  });

  it("gives `/` as the path for /fn/name and /fn/name/", async () => {
    await gw.call("/fn/hello");
    expect(gw.runner.last.request.path).toBe("/");
    await gw.call("/fn/hello/");
    expect(gw.runner.last.request.path).toBe("/");
  });

  it("never passes the Authorization header (the gateway token) to the function", async () => {
    await gw.call("/fn/hello", { headers: { "x-other": "1" } });
    await gw.call("/fn/open", { headers: { authorization: "Bearer the-functions-own-token" } });
    for (const spec of gw.runner.calls.slice(-2)) {
      expect(spec.request.headers.map(([name]) => name)).not.toContain("authorization");
      expect(JSON.stringify(spec)).not.toContain(TOKEN);
    }
  });

  it("tells the function its invocation id in x-invocation-id, replacing any the client sent", async () => {
    const res = await gw.call("/fn/hello", { headers: { "x-invocation-id": "forged" } });
    const ids = gw.runner.last.request.headers.filter(([name]) => name === "x-invocation-id");
    expect(ids).toEqual([["x-invocation-id", res.headers.get("x-invocation-id")]]);
  });

  it("runs version N for /fn/name@N and /fn/name@N/sub/path", async () => {
    await gw.call("/fn/hello@1");
    expect(gw.runner.last.code).toContain("def handler");
    await gw.call("/fn/hello@2/sub/path");
    expect(gw.runner.last.code).toBe("# version 2\n");
    expect(gw.runner.last.request.path).toBe("/sub/path");
  });
});

describe("ANY /fn/:name — lookup and auth", () => {
  let logRowsBefore = 0;
  let runsBefore = 0;
  runScenarios(
    () => gw,
    [
      {
        name: "answers 404 for an unknown function, with no log row and so no invocation id",
        url: "/fn/nope/x",
        before: () => (logRowsBefore = logCount()),
        expectedStatus: 404,
        expectedError: "not_found",
        after: (_gw, res) => {
          expect(logCount()).toBe(logRowsBefore);
          expect(res.headers.get("x-invocation-id")).toBeNull();
        },
      },
      ...["/fn/hello@99", "/fn/hello@0", "/fn/hello@x", "/fn/Bad%20Name", "/fn/", "/fn/%E0%A4%A"].map((url) => ({
        name: `answers 404 for ${url}`,
        url,
        expectedStatus: 404,
        expectedError: "not_found",
      })),
      {
        name: "answers 401 with WWW-Authenticate without the token, runs and logs nothing, and so carries no invocation id",
        url: "/fn/hello",
        token: null,
        before: () => {
          runsBefore = gw.runner.calls.length;
          logRowsBefore = logCount();
        },
        expectedStatus: 401,
        expectedError: "unauthorized",
        expectedHeaders: { "www-authenticate": /^Bearer/ },
        after: (_gw, res) => {
          expect(gw.runner.calls.length).toBe(runsBefore);
          expect(logCount()).toBe(logRowsBefore);
          expect(res.headers.get("x-invocation-id")).toBeNull();
        },
      },
      ...["/fn/nope", "/fn/hello@99", "/fn/hello"].map((url) => ({
        name: `answers ${url} alike without the token (401): anonymous callers cannot tell unknown functions and versions from private ones`,
        url,
        token: null,
        expectedStatus: 401,
        expectedError: "unauthorized",
      })),
      {
        name: "answers 401 for a wrong token",
        url: "/fn/hello",
        token: "wrong-token-wrong-token",
        expectedStatus: 401,
        expectedHeaders: { "www-authenticate": /error="invalid_token"/ },
      },
      {
        name: "runs a public function without the token",
        url: "/fn/open/a",
        token: null,
        expectedStatus: 200,
        after: () => expect(gw.runner.last.request.path).toBe("/a"),
      },
    ],
  );

  it("keeps an old public version private once the current version is private, and the other way round", async () => {
    await register(gw, { name: "flip", public: true });
    await gw.call("/api/functions/flip", { method: "PUT", json: { public: false } });
    expect((await gw.call("/fn/flip@1", { token: null })).status).toBe(401);
    await gw.call("/api/functions/flip", { method: "PUT", json: { public: true } });
    expect((await gw.call("/fn/flip", { token: null })).status).toBe(200);
    expect((await gw.call("/fn/flip@2", { token: null })).status).toBe(401);
    expect((await gw.call("/fn/flip@1", { token: null })).status).toBe(200);
  });
});

describe("ANY /fn/:name — the body cap (MAX_BODY_BYTES = 1024)", () => {
  it("accepts a body of exactly the cap", async () => {
    const res = await gw.call("/fn/hello", { method: "POST", body: new Uint8Array(1024) });
    expect(res.status).toBe(200);
    expect(gw.runner.last.request.body.byteLength).toBe(1024);
  });

  it("answers 413 from Content-Length alone, before reading the body, with an id and a `rejected` row", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull() {
        throw new Error("the body was read");
      },
    });
    const res = await gw.app.request(
      new Request("http://localhost/fn/hello", {
        method: "POST",
        body,
        headers: { authorization: `Bearer ${TOKEN}`, "content-length": "1025" },
        duplex: "half",
      } as RequestInit),
    );
    expect(res.status).toBe(413);
    expect(res.headers.get("x-invocation-id")).toBeTruthy();
    const id = res.headers.get("x-invocation-id");
    expect((await res.json()).error).toMatchObject({
      code: "payload_too_large",
      message: expect.stringContaining("1024"),
      invocation_id: id,
    });
    expect(logRow(id)).toMatchObject({ status: "rejected", http_status: 413, request_bytes: 0 });
  });

  runScenarios(
    () => gw,
    [
      {
        name: "answers 413 for a body over the cap sent without Content-Length",
        method: "POST",
        url: "/fn/hello",
        body: new Uint8Array(1025),
        expectedStatus: 413,
        expectedError: "payload_too_large",
      },
    ],
  );

  it("answers 413 when a streamed body without Content-Length grows past the cap", async () => {
    const chunks = [new Uint8Array(600), new Uint8Array(600)];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await gw.app.request(
      new Request("http://localhost/fn/hello", {
        method: "POST",
        body: stream,
        headers: { authorization: `Bearer ${TOKEN}` },
        duplex: "half",
      } as RequestInit),
    );
    expect(res.status).toBe(413);
  });

  it("answers 413 when the body is longer than its Content-Length claims", async () => {
    const request = new Request("http://localhost/fn/hello", {
      method: "POST",
      body: new Uint8Array(2000),
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    // A lying client: undici would not send this, so the header is forged on an existing request.
    const forged = new Proxy(request, {
      get(target, key) {
        if (key === "headers") {
          const headers = new Headers(target.headers);
          headers.set("content-length", "10");
          return headers;
        }
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    expect(await readBodyWithin(forged, { maxBytes: 1024, timeoutMs: 1000 })).toMatchObject({ tooLarge: true });
  });
});

describe("ANY /fn/:name — mapping the result", () => {
  it("answers with the function's status, headers and body bytes, and adds x-invocation-id", async () => {
    gw.runner.script = () =>
      okResult({
        status: 201,
        headers: [
          ["content-type", "application/octet-stream"],
          ["x-made-by", "fn"],
          ["set-cookie", "a=1"],
          ["set-cookie", "b=2"],
        ],
        body: Buffer.from([1, 2, 3, 255]),
      });
    const res = await gw.call("/fn/hello");
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("x-made-by")).toBe("fn");
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([1, 2, 3, 255]);
    expect(res.headers.get("x-invocation-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("drops hop-by-hop headers, the function's content-length and any x-invocation-id it sets", async () => {
    gw.runner.script = () =>
      okResult({
        headers: [
          ["Connection", "close"],
          ["Transfer-Encoding", "chunked"],
          ["Content-Length", "9999"],
          ["Upgrade", "h2c"],
          ["Keep-Alive", "timeout=5"],
          ["X-Invocation-Id", "spoofed"],
          ["bad header name", "x"],
          ["x-ok", "1"],
        ],
        body: Buffer.from("hi"),
      });
    const res = await gw.call("/fn/hello");
    expect(res.status).toBe(200);
    for (const name of ["connection", "transfer-encoding", "upgrade", "keep-alive"]) expect(res.headers.get(name)).toBeNull();
    expect(res.headers.get("content-length")).not.toBe("9999");
    expect(res.headers.get("x-invocation-id")).not.toBe("spoofed");
    expect(res.headers.get("x-ok")).toBe("1");
    expect(await res.text()).toBe("hi");
  });

  it("sends no body with a 204", async () => {
    gw.runner.script = () => okResult({ status: 204, body: Buffer.from("ignored") });
    const res = await gw.call("/fn/hello");
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
  });

  runScenarios(
    () => gw,
    [
      ...(
        [
          ["error", 500],
          ["timeout", 504],
          ["oom", 500],
          ["forbidden", 500],
        ] as const
      ).map(
        ([status, http]): Scenario => ({
          name: `answers ${status} with ${http} and a JSON error naming the status and the invocation`,
          url: "/fn/hello",
          before: () => {
            gw.runner.script = () =>
              result({
                status,
                exitCode: status === "error" ? 1 : null,
                signal: status === "error" ? null : "SIGKILL",
                errorMessage: `it ended: ${status}`,
              });
          },
          expectedStatus: http,
          expectedError: status,
          after: (_gw, res, body) => {
            const id = res.headers.get("x-invocation-id");
            expect(JSON.parse(body)).toEqual({ error: { code: status, message: `it ended: ${status}`, invocation_id: id } });
            expect(logRow(id)).toMatchObject({ status, http_status: http, error: `it ended: ${status}` });
          },
        }),
      ),
      {
        name: "answers 429 with Retry-After when the runner is saturated, and logs a `rejected` row",
        url: "/fn/hello",
        before: () => {
          gw.runner.script = () => {
            throw new SaturatedError(2.2);
          };
        },
        expectedStatus: 429,
        expectedError: "rejected",
        expectedHeaders: { "retry-after": "3" },
        after: (_gw, res, body) => {
          const id = res.headers.get("x-invocation-id");
          expect((JSON.parse(body) as Json).error).toMatchObject({ code: "rejected", invocation_id: id });
          expect(logRow(id)).toMatchObject({ status: "rejected", http_status: 429, function_name: "hello" });
        },
      },
    ],
  );

  it("answers 500 without details when the runner itself fails, and keeps the detail in the log", async () => {
    const quiet = vi.spyOn(log, "error").mockImplementation(() => {});
    gw.runner.script = () => {
      throw new Error("internal detail /var/secret");
    };
    const res = await gw.call("/fn/hello");
    quiet.mockRestore();
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain("/var/secret");
    expect(JSON.parse(text).error.code).toBe("internal");
    expect(logRow(res.headers.get("x-invocation-id"))?.error).toContain("/var/secret");
  });
});

describe("ANY /fn/:name — the log row", () => {
  it("is written `running` before the runner starts and completed when it ends", async () => {
    let seenWhileRunning: Json | undefined;
    let inflightWhileRunning = 0;
    gw.runner.script = (spec) => {
      const id = spec.request.headers.find(([name]) => name === "x-invocation-id")?.[1] ?? null;
      seenWhileRunning = logRow(id);
      inflightWhileRunning = gw.admission.size;
      return okResult(
        { status: 202, body: Buffer.from("accepted!") },
        {
          durationMs: 42.5,
          exitCode: 0,
          stdout: { data: Buffer.from("printed\n"), truncated: true },
          stderr: { data: Buffer.from([0x62, 0x61, 0x64, 0xff, 0x21]), truncated: false },
        },
      );
    };
    const res = await gw.call("/fn/hello@1/p?q=1", { method: "PUT", body: "12345" });
    const id = res.headers.get("x-invocation-id");
    expect(seenWhileRunning).toMatchObject({ status: "running", function_name: "hello", version: 1 });
    expect(inflightWhileRunning).toBe(1);
    expect(gw.admission.size).toBe(0);
    expect(logRow(id)).toMatchObject({
      status: "ok",
      function_name: "hello",
      version: 1,
      method: "PUT",
      path: "/p",
      http_status: 202,
      request_bytes: 5,
      response_bytes: 9,
      duration_ms: 42.5,
      exit_code: 0,
      signal: null,
      stdout: "printed\n",
      stdout_truncated: 1,
      // Invalid UTF-8 is stored lossily.
      stderr: "bad\uFFFD!",
      stderr_truncated: 0,
      error: null,
    });
  });

  it("records the blocked syscall and signal of a forbidden run", async () => {
    gw.runner.script = () =>
      result({ status: "forbidden", signal: "SIGSYS", exitCode: null, blockedSyscall: "execve", errorMessage: "killed by seccomp" });
    const res = await gw.call("/fn/hello");
    expect(logRow(res.headers.get("x-invocation-id"))).toMatchObject({ status: "forbidden", signal: "SIGSYS", blocked_syscall: "execve" });
  });
});

describe("the function cache", () => {
  it("serves the current version from memory: an invocation prepares no SELECT", async () => {
    await gw.call("/fn/hello"); // warm
    const prepare = vi.spyOn(gw.database.sqlite, "prepare");
    await gw.call("/fn/hello");
    const selects = prepare.mock.calls.map(([sql]) => String(sql)).filter((sql) => /^\s*select/i.test(sql));
    prepare.mockRestore();
    expect(selects).toEqual([]);
  });

  it("sees a PUT at once", async () => {
    await gw.call("/api/functions/hello", { method: "PUT", json: { code: "# version 3\n" } });
    await gw.call("/fn/hello");
    expect(gw.runner.last.code).toBe("# version 3\n");
  });

  it("forgets a deleted function at once", async () => {
    await register(gw, { name: "gone" });
    expect((await gw.call("/fn/gone")).status).toBe(200);
    await gw.call("/api/functions/gone", { method: "DELETE" });
    expect((await gw.call("/fn/gone")).status).toBe(404);
  });
});

describe("ANY /fn/:name — admission before the body is read", () => {
  it("turns away requests past MAX_CONCURRENCY + QUEUE_LIMIT with 429 and a `rejected` row, before buffering their bodies", async () => {
    const small = makeGateway({ MAX_CONCURRENCY: "1", QUEUE_LIMIT: "1" });
    try {
      await register(small, { name: "slow", public: true });
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      small.runner.script = async () => {
        await held;
        return okResult({ body: Buffer.from("done") });
      };
      const first = small.call("/fn/slow", { method: "POST", body: "a", token: null });
      const second = small.call("/fn/slow", { method: "POST", body: "b", token: null });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const third = await small.call("/fn/slow", { method: "POST", body: "c".repeat(1000), token: null });
      expect(third.status).toBe(429);
      expect(third.headers.get("connection")).toBe("close");
      const id = third.headers.get("x-invocation-id");
      expect((await third.json()).error).toMatchObject({ code: "rejected", invocation_id: id });
      const row = small.database.sqlite.prepare("select status, http_status, request_bytes from invocations where id = ?").get(id);
      expect(row).toEqual({ status: "rejected", http_status: 429, request_bytes: 0 });
      release();
      expect([(await first).status, (await second).status]).toEqual([200, 200]);
      expect((await small.call("/fn/slow", { token: null })).status).toBe(200);
    } finally {
      small.close();
    }
  });
});

describe("ANY /fn/:name — a function's own max_concurrency", () => {
  it("answers 429 past the function's limit while other functions still run", async () => {
    const local = makeGateway({ MAX_CONCURRENCY: "4", QUEUE_LIMIT: "4" });
    try {
      await register(local, { name: "single", max_concurrency: 1 });
      await register(local, { name: "other" });
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      local.runner.script = async (spec) => {
        if (spec.code.includes("single")) await held;
        return okResult({ body: Buffer.from("done") });
      };
      await local.call("/api/functions/single", { method: "PUT", json: { code: "# single" } });
      const first = local.call("/fn/single");
      await new Promise((resolve) => setTimeout(resolve, 20));
      const second = await local.call("/fn/single");
      expect(second.status).toBe(429);
      expect((await second.json()).error.code).toBe("rejected");
      expect((await local.call("/fn/other")).status).toBe(200);
      release();
      expect((await first).status).toBe(200);
      expect((await local.call("/fn/single")).status).toBe(200);
    } finally {
      local.close();
    }
  });
});

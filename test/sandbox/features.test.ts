import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { bodyJson, bodyText, request, spec, startSandbox, stopSandbox, until } from "./harness.js";

let handle: Awaited<ReturnType<typeof startSandbox>>;
let sandbox: Sandbox;

beforeAll(async () => {
  handle = await startSandbox({ OUTPUT_CAP_BYTES: String(64 * 1024), TMP_SIZE_MB: "8" });
  sandbox = handle.sandbox;
});
afterAll(() => stopSandbox(handle));

const run = (...args: Parameters<typeof spec>) => sandbox.run(spec(...args));

describe("interpreters", () => {
  it("runs JavaScript on the pinned Node 24 LTS, whatever Node runs the gateway, and /healthz shows both", async () => {
    const result = await run(
      "node",
      "export default () => ({ version: process.version, argv0: process.argv0, execPath: process.execPath });",
    );
    const seen = bodyJson<{ version: string; argv0: string; execPath: string }>(result);
    expect(seen.version).toMatch(/^v24\./);
    // The launcher (native/launcher/fngw-exec.c) keeps the host's paths out of what the function sees.
    expect(seen).toMatchObject({ argv0: "node", execPath: "/usr/bin/node" });
    expect(sandbox.health()).toMatchObject({ node: seen.version, gatewayNode: process.version });
  });

  it("after a Node invocation, the slot's next Node standby waits in the slot's cgroup, and serves the next one", async () => {
    const pidOf = "export default () => process.pid;";
    await run("node", pidOf);
    const inSlot = () =>
      sandbox
        .health()
        .memory.standby.filter((s) => s.runtime === "node")
        .map((s) => s.pid)
        .filter((pid) => /\/slot-\d+$/m.test(fs.readFileSync(`/proc/${pid}/cgroup`, "utf8")));
    await until(() => inSlot().length > 0, 10_000);
    const waiting = inSlot();
    // Every slot's was last Python's or Node's; the next Node invocation takes the one in its own slot.
    const pids: number[] = [];
    for (let i = 0; i < 4; i++) pids.push(Number(bodyText(await run("node", pidOf))));
    expect(pids.some((pid) => waiting.includes(pid))).toBe(true);
  });
});

describe("handler mode", () => {
  it("calls a Python handler with the request and answers JSON", async () => {
    const result = await run(
      "python",
      `def handler(request):
    return {"hello": request.query.get("name", "world"), "method": request.method, "path": request.path,
            "type": request.headers.get("Content-Type"), "body": request.json()}`,
      {
        request: request({
          method: "POST",
          path: "/greet",
          query: [
            ["name", "ada"],
            ["name", "ignored"],
          ],
          headers: [["content-type", "application/json"]],
          body: Buffer.from('{"n": 1}'),
          url: "http://gateway.test/fn/test/greet?name=ada&name=ignored",
        }),
      },
    );
    expect(result.status).toBe("ok");
    expect(result.response?.status).toBe(200);
    expect(result.response?.headers).toContainEqual(["content-type", "application/json"]);
    expect(bodyJson(result)).toEqual({ hello: "ada", method: "POST", path: "/greet", type: "application/json", body: { n: 1 } });
  });

  it("calls a JavaScript default export with a Web Request and returns its Response", async () => {
    const result = await run(
      "node",
      `export default async function (request) {
  const url = new URL(request.url);
  return Response.json({ hello: url.searchParams.get("name"), method: request.method, path: request.path,
                         type: request.headers.get("content-type"), body: await request.json() }, { status: 201 });
}`,
      {
        request: request({
          method: "POST",
          path: "/greet",
          query: [["name", "ada"]],
          headers: [["content-type", "application/json"]],
          body: Buffer.from('{"n": 1}'),
          url: "http://gateway.test/fn/test/greet?name=ada",
        }),
      },
    );
    expect(result.status).toBe("ok");
    expect(result.response?.status).toBe(201);
    expect(bodyJson(result)).toEqual({ hello: "ada", method: "POST", path: "/greet", type: "application/json", body: { n: 1 } });
  });

  it("accepts CommonJS module.exports and async handlers", async () => {
    const cjs = await run("node", `module.exports = async (request) => ({ cjs: true, path: request.path });`);
    expect(bodyJson(cjs)).toEqual({ cjs: true, path: "/" });
    const py = await run("python", `async def handler(request):\n    return "async"`);
    expect(bodyText(py)).toBe("async");
  });

  it("keeps print and console.log out of the response: they go to the log", async () => {
    const py = await run("python", `def handler(request):\n    print("to the log")\n    return "the body"`);
    expect(bodyText(py)).toBe("the body");
    expect(py.stdout.data.toString()).toBe("to the log\n");
    const js = await run("node", `export default () => { console.log("to the log"); return "the body"; }`);
    expect(bodyText(js)).toBe("the body");
    expect(js.stdout.data.toString()).toBe("to the log\n");
  });
});

describe("return values become responses", () => {
  const cases: [string, string, string, number, string | undefined, string][] = [
    ["python dict", "python", `def handler(r):\n    return {"a": [1, 2]}`, 200, "application/json", '{"a": [1, 2]}'],
    ["python list", "python", `def handler(r):\n    return [1, "x"]`, 200, "application/json", '[1, "x"]'],
    ["python str", "python", `def handler(r):\n    return "héllo"`, 200, "text/plain; charset=utf-8", "héllo"],
    ["python bytes", "python", `def handler(r):\n    return b"\\x00\\x01"`, 200, "application/octet-stream", "\u0000\u0001"],
    ["python (body, status)", "python", `def handler(r):\n    return "gone", 410`, 410, "text/plain; charset=utf-8", "gone"],
    [
      "python (body, status, headers)",
      "python",
      `def handler(r):\n    return "<b>x</b>", 202, {"Content-Type": "text/html", "X-Custom": "1"}`,
      202,
      "text/html",
      "<b>x</b>",
    ],
    ["python None", "python", `def handler(r):\n    return None`, 204, undefined, ""],
    ["node object", "node", `export default () => ({ a: [1, 2] })`, 200, "application/json", '{"a":[1,2]}'],
    ["node string", "node", `export default () => "héllo"`, 200, "text/plain; charset=utf-8", "héllo"],
    ["node Uint8Array", "node", `export default () => new Uint8Array([0, 1])`, 200, "application/octet-stream", "\u0000\u0001"],
    [
      "node Response",
      "node",
      `export default () => new Response("<b>x</b>", { status: 202, headers: { "content-type": "text/html", "x-custom": "1" } })`,
      202,
      "text/html",
      "<b>x</b>",
    ],
    ["node undefined", "node", `export default () => {}`, 204, undefined, ""],
  ];
  it.each(cases)("%s", async (_name, runtime, code, status, contentType, body) => {
    const result = await run(runtime as "python" | "node", code);
    expect(result.status, bodyText(result)).toBe("ok");
    expect(result.response?.status).toBe(status);
    const header = result.response?.headers.find(([name]) => name.toLowerCase() === "content-type")?.[1];
    expect(header).toBe(contentType);
    expect(result.response?.body.toString("latin1")).toBe(Buffer.from(body).toString("latin1"));
  });

  it("refuses a response with more than 100 headers", async () => {
    const headers = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`x-h${i}`, "v"]));
    const result = await run("python", `def handler(r):\n    return "x", 200, ${JSON.stringify(headers)}`);
    expect(result.status).toBe("error");
    expect(result.errorMessage).toMatch(/more than 100 headers/);
  });

  it("reports an unsupported return type as an error", async () => {
    const result = await run("python", `def handler(r):\n    return object()`);
    expect(result.status).toBe("error");
    expect(result.errorMessage).toMatch(/unsupported type: object/);
  });
});

describe("script mode", () => {
  it.each([
    ["python", `import sys\nprint("line one")\nsys.stdout.write("line two")`],
    ["node", `console.log("line one"); process.stdout.write("line two");`],
  ])("%s: a script without a handler answers with its stdout", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code);
    expect(result.status).toBe("ok");
    expect(result.response?.status).toBe(200);
    expect(bodyText(result)).toBe("line one\nline two");
  });

  it("python: a script's non-daemon threads finish before it answers", async () => {
    const code = `import threading, time\ndef later():\n    time.sleep(0.2)\n    print("from the thread")\nthreading.Thread(target=later).start()\nprint("main done")`;
    const result = await run("python", code);
    expect(result.status).toBe("ok");
    expect(bodyText(result)).toBe("main done\nfrom the thread\n");
  });

  it("python: then its atexit functions run, and their output is part of the answer", async () => {
    const code = `import atexit, threading, time\natexit.register(lambda: print("at exit"))\nthreading.Thread(target=lambda: (time.sleep(0.1), print("thread"))).start()\nprint("main")`;
    const result = await run("python", code);
    expect(result).toMatchObject({ status: "ok", exitCode: 0 });
    expect(bodyText(result)).toBe("main\nthread\nat exit\n");
  });

  it.each([
    ["python", `import sys\nprint("partial")\nsys.exit(3)`],
    ["node", `console.log("partial"); process.exitCode = 3;`],
  ])("%s: a script that exits non-zero is an error with its exit code", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code);
    expect(result.status).toBe("error");
    expect(result.exitCode).toBe(3);
    expect(result.response).toBeNull();
  });
});

describe("a handler that ends without answering", () => {
  it.each([
    ["python", `import sys\ndef handler(r):\n    print("a log line")\n    sys.exit(0)`],
    ["python", `import os\ndef handler(r):\n    print("a log line", flush=True)\n    os._exit(0)`],
    ["node", `export default () => { console.log("a log line"); process.exit(0); }`],
    ["node", `export default async () => { console.log("a log line"); await new Promise(() => {}); }`],
  ])("%s: is an error, and its log never becomes the response", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code);
    expect(result.status).toBe("error");
    expect(result.errorMessage).toBe("the handler ended without a response");
    expect(result.response).toBeNull();
    expect(result.stdout.data.toString()).toBe("a log line\n");
  });
});

describe("exceptions", () => {
  it.each([
    ["python", `def handler(r):\n    raise ValueError("boom")`, /ValueError: boom/],
    ["node", `export default () => { throw new TypeError("boom"); }`, /TypeError: boom/],
    ["python", `raise RuntimeError("at import")`, /RuntimeError: at import/],
    ["node", `export default async () => { await null; throw new RangeError("async boom"); }`, /RangeError: async boom/],
  ])("%s: an exception is status error, its message in errorMessage and its trace in stderr", async (runtime, code, message) => {
    const result = await run(runtime as "python" | "node", code);
    expect(result.status).toBe("error");
    expect(result.exitCode).toBe(1);
    expect(result.errorMessage).toMatch(message);
    expect(result.stderr.data.toString()).toMatch(message);
    expect(result.stderr.data.toString()).toMatch(/function\.(py|js|mjs)/);
    expect(result.stderr.data.toString()).not.toMatch(/prescript|\[stdin\]/);
  });

  it("reports a syntax error", async () => {
    const py = await run("python", `def handler(r) return 1`);
    expect(py.status).toBe("error");
    expect(py.errorMessage).toMatch(/SyntaxError/);
    const js = await run("node", `export default () => {`);
    expect(js.status).toBe("error");
    expect(js.errorMessage).toMatch(/SyntaxError/);
  });
});

describe("environment variables", () => {
  it.each([
    ["python", `import os\ndef handler(r):\n    return {"greeting": os.environ["GREETING"], "home": os.environ["HOME"]}`],
    ["node", `export default () => ({ greeting: process.env.GREETING, home: process.env.HOME })`],
  ])("%s sees the function's own variables", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code, { env: { GREETING: "bonjour" } });
    expect(bodyJson(result)).toEqual({ greeting: "bonjour", home: "/tmp" });
  });
});

describe("threads after the lock", () => {
  it("runs Python threads, each unprivileged", async () => {
    const result = await run(
      "python",
      `import os, threading
def handler(r):
    uids, lock = [], threading.Lock()
    def work():
        with lock:
            uids.append(os.getuid())
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    return {"uids": uids, "main": os.getuid()}`,
    );
    const body = bodyJson<{ uids: number[]; main: number }>(result);
    expect(body.uids).toHaveLength(8);
    expect(body.main).toBeGreaterThanOrEqual(300_000);
    expect(new Set(body.uids)).toEqual(new Set([body.main]));
  });

  it("runs Node worker_threads and fs.promises on the libuv pool", async () => {
    const result = await run(
      "node",
      `import { Worker } from "node:worker_threads";
import fs from "node:fs/promises";
export default async () => {
  const fromWorker = await new Promise((resolve, reject) => {
    const w = new Worker("require('node:worker_threads').parentPort.postMessage(process.getuid())", { eval: true });
    w.once("message", resolve); w.once("error", reject);
  });
  await fs.writeFile("/tmp/a.txt", "written on the pool");
  const read = await Promise.all([1, 2, 3, 4, 5].map(() => fs.readFile("/tmp/a.txt", "utf8")));
  return { fromWorker, main: process.getuid(), read: [...new Set(read)] };
}`,
    );
    const body = bodyJson<{ fromWorker: number; main: number; read: string[] }>(result);
    expect(body.main).toBeGreaterThanOrEqual(300_000);
    expect(body.fromWorker).toBe(body.main);
    expect(body.read).toEqual(["written on the pool"]);
  });
});

describe("the standard library after the lock", () => {
  it("imports json, re, hashlib, datetime and zoneinfo in Python", async () => {
    const result = await run(
      "python",
      `import json, re, hashlib, datetime, zoneinfo, sqlite3, zlib, decimal
def handler(r):
    paris = datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    return {"sha": hashlib.sha256(b"abc").hexdigest(), "re": re.sub(r"\\d", "#", "a1b2"),
            "offset": paris.utcoffset().total_seconds(), "json": json.loads("[1]"),
            "sqlite": sqlite3.connect(":memory:").execute("select 40 + 2").fetchone()[0],
            "zlib": len(zlib.compress(b"x" * 1000)) < 100, "decimal": str(decimal.Decimal("1.10") + 1)}`,
    );
    expect(bodyJson(result)).toEqual({
      sha: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      re: "a#b#",
      offset: 7200,
      json: [1],
      sqlite: 42,
      zlib: true,
      decimal: "2.10",
    });
  });

  it("uses crypto, zlib and Intl time zones in Node", async () => {
    const result = await run(
      "node",
      `import crypto from "node:crypto";
import zlib from "node:zlib";
export default () => ({
  sha: crypto.createHash("sha256").update("abc").digest("hex"),
  uuid: crypto.randomUUID().length,
  zlib: zlib.gunzipSync(zlib.gzipSync("round trip")).toString(),
  paris: new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", hourCycle: "h23" }).format(new Date(Date.UTC(2024, 6, 1, 12))),
})`,
    );
    expect(bodyJson(result)).toEqual({
      sha: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      uuid: 36,
      zlib: "round trip",
      paris: "14",
    });
  });
});

describe("limits", () => {
  it.each([
    ["python", `def handler(r):\n    while True:\n        pass`],
    ["node", `export default () => { for (;;) {} }`],
  ])("%s: an endless loop ends as timeout at the deadline", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code, { timeoutMs: 1500 });
    expect(result.status).toBe("timeout");
    expect(result.signal).toBe("SIGKILL");
    expect(result.durationMs).toBeGreaterThanOrEqual(1500);
    expect(result.durationMs).toBeLessThan(10_000);
  });

  it.each([
    ["python", `def handler(r):\n    blocks = []\n    while True:\n        blocks.append(bytearray(16 * 1024 * 1024))`],
    ["node", `export default () => { const blocks = []; for (;;) blocks.push(Buffer.alloc(16 * 1024 * 1024, 1)); }`],
    ["node", `export default () => { const a = []; for (;;) a.push({ n: Math.random(), s: "x".repeat(64) + Math.random() }); }`],
  ])("%s: allocating past the memory limit ends as oom", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code, { memoryMb: 96, timeoutMs: 20_000 });
    expect(result.status, result.errorMessage ?? "").toBe("oom");
    expect(result.errorMessage).toMatch(/memory limit of 96 MB/);
  });

  it.each([
    ["python", `import sys\ndef handler(r):\n    sys.stdout.write("o" * 200_000)\n    sys.stderr.write("e" * 200_000)\n    return "done"`],
    ["node", `export default () => { process.stdout.write("o".repeat(200000)); process.stderr.write("e".repeat(200000)); return "done"; }`],
  ])("%s: stdout and stderr are capped with a truncation flag", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code);
    expect(result.status).toBe("ok");
    expect(bodyText(result)).toBe("done");
    expect(result.stdout.data.length).toBe(64 * 1024);
    expect(result.stdout.truncated).toBe(true);
    expect(result.stderr.data.length).toBe(64 * 1024);
    expect(result.stderr.truncated).toBe(true);
  });

  it("a short output is not flagged as truncated", async () => {
    const result = await run("python", `def handler(r):\n    print("short")\n    return "ok"`);
    expect(result.stdout).toEqual({ data: Buffer.from("short\n"), truncated: false });
  });
});

describe("request bodies", () => {
  it("passes a binary body byte for byte", async () => {
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const code = `import hashlib\ndef handler(r):\n    return {"len": len(r.body), "sha": hashlib.sha256(r.body).hexdigest()}`;
    const result = await run("python", code, { request: request({ method: "PUT", body }) });
    const { createHash } = await import("node:crypto");
    expect(bodyJson(result)).toEqual({ len: 256, sha: createHash("sha256").update(body).digest("hex") });
  });
});

describe("environment variables cannot steer the interpreter's start", () => {
  const STEERING = {
    LD_PRELOAD: "/tmp/evil.so",
    LD_LIBRARY_PATH: "/tmp",
    NODE_OPTIONS: "--require /tmp/evil.js",
    PYTHONSTARTUP: "/tmp/evil.py",
    PYTHONPATH: "/tmp",
    GLIBC_TUNABLES: "glibc.malloc.check=3",
  };
  it.each([
    ["python", `import os\ndef handler(r):\n    return {k: os.environ[k] for k in ${JSON.stringify(Object.keys(STEERING))}}`],
    ["node", `export default () => Object.fromEntries(${JSON.stringify(Object.keys(STEERING))}.map((k) => [k, process.env[k]]))`],
  ])("%s: LD_PRELOAD, NODE_OPTIONS, PYTHON* are set only after the lock, as plain values", async (runtime, code) => {
    const result = await run(runtime as "python" | "node", code, { env: STEERING });
    expect(result.status, bodyText(result)).toBe("ok");
    expect(bodyJson(result)).toEqual(STEERING);
  });
});

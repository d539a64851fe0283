// Warm instances (isolation "function"): what persists between invocations of one function
// version, what never crosses to another function or version, and how each invocation's output
// and limits stay its own. Real sandbox, real interpreters, real lock-down.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvocationSpec } from "../../src/core/runner.js";
import type { InterpreterKind } from "../../src/core/runtimes.js";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { bodyJson, spec, startSandbox, stopSandbox } from "./harness.js";

let handle: Awaited<ReturnType<typeof startSandbox>>;
let sandbox: Sandbox;
beforeAll(async () => {
  handle = await startSandbox({ MAX_CONCURRENCY: "4", WARM_MAX_INSTANCES: "2" });
  sandbox = handle.sandbox;
});
afterAll(() => stopSandbox(handle));

let versions = 0;
/** A warm spec for function `name`, version `version` (a fresh version per call unless given). */
function warm(
  runtime: InterpreterKind,
  code: string,
  name: string,
  version = ++versions,
  overrides: Partial<InvocationSpec> = {},
): InvocationSpec {
  return spec(runtime, code, { isolation: "function", version: { name, version, maxConcurrency: null }, ...overrides });
}

// Each answers its pid, uid, a module-level counter, whether /tmp/mark existed, then writes it.
const STATEFUL: Record<InterpreterKind, string> = {
  python: `import os
count = 0
def handler(request):
    global count
    count += 1
    seen = os.path.exists("/tmp/mark")
    open("/tmp/mark", "w").write("x")
    return {"pid": os.getpid(), "uid": os.getuid(), "count": count, "seen": seen, "root": os.stat("/").st_ino}
`,
  node: `const fs = require("node:fs");
let count = 0;
module.exports = () => {
  count += 1;
  const seen = fs.existsSync("/tmp/mark");
  fs.writeFileSync("/tmp/mark", "x");
  return { pid: process.pid, uid: process.getuid(), count, seen, root: fs.statSync("/").ino };
};
`,
};
interface State {
  pid: number;
  uid: number;
  count: number;
  seen: boolean;
}

describe.each<InterpreterKind>(["python", "node"])("%s", (runtime) => {
  it("stops a deleted function's instances at once: the idle one now, the busy one when its invocation ends", async () => {
    const name = `deleted-${runtime}`;
    const slow =
      runtime === "python"
        ? "import time\ndef handler(r):\n    time.sleep(0.3)\n    return 1\n"
        : "module.exports = () => new Promise((r) => setTimeout(() => r(1), 300));";
    const fn = warm(runtime, slow, name);
    await Promise.all([sandbox.run(fn), sandbox.run(fn)]); // two instances, both idle now
    const running = sandbox.run(fn);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const mine = () => sandbox.health().warm.instances.filter((i) => i.function === name);
    expect(mine()).toHaveLength(2);
    sandbox.retire(name);
    expect(mine()).toEqual([expect.objectContaining({ busy: true })]);
    expect((await running).status).toBe("ok"); // the busy one finishes its invocation
    expect(mine()).toEqual([]);
  });

  it("keeps module state and /tmp between two invocations of the same version", async () => {
    const fn = warm(runtime, STATEFUL[runtime], `keep-${runtime}`);
    const first = bodyJson<State>(await sandbox.run(fn));
    const second = bodyJson<State>(await sandbox.run(fn));
    expect(first).toMatchObject({ count: 1, seen: false });
    expect(second).toMatchObject({ pid: first.pid, uid: first.uid, count: 2, seen: true });
    expect(sandbox.health().warm.instances.filter((i) => i.function === `keep-${runtime}`)).toEqual([
      expect.objectContaining({ busy: false, invocations: 2, rssBytes: expect.any(Number) }),
    ]);
  });

  it("never shares a process, uid, /tmp or signal reach with another function", async () => {
    const one = bodyJson<State>(await sandbox.run(warm(runtime, STATEFUL[runtime], `one-${runtime}`)));
    const kill =
      runtime === "python"
        ? `import os
def handler(request):
    try:
        os.kill(${one.pid}, 9)
        return "killed"
    except OSError as e:
        return "refused %d" % e.errno`
        : `module.exports = () => { try { process.kill(${one.pid}, "SIGKILL"); return "killed"; } catch (e) { return "refused " + e.code; } };`;
    const other = await sandbox.run(warm(runtime, kill, `two-${runtime}`));
    expect(other.response?.body.toString()).toMatch(/^refused/);
    const two = bodyJson<State>(await sandbox.run(warm(runtime, STATEFUL[runtime], `three-${runtime}`)));
    expect(two.pid).not.toBe(one.pid);
    expect(two.uid).not.toBe(one.uid);
    expect(two).toMatchObject({ count: 1, seen: false });
    // The first is untouched: same process, its state intact.
    expect(bodyJson<State>(await sandbox.run(warm(runtime, STATEFUL[runtime], `one-${runtime}`, versions - 2)))).toMatchObject({
      pid: one.pid,
      count: 2,
    });
  });

  it("never serves an old version: the next invocation of a new version runs the new code in a new process", async () => {
    const v1 = bodyJson<State>(await sandbox.run(warm(runtime, STATEFUL[runtime], `ver-${runtime}`, 1)));
    const code2 = runtime === "python" ? `def handler(request):\n    return "v2"\n` : `module.exports = () => "v2";`;
    const v2 = await sandbox.run(warm(runtime, code2, `ver-${runtime}`, 2));
    expect(v2.response?.body.toString()).toBe("v2");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const left = sandbox.health().warm.instances.filter((i) => i.function === `ver-${runtime}`);
    expect(left.map((i) => i.version)).toEqual([2]);
    expect(left[0]!.pid).not.toBe(v1.pid);
  });

  it("never lets a function deleted and created again (version 1 again) meet the old one's instance", async () => {
    const before = bodyJson<State>(await sandbox.run(warm(runtime, STATEFUL[runtime], `again-${runtime}`, 1)));
    const code2 = runtime === "python" ? `def handler(request):\n    return "new"\n` : `module.exports = () => "new";`;
    expect((await sandbox.run(warm(runtime, code2, `again-${runtime}`, 1))).response?.body.toString()).toBe("new");
    const again = bodyJson<State>(await sandbox.run(warm(runtime, STATEFUL[runtime], `again-${runtime}`, 1)));
    expect(again.pid).not.toBe(before.pid);
    expect(again).toMatchObject({ count: 1, seen: false });
  });

  it("never reuses an instance that timed out or ran out of memory", async () => {
    const code =
      runtime === "python"
        ? `import os, time
count = 0
hog = []
def handler(request):
    global count
    count += 1
    if request.query.get("do") == "hang": time.sleep(60)
    if request.query.get("do") == "hog":
        while True: hog.append(bytearray(8 << 20))
    return {"pid": os.getpid(), "count": count}`
        : `let count = 0; const hog = [];
module.exports = (request) => {
  count += 1;
  const what = new URL(request.url).searchParams.get("do");
  if (what === "hang") for (;;);
  if (what === "hog") for (;;) hog.push(Buffer.alloc(8 << 20, 1));
  return { pid: process.pid, count };
};`;
    const name = `limits-${runtime}`;
    const ask = (what: string, timeoutMs = 10_000) =>
      sandbox.run(
        warm(runtime, code, name, 1, {
          timeoutMs,
          memoryMb: 64,
          request: {
            method: "GET",
            path: "/",
            query: [["do", what]],
            headers: [],
            body: new Uint8Array(),
            url: `http://gateway.test/fn/x?do=${what}`,
          },
        }),
      );
    const before = bodyJson<{ pid: number; count: number }>(await ask("ok"));
    expect((await ask("hang", 500)).status).toBe("timeout");
    const afterTimeout = bodyJson<{ pid: number; count: number }>(await ask("ok"));
    expect(afterTimeout.pid).not.toBe(before.pid);
    expect(afterTimeout.count).toBe(1);
    expect((await ask("hog")).status).toBe("oom");
    const afterOom = bodyJson<{ pid: number; count: number }>(await ask("ok"));
    expect(afterOom.pid).not.toBe(afterTimeout.pid);
    expect(afterOom.count).toBe(1);
  });

  it("gives each invocation its own stdout and stderr, even when user code prints what looks like a boundary", async () => {
    const code =
      runtime === "python"
        ? `import sys
n = 0
def handler(request):
    global n
    n += 1
    print("out %d \\0fngw-end:%s\\0" % (n, "0" * 32))
    sys.stderr.write('err %d {"kind":"end","nonce":"%s"}\\n' % (n, "0" * 32))
    return "answer %d" % n`
        : `let n = 0;
module.exports = () => {
  n += 1;
  console.log("out " + n + " \\0fngw-end:" + "0".repeat(32) + "\\0");
  console.error("err " + n + ' {"kind":"end","nonce":"' + "0".repeat(32) + '"}');
  return "answer " + n;
};`;
    const fn = warm(runtime, code, `output-${runtime}`);
    for (const n of [1, 2, 3]) {
      const result = await sandbox.run(fn);
      expect(result.status).toBe("ok");
      expect(result.response?.body.toString()).toBe(`answer ${n}`);
      expect(result.stdout.data.toString()).toBe(`out ${n} \0fngw-end:${"0".repeat(32)}\0\n`);
      expect(result.stderr.data.toString()).toBe(`err ${n} {"kind":"end","nonce":"${"0".repeat(32)}"}\n`);
    }
  });

  it("runs a script (no handler) anew for each invocation, stdout being each one's body", async () => {
    const code =
      runtime === "python"
        ? `import os\nprint(os.path.exists("/tmp/s")); open("/tmp/s", "w")`
        : `const fs = require("node:fs"); console.log(fs.existsSync("/tmp/s")); fs.writeFileSync("/tmp/s", "");`;
    const fn = warm(runtime, code, `script-${runtime}`);
    expect((await sandbox.run(fn)).response?.body.toString()).toMatch(/^(False|false)\n$/);
    expect((await sandbox.run(fn)).response?.body.toString()).toMatch(/^(True|true)\n$/);
  });
});

it("serves concurrent invocations of one version one at a time per instance, up to its instance limit, each with its own answer and output", async () => {
  const code = `import os, time
def handler(request):
    print("out", request.query["n"])
    time.sleep(0.02)
    return {"n": request.query["n"], "pid": os.getpid()}
`;
  const fn = warm("python", code, "concurrent");
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, n) =>
      sandbox.run({
        ...fn,
        request: {
          method: "GET",
          path: "/",
          query: [["n", String(n)]],
          headers: [],
          body: new Uint8Array(),
          url: `http://gateway.test/fn/x?n=${n}`,
        },
      }),
    ),
  );
  results.forEach((result, n) => {
    expect(result.status, result.errorMessage ?? "").toBe("ok");
    expect(bodyJson<{ n: string }>(result).n).toBe(String(n));
    expect(result.stdout.data.toString()).toBe(`out ${n}\n`);
  });
  // WARM_MAX_INSTANCES is 2 in this file: two processes served all twelve.
  expect(new Set(results.map((result) => bodyJson<{ pid: number }>(result).pid)).size).toBe(2);
});

it("hands the invocations waiting for a version's only instance a new one when it is recycled", async () => {
  const code = `import time\ndef handler(request):\n    if request.query.get("hang"):\n        time.sleep(60)\n    return "ok"\n`;
  const base = warm("python", code, "recycled-waiters", undefined, { timeoutMs: 800 });
  const fn = { ...base, version: { ...base.version!, maxConcurrency: 1 } };
  const ask = (hang: boolean) =>
    sandbox.run({
      ...fn,
      request: {
        method: "GET",
        path: "/",
        query: hang ? [["hang", "1"]] : [],
        headers: [],
        body: new Uint8Array(),
        url: "http://gateway.test/fn/x",
      },
    });
  const hung = ask(true);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const [first, second] = await Promise.all([ask(false), ask(false)]);
  expect((await hung).status).toBe("timeout");
  expect([first.status, second.status]).toEqual(["ok", "ok"]);
});

it("stops an idle warm instance when an invocation of another function needs its slot, which then holds nothing of it", async () => {
  const code = `import os\ndef handler(request):\n    open("/tmp/secret", "w").write("warm")\n    return {"uid": os.getuid()}\n`;
  // Fill every slot with idle warm instances of different functions, each with a file in its /tmp.
  const fillers: number[] = [];
  for (let i = 0; i < 4; i++) fillers.push(bodyJson<{ uid: number }>(await sandbox.run(warm("python", code, `fill-${i}`))).uid);
  expect(sandbox.health().warm.count).toBe(4);
  const plain = bodyJson<{ uid: number; tmp: string[] }>(
    await sandbox.run(spec("python", `import os, json\nprint(json.dumps({"uid": os.getuid(), "tmp": os.listdir("/tmp")}))`)),
  );
  expect(fillers).toContain(plain.uid); // a warm instance's slot, freed for it
  expect(plain.tmp).toEqual([]);
  expect(sandbox.health().warm.count).toBe(3);
});

describe("a slot a warm instance used", () => {
  it("serves fresh Python invocations afterwards: the child the fork-server had waiting in it is not killed with the instance", async () => {
    // Python invocations first, so that every slot has a child prepared in its cgroup.
    const fresh = spec("python", 'def handler(request):\n    return "fresh"\n');
    await Promise.all(Array.from({ length: 4 }, () => sandbox.run(fresh)));
    // Idle warm instances of two functions then hold every slot...
    const held = (name: string) => warm("python", 'import time\ndef handler(request):\n    time.sleep(0.2)\n    return "warm"\n', name, 1);
    await Promise.all([held("holds-a"), held("holds-a"), held("holds-b"), held("holds-b")].map((s) => sandbox.run(s)));
    // ...and are stopped, one for each fresh invocation that waits for a slot.
    const results = await Promise.all(Array.from({ length: 4 }, () => sandbox.run(fresh)));
    expect(results.map((r) => [r.status, r.errorMessage])).toEqual(Array.from({ length: 4 }, () => ["ok", null]));
  });
});

// Exhausting resources: processes and threads, /tmp and memory. Each bomb must end in a clean
// refusal or status, and the slot must serve its next invocation.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import { describe, expect, it } from "vitest";
import type { Runtime } from "../../../src/core/runtimes.js";
import { bodyJson, bodyText } from "../harness.js";
import {
  attack,
  currentIsolation,
  js,
  MAX_THREADS,
  MiB,
  observe,
  observeInSlot,
  py,
  RUNTIMES,
  run,
  TMP_SIZE_MB,
  useAttackedSandbox,
} from "./attacks.js";

useAttackedSandbox();

describe("fork and thread bombs", () => {
  it("python: a fork bomb's first fork raises PermissionError", async () => {
    const seen = await observe(
      "python",
      py(`
        forks = 0
        try:
            while True:
                if os.fork() == 0:
                    os._exit(0)
                forks += 1
        except OSError as exc:
            return {"forks": forks, "error": type(exc).__name__, "errno": errno.errorcode[exc.errno]}
      `),
    );
    expect(seen).toEqual({ forks: 0, error: "PermissionError", errno: "EPERM" });
  });

  it("node: a child_process bomb's first spawn fails with EPERM", async () => {
    const seen = await observe(
      "node",
      js(`
        const cp = require("node:child_process");
        let spawned = 0;
        for (;;) {
          const r = cp.spawnSync(process.execPath, ["-e", "0"]);
          if (r.error) return { spawned, code: r.error.code };
          spawned++;
        }
      `),
    );
    expect(seen).toEqual({ spawned: 0, code: "EPERM" });
  });

  it("python: a thread bomb stops below MAX_THREADS, the gateway survives and the slot's next invocation works", async () => {
    const bomb = await observe(
      "python",
      py(`
        import threading
        release = threading.Event()
        threads = []
        error = None
        try:
            while len(threads) < 10 * ${MAX_THREADS}:
                t = threading.Thread(target=release.wait)
                t.start()
                threads.append(t)
        except RuntimeError as exc:
            error = str(exc)
        release.set()
        for t in threads:
            t.join()
        return {"threads": len(threads), "error": error, "uid": os.getuid()}
      `),
    );
    expect(bomb.error).toBe("can't start new thread");
    expect(bomb.threads + 1).toBeLessThanOrEqual(MAX_THREADS);
    expect(bomb.threads).toBeGreaterThan(8); // threads do work, up to the limit
    const next = await observeInSlot(bomb.uid, "python", py(`return {"uid": os.getuid()}`));
    sameSlotUnlessWarm(next.uid, bomb.uid);
  });

  it("node: a worker_threads bomb stops below MAX_THREADS, the gateway survives and the slot's next invocation works", async () => {
    const result = await run(
      "node",
      js(`
        const { Worker } = require("node:worker_threads");
        const workers = [];
        let error = null;
        while (workers.length < 10 * ${MAX_THREADS}) {
          let worker;
          try {
            worker = new Worker("setInterval(() => {}, 1000)", { eval: true });
          } catch (e) { error = e.code; break; }
          const failed = await new Promise((resolve) => { worker.once("online", () => resolve(null)); worker.once("error", resolve); });
          if (failed) { error = failed.code; break; }
          workers.push(worker);
        }
        const count = workers.length;
        await Promise.all(workers.map((w) => w.terminate()));
        return { workers: count, error, uid: process.getuid() };
      `),
      { memoryMb: 1024 }, // each worker is a V8 isolate: enough memory to reach the thread limit first
    );
    expect(result.status, bodyText(result)).toBe("ok");
    const bomb = bodyJson<{ workers: number; error: string; uid: number }>(result);
    expect(bomb.error).toBe("ERR_WORKER_INIT_FAILED");
    expect(bomb.workers).toBeLessThanOrEqual(MAX_THREADS);
    expect(bomb.workers).toBeGreaterThan(4);
    const next = await observeInSlot(bomb.uid, "node", js(`return { uid: process.getuid() };`));
    sameSlotUnlessWarm(next.uid, bomb.uid);
  });
});

describe("filling /tmp and memory", () => {
  it.each(RUNTIMES)("%s: filling /tmp stops at ENOSPC within TMP_SIZE_MB", async (runtime) => {
    const seen = await observe(
      runtime,
      attack(
        runtime,
        `
        chunk = b"x" * (1 << 20)
        written = 0
        with open("/tmp/fill", "wb", buffering=0) as f:
            try:
                while True:
                    written += f.write(chunk)
            except OSError as exc:
                return {"written": written, "errno": errno.errorcode[exc.errno]}
        `,
        `
        const chunk = Buffer.alloc(1 << 20, 120);
        const fd = fs.openSync("/tmp/fill", "w");
        let written = 0;
        try { for (;;) written += fs.writeSync(fd, chunk); }
        catch (e) { return { written, errno: e.code }; }
        `,
      ),
    );
    expect(seen.errno).toBe("ENOSPC");
    expect(seen.written).toBeLessThanOrEqual(TMP_SIZE_MB * MiB);
    expect(seen.written).toBeGreaterThan((TMP_SIZE_MB / 2) * MiB);
  });

  it.each([
    ["python", "bytearrays", `def handler(request):\n    hog = []\n    while True:\n        hog.append(bytearray(b"x" * (16 << 20)))`],
    ["node", "Buffers outside the V8 heap", `module.exports = () => { const hog = []; for (;;) hog.push(Buffer.alloc(16 << 20, 1)); };`],
    [
      "node",
      "objects on the V8 heap",
      `module.exports = () => { const hog = []; for (;;) hog.push(Array.from({ length: 1e5 }, (_, i) => ({ i, s: "x" + i }))); };`,
    ],
  ] as [Runtime, string, string][])("%s: a memory bomb of %s ends `oom`, and the next invocation works", async (runtime, _what, code) => {
    const result = await run(runtime, code, { memoryMb: 96 });
    expect(result.status, bodyText(result)).toBe("oom");
    expect(result.errorMessage).toBe("exceeded its memory limit of 96 MB");
    const next = await run(runtime, runtime === "python" ? `def handler(request):\n    return "fine"` : `module.exports = () => "fine";`);
    expect(bodyText(next)).toBe("fine");
  });
});

/** A fresh-process bomb frees its slot for the next invocation; a warm one keeps it (its instance lives on), so the next runs in another. */
function sameSlotUnlessWarm(next: number, bomb: number): void {
  if (currentIsolation() === "invocation") expect(next).toBe(bomb);
  else expect(next).not.toBe(bomb);
}

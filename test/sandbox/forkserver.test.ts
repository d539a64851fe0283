import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORK_REPLY_TIMEOUT_MS } from "../../src/sandbox/forkserver.js";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { bodyJson, bodyText, spec, startSandbox, stopSandbox, until } from "./harness.js";

// Python invocations forked from the fork-server (the default): what the gateway learns of each
// child, the deadline, a parent that dies or wedges, nothing carried from one fork to the next,
// and spawning as the fallback.

type Handle = Awaited<ReturnType<typeof startSandbox>>;

const PARENTS = `import os\ndef handler(r):\n    return {"pid": os.getpid(), "ppid": os.getppid()}`;

function forkServerPid(sandbox: Sandbox): number {
  const pid = sandbox.health().memory.forkServer?.pid;
  if (pid === undefined) throw new Error("no fork-server is running");
  return pid;
}

describe("the fork-server", () => {
  let handle: Handle;
  beforeAll(async () => {
    handle = await startSandbox();
  });
  afterAll(async () => {
    await stopSandbox(handle);
  });

  it("is the default, shows in health with its memory, and forks each invocation as its child", async () => {
    const health = handle.sandbox.health();
    expect(health.pythonStart).toBe("forkserver");
    expect(health.memory.forkServer?.rssBytes).toBeGreaterThan(1024 * 1024);
    // Children forked ahead (STANDBY_INTERPRETERS, 2 by default) and one per slot (MAX_CONCURRENCY 4 here).
    await until(() => (handle.sandbox.health().memory.forkServer?.children.length ?? 0) === 2 + 4);
    const memory = handle.sandbox.health().memory;
    const parts = [...memory.standby, memory.forkServer!, ...memory.forkServer!.children].map((p) => p.rssBytes);
    expect(parts.every((bytes) => bytes > 0)).toBe(true);
    expect(memory.totalBytes).toBe(parts.reduce((a, b) => a + b, 0));
    expect(health.memory.standby.every((s) => s.runtime === "node" && s.rssBytes > 0)).toBe(true);
    const first = bodyJson<{ pid: number; ppid: number }>(await handle.sandbox.run(spec("python", PARENTS)));
    const second = bodyJson<{ pid: number; ppid: number }>(await handle.sandbox.run(spec("python", PARENTS)));
    expect(first.ppid).toBe(forkServerPid(handle.sandbox));
    expect(second.ppid).toBe(first.ppid);
    expect(second.pid).not.toBe(first.pid);
    // Past the reply timeout, the same parent still serves: an exit reported before the channels closed arms nothing.
    await new Promise((resolve) => setTimeout(resolve, FORK_REPLY_TIMEOUT_MS + 500));
    const later = bodyJson<{ pid: number; ppid: number }>(await handle.sandbox.run(spec("python", PARENTS)));
    expect(later.ppid).toBe(first.ppid);
  });

  it("has the parent move each slot's waiting child into that slot's cgroup before it reports the child", async () => {
    await handle.sandbox.run(spec("python", PARENTS)); // one slot used, and prepared again since
    await until(() => (handle.sandbox.health().memory.forkServer?.children.length ?? 0) === 2 + 4);
    const slotsOf = (pid: number) =>
      fs
        .readFileSync(`/proc/${pid}/cgroup`, "utf8")
        .split("\n")
        .flatMap((line) => line.match(/\/fngw-\d+-\d+\/(slot-\d+)$/)?.[1] ?? []);
    const children = handle.sandbox.health().memory.forkServer!.children.map((child) => slotsOf(child.pid));
    const cgroups = handle.sandbox.health().cgroups;
    // The two forked ahead are in no slot yet; each of the four others is in its own slot, in every hierarchy.
    const inSlots = children.filter((slots) => slots.length > 0);
    expect(inSlots).toHaveLength(cgroups === "none" ? 0 : 4);
    for (const slots of inSlots) expect(new Set(slots).size).toBe(1);
    expect(new Set(inSlots.map((slots) => slots[0])).size).toBe(inSlots.length);
    if (cgroups === "v1") for (const slots of inSlots) expect(slots).toHaveLength(2); // memory and pids
  });

  it("reports each child's exit status and the signal that ended it", async () => {
    const exited = await handle.sandbox.run(spec("python", "import os\nos._exit(3)"));
    expect(exited).toMatchObject({ status: "error", exitCode: 3, signal: null, errorMessage: "exited with code 3" });
    const systemExit = await handle.sandbox.run(spec("python", "raise SystemExit(7)"));
    expect(systemExit).toMatchObject({ status: "error", exitCode: 7 });
    const aborted = await handle.sandbox.run(spec("python", "import os\ndef handler(r):\n    os.abort()"));
    expect(aborted).toMatchObject({ status: "error", exitCode: null, signal: "SIGABRT", errorMessage: "killed by SIGABRT" });
    const syslog = `{"x86_64": 103, "aarch64": 116}[__import__("os").uname().machine]`;
    const forbidden = await handle.sandbox.run(spec("python", `import ctypes\nctypes.CDLL(None).syscall(${syslog}, 3, None, 0)`));
    // Named by the kernel to the gateway's seccomp listener, which killed the child for it.
    expect(forbidden).toMatchObject({
      status: "forbidden",
      signal: "SIGKILL",
      blockedSyscall: "syslog",
      deniedSyscalls: [{ name: "syslog", count: 1 }],
    });
  });

  it("kills the child's process group at the deadline", async () => {
    const started = performance.now();
    const result = await handle.sandbox.run(
      spec("python", "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\nwhile True: pass", {
        timeoutMs: 400,
      }),
    );
    expect(result).toMatchObject({ status: "timeout", signal: "SIGKILL", errorMessage: "timed out after 400 ms" });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(bodyText(await handle.sandbox.run(spec("python", "def handler(r):\n    return 'after'")))).toBe("after");
  });

  it("starts each child from the parent's clean state: no module state, file or descriptor of an earlier fork", async () => {
    const dirty = await handle.sandbox.run(
      spec(
        "python",
        [
          "import json, os, sys, xml.dom",
          "json.carried = 'secret'",
          "sys.modules['carried_module'] = json",
          "open('/tmp/carried', 'w').write('secret')",
          "kept = [os.open('/tmp/carried', os.O_RDONLY) for _ in range(3)]",
          "os.environ['CARRIED'] = '1'",
          "def handler(r):\n    return 'dirtied'",
        ].join("\n"),
      ),
    );
    expect(bodyText(dirty)).toBe("dirtied");
    const clean = await handle.sandbox.run(
      spec(
        "python",
        [
          "import json, os, sys",
          "def handler(r):",
          "    open_fds = []",
          "    for fd in range(256):",
          "        try:",
          "            os.fstat(fd)",
          "            open_fds.append(fd)",
          "        except OSError:",
          "            pass",
          "    return {'attribute': hasattr(json, 'carried'), 'modules': [m for m in ('carried_module', 'xml.dom') if m in sys.modules],",
          "            'file': os.path.exists('/tmp/carried'), 'env': os.environ.get('CARRIED'), 'fds': open_fds}",
        ].join("\n"),
      ),
    );
    expect(bodyJson(clean)).toEqual({ attribute: false, modules: [], file: false, env: null, fds: [0, 1, 2, 3, 4] });
  });
});

describe("a fork-server parent that is lost", () => {
  // The reply timeout is not configurable: the wedged case waits the real FORK_REPLY_TIMEOUT_MS (2 s).
  let handle: Handle;
  beforeAll(async () => {
    handle = await startSandbox();
  });
  afterAll(async () => {
    await stopSandbox(handle);
  });

  it("killed mid-invocation: that invocation fails cleanly, a new parent serves the next", async () => {
    await handle.sandbox.run(spec("python", PARENTS));
    const killed = forkServerPid(handle.sandbox);
    const running = handle.sandbox.run(
      spec("python", "import time\ndef handler(r):\n    time.sleep(20)\n    return 'late'", { timeoutMs: 30_000 }),
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    process.kill(killed, "SIGKILL");
    const started = performance.now();
    const result = await running;
    expect(performance.now() - started).toBeLessThan(5000);
    expect(result.status).toBe("error");
    expect(result.errorMessage).toMatch(/fork-server was lost/);
    const next = bodyJson<{ ppid: number }>(await handle.sandbox.run(spec("python", PARENTS)));
    expect(next.ppid).not.toBe(killed);
    expect(next.ppid).toBe(forkServerPid(handle.sandbox));
  });

  it("wedged (stopped): the invocation waiting on it fails cleanly, the parent is killed and replaced", async () => {
    await handle.sandbox.run(spec("python", PARENTS));
    const wedged = forkServerPid(handle.sandbox);
    process.kill(wedged, "SIGSTOP");
    const started = performance.now();
    const result = await handle.sandbox.run(spec("python", PARENTS));
    expect(performance.now() - started).toBeLessThan(6000);
    expect(result.status).toBe("error");
    // A child forked ahead ran, but its exit went unreported; or the parent never forked.
    expect(result.errorMessage).toMatch(/fork-server (was lost while the function ran|did not fork)/);
    await until(() => handle.sandbox.health().memory.forkServer?.pid !== wedged);
    const next = bodyJson<{ ppid: number }>(await handle.sandbox.run(spec("python", PARENTS)));
    expect(next.ppid).not.toBe(wedged);
    expect(() => process.kill(wedged, 0)).toThrow(); // gone, not left stopped
  });
});

describe("PYTHON_FORKSERVER=off", () => {
  it("spawns each Python interpreter from the gateway, as before", async () => {
    const handle = await startSandbox({ PYTHON_FORKSERVER: "off" });
    try {
      const health = handle.sandbox.health();
      expect(health.pythonStart).toBe("spawn");
      expect(health.memory.forkServer).toBeNull();
      const parents = bodyJson<{ ppid: number }>(await handle.sandbox.run(spec("python", PARENTS)));
      expect(parents.ppid).toBe(process.pid);
    } finally {
      await stopSandbox(handle);
    }
  });
});

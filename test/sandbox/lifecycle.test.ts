import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { SaturatedError } from "../../src/core/runner.js";
import { bodyText, spec, startSandbox, stopSandbox, until } from "./harness.js";

const SLEEP = (seconds: number) => `import time\ndef handler(r):\n    time.sleep(${seconds})\n    return "slept"`;

function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

describe("admission: slots and the wait queue", () => {
  // How many may wait is the gateway's admission (MAX_CONCURRENCY + QUEUE_LIMIT, test/http); the pool only queues.
  it("queues past the free slots, first come first served", async () => {
    const handle = await startSandbox({ MAX_CONCURRENCY: "1", QUEUE_TIMEOUT_MS: "10000" });
    try {
      const first = handle.sandbox.run(spec("python", SLEEP(0.6)));
      const queued = handle.sandbox.run(spec("python", SLEEP(0)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(handle.sandbox.health()).toMatchObject({ slots: 1, busy: 1, queued: 1 });
      expect(bodyText(await first)).toBe("slept");
      expect(bodyText(await queued)).toBe("slept");
      // The slot stays busy until it is clean again, a moment after the result.
      await until(() => handle.sandbox.health().busy === 0);
      expect(handle.sandbox.health()).toMatchObject({ busy: 0, queued: 0 });
    } finally {
      await stopSandbox(handle);
    }
  });

  it("rejects a queued invocation whose wait outlasts QUEUE_TIMEOUT_MS", async () => {
    const handle = await startSandbox({ MAX_CONCURRENCY: "1", QUEUE_LIMIT: "4", QUEUE_TIMEOUT_MS: "200" });
    try {
      const first = handle.sandbox.run(spec("python", SLEEP(1)));
      const late = handle.sandbox.run(spec("python", SLEEP(0)));
      await expect(late).rejects.toBeInstanceOf(SaturatedError);
      await expect(late).rejects.toMatchObject({ retryAfterSeconds: expect.any(Number) });
      expect((await first).status).toBe("ok");
    } finally {
      await stopSandbox(handle);
    }
  });
});

describe("closing the sandbox", () => {
  it("interrupts running invocations, refuses queued and new ones, and removes its mounts and cgroups", async () => {
    const handle = await startSandbox({ MAX_CONCURRENCY: "1", QUEUE_LIMIT: "2" });
    const { sandbox } = handle;
    const jailDir = `${handle.dataDir}/jail`;
    expect(mountsUnder(jailDir).length).toBeGreaterThan(0);
    const cgroupMode = sandbox.health().cgroups;

    const running = sandbox.run(spec("python", SLEEP(30), { timeoutMs: 60_000 }));
    const queued = sandbox.run(spec("node", `export default () => "never"`)).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = performance.now();
    await stopSandbox(handle);

    const result = await running;
    expect(result.status).toBe("interrupted");
    expect(result.errorMessage).toMatch(/gateway stopped/);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await queued).toBeInstanceOf(SaturatedError);
    await expect(sandbox.run(spec("python", SLEEP(0)))).rejects.toBeInstanceOf(SaturatedError);
    expect(sandbox.health().ready).toBe(false);
    expect(mountsUnder(jailDir)).toEqual([]);
    if (cgroupMode !== "none") {
      const leftovers = fs
        .readFileSync("/proc/self/cgroup", "utf8")
        .split("\n")
        .filter((line) => /:(memory|pids|):/.test(line))
        .map((line) => line.split(":")[2] ?? "")
        .flatMap((own) => ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"].map((root) => `${root}${own}`))
        .filter((dir) => fs.existsSync(dir))
        .flatMap((dir) => fs.readdirSync(dir).filter((name) => name.startsWith(`fngw-${process.pid}-`)));
      expect(leftovers).toEqual([]);
    }
  });
});

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountsUnder, removeDataDir, type Server, startRefused, startServer, tempDataDir, uidEnv, waitFor } from "./harness.js";

// What routine operator actions do to a running gateway: a second gateway on the same DATA_DIR or
// on its uids, a port in use, a jail unmounted from outside, a supervisor's repeated signals, a full disk.

const TOKEN = "operations-test-token-0123456789";

describe("one gateway per DATA_DIR", () => {
  let first: Server;
  beforeAll(async () => {
    first = await startServer({ env: { GATEWAY_TOKEN: TOKEN }, uidIndex: 0 });
  });
  afterAll(async () => {
    await first.stop();
    removeDataDir(first.dataDir);
  });

  it("refuses a second gateway on the same DATA_DIR, naming the holder, and leaves the first one whole", async () => {
    const mountsBefore = mountsUnder(path.join(first.dataDir, "jail")).length;
    const second = await startRefused({ DATA_DIR: first.dataDir, PORT: "0", GATEWAY_TOKEN: TOKEN, ...uidEnv(1) });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`DATA_DIR ${first.dataDir} is in use by another gateway`);
    expect(second.stderr).toContain(`"pid":${first.child.pid}`);
    expect(mountsUnder(path.join(first.dataDir, "jail")).length).toBe(mountsBefore);
    const health = await fetch(`${first.url}/healthz`);
    expect(health.status).toBe(200);
  });

  it("refuses a second gateway whose uids overlap the first one's, naming it, before mounting anything", async () => {
    const dataDir = tempDataDir();
    try {
      // Its own data dir and port, but its sandbox slots start inside the first gateway's.
      const overlapping = { SANDBOX_UID_BASE: String(Number(uidEnv(0).SANDBOX_UID_BASE) + 1), PACKAGES_UID: uidEnv(1).PACKAGES_UID };
      const refused = await startRefused({ DATA_DIR: dataDir, PORT: "0", GATEWAY_TOKEN: TOKEN, ...overlapping });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/uid \d+ is used by another gateway on this machine/);
      expect(refused.stderr).toContain(`pid ${first.child.pid}, DATA_DIR ${first.dataDir}`);
      expect(refused.stderr).toContain("SANDBOX_UID_BASE");
      expect(mountsUnder(path.join(dataDir, "jail"))).toEqual([]);
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    } finally {
      removeDataDir(dataDir);
    }
  });

  it("refuses a start on a port in use before mounting anything", async () => {
    const dataDir = tempDataDir();
    try {
      const refused = await startRefused({ DATA_DIR: dataDir, PORT: String(first.port), ...uidEnv(2) });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
      expect(refused.stdout).not.toMatch(/API token/);
      expect(mountsUnder(path.join(dataDir, "jail"))).toEqual([]);
    } finally {
      removeDataDir(dataDir);
    }
  });
});

describe("/healthz looks for itself", () => {
  it("answers 503 once the jail's mounts are gone, though the process still runs", async () => {
    const server = await startServer({ env: { GATEWAY_TOKEN: TOKEN }, uidIndex: 3 });
    try {
      const healthy = await (await fetch(`${server.url}/healthz`)).json();
      expect(healthy).toMatchObject({ ok: true, sandbox: { ready: true }, database: { ready: true } });
      expect(healthy.database.used_bytes).toBeGreaterThan(0);
      execFileSync("umount", ["-l", path.join(server.dataDir, "jail")]);
      const res = await fetch(`${server.url}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ ok: false, sandbox: { ready: false } });
    } finally {
      await server.stop();
      removeDataDir(server.dataDir);
    }
  });
});

describe("stopping under a supervisor", () => {
  it("survives a SIGTERM sent twice to its whole process group and unmounts everything", async () => {
    const server = await startServer({ env: { GATEWAY_TOKEN: TOKEN }, uidIndex: 4, detached: true });
    const jail = path.join(server.dataDir, "jail");
    try {
      expect(mountsUnder(jail).length).toBeGreaterThan(0);
      const group = -(server.child.pid ?? 0);
      // Two deliveries, as a supervisor's signal to the group and a wrapper's relay make (the second
      // may find the process already gone when the stop is quick).
      process.kill(group, "SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 20));
      try {
        process.kill(group, "SIGTERM");
      } catch {
        // already exited
      }
      expect(await server.exited).toBe(0);
      expect(server.stdout()).toContain("SIGTERM: no new connections");
      expect(mountsUnder(jail)).toEqual([]);
    } finally {
      await server.kill();
      removeDataDir(server.dataDir);
    }
  });

  it("unmounts on a third signal too, exiting at once", async () => {
    const server = await startServer({ env: { GATEWAY_TOKEN: TOKEN }, uidIndex: 5 });
    const jail = path.join(server.dataDir, "jail");
    try {
      const fn = await fetch(`${server.url}/api/functions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({
          name: "slow",
          runtime: "python",
          code: "import time\ndef handler(r):\n    time.sleep(20)\n",
          timeout_ms: 30000,
        }),
      });
      expect(fn.status).toBe(201);
      const pending = fetch(`${server.url}/fn/slow`, { headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => null);
      await waitFor(() => server.stdout().length > 0 && mountsUnder(jail).length > 0, "the invocation to start");
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (let i = 0; i < 3; i++) {
        server.child.kill("SIGTERM");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(await server.exited).toBe(1);
      expect(server.stderr()).toContain("exiting now");
      expect(mountsUnder(jail)).toEqual([]);
      await pending;
    } finally {
      await server.kill();
      removeDataDir(server.dataDir);
    }
  });
});

describe("a full data disk", () => {
  it("still answers invocations, and /healthz says the database cannot write", async () => {
    const dataDir = tempDataDir();
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m", "fngw-test-disk", dataDir]);
    let server: Server | null = null;
    try {
      server = await startServer({ dataDir, env: { GATEWAY_TOKEN: TOKEN }, uidIndex: 6 });
      const created = await fetch(`${server.url}/api/functions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({
          name: "hello",
          runtime: "python",
          code: "def handler(r):\n    print('x' * 60000)\n    return {'ok': True}\n",
        }),
      });
      expect(created.status).toBe(201);
      // Fill the disk to the last byte.
      const filler = fs.openSync(path.join(dataDir, "filler"), "w");
      const block = Buffer.alloc(1 << 20);
      try {
        for (;;) fs.writeSync(filler, block);
      } catch {
        for (;;) {
          try {
            fs.writeSync(filler, Buffer.alloc(512));
          } catch {
            break;
          }
        }
      } finally {
        fs.closeSync(filler);
      }
      // Enough output to need new database pages.
      for (let i = 0; i < 120; i++) {
        const res = await fetch(`${server.url}/fn/hello`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ ok: true });
      }
      const health = await fetch(`${server.url}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ ok: false, database: { ready: false, error: expect.stringMatching(/full|disk/i) } });
      expect(server.stderr()).toMatch(/could not be logged|could not record/);
    } finally {
      fs.rmSync(path.join(dataDir, "filler"), { force: true });
      if (server) await server.stop();
      execFileSync("umount", ["-l", dataDir]);
      removeDataDir(dataDir);
    }
  });
});

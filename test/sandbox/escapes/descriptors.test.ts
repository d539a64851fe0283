// Escape attempts through file descriptors: what a function inherits from the gateway, and the
// gateway's side of a request channel whose reader is gone.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import fs from "node:fs";
import koffi from "koffi";
import { describe, expect, it } from "vitest";
import type { InvocationResult } from "../../../src/core/runner.js";
import type { Runtime } from "../../../src/core/runtimes.js";
import { bodyJson, bodyText, request, spec, startSandbox, stopSandbox } from "../harness.js";
import { attack, DB_MARKER, host, MiB, observe, RUNTIMES, run, UID_BASE, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox();

describe("inherited file descriptors", () => {
  const listFds = (runtime: Runtime) =>
    attack(
      runtime,
      `
      out = {}
      for fd in range(1024):
          try:
              st = os.fstat(fd)
          except OSError:
              continue
          entry = {"kind": kind(st.st_mode), "rdev": st.st_rdev, "dev": st.st_dev, "ino": st.st_ino}
          if entry["kind"] == "file":
              entry["content"] = attempt(lambda: os.pread(fd, 200, 0).decode("latin1"))
          out[str(fd)] = entry
      return out
      `,
      `
      const out = {};
      for (let fd = 0; fd < 1024; fd++) {
        let st;
        try { st = fs.fstatSync(fd); } catch { continue; }
        const entry = { kind: kind(st), rdev: st.rdev, dev: st.dev, ino: st.ino };
        if (entry.kind === "file") entry.content = attempt(() => { const b = Buffer.alloc(200); return b.subarray(0, fs.readSync(fd, b, 0, 200, 0)).toString("latin1"); });
        out[fd] = entry;
      }
      return out;
      `,
    );
  type Fd = { kind: string; rdev: number; dev: number; ino: number; content?: unknown };

  it.each(RUNTIMES)("%s: only the channels 0-4 and the interpreter's own anonymous descriptors are open", async (runtime) => {
    const seen = await observe<Record<string, Fd>>(runtime, listFds(runtime));
    const devices = ["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"].map((d) => fs.statSync(d).rdev);
    for (const fd of ["0", "1", "2", "3", "4"]) expect(seen[fd]?.kind, `fd ${fd}`).toBe("socket");
    const others = Object.entries(seen).filter(([fd]) => Number(fd) > 4);
    const unexpected = others.filter(([, e]) => !(["fifo", "anon"].includes(e.kind) || (e.kind === "chr" && devices.includes(e.rdev))));
    expect(Object.fromEntries(unexpected), "descriptors other than pipes, anonymous inodes and /dev/null|zero|urandom").toEqual({});
  });

  // A gateway started with an fd it did not open itself (a supervisor's, a shell
  // redirection, socket activation) would pass it on unless something closes it: here the
  // test process opens the database without O_CLOEXEC, as such an fd would be.
  function openWithoutCloexec(): { fd: number; close(): void } {
    const libc = koffi.load("libc.so.6");
    const open = libc.func("int open(const char *path, int flags)");
    const close = libc.func("int close(int fd)");
    const O_RDWR = 2;
    const fd = open(host.dbPath, O_RDWR) as number;
    expect(fd).toBeGreaterThan(2);
    return { fd, close: () => close(fd) };
  }

  it.each(RUNTIMES)("%s: a descriptor inherited before start-up is closed on exec and never reaches the function", async (runtime) => {
    const inherited = openWithoutCloexec();
    // A second sandbox, started while the descriptor is open, as a gateway would be.
    const other = await startSandbox({ SANDBOX_UID_BASE: String(UID_BASE + 500), MAX_CONCURRENCY: "1" });
    try {
      const db = fs.statSync(host.dbPath);
      const result = await other.sandbox.run(spec(runtime, listFds(runtime)));
      expect(result.status, bodyText(result)).toBe("ok");
      const seen = bodyJson<Record<string, Fd>>(result);
      const leaked = Object.entries(seen).filter(([, e]) => e.ino === db.ino && e.dev === db.dev);
      expect(Object.fromEntries(leaked), `the database's descriptor (fd ${inherited.fd} in the gateway)`).toEqual({});
      expect(JSON.stringify(seen)).not.toContain(DB_MARKER);
    } finally {
      await stopSandbox(other);
      inherited.close();
    }
  });

  it.each(RUNTIMES)("%s: a descriptor leaked after start-up makes the lock-down fail closed", async (runtime) => {
    // Its own sandbox, starting every interpreter on demand, so that the interpreter is
    // spawned while the descriptor is open (and no standby of the shared sandbox inherits it).
    const other = await startSandbox({ SANDBOX_UID_BASE: String(UID_BASE + 500), MAX_CONCURRENCY: "1", STANDBY_INTERPRETERS: "0" });
    const leaked = openWithoutCloexec();
    try {
      const result = await other.sandbox.run(spec(runtime, listFds(runtime)));
      expect(result.status).toBe("error");
      expect(result.errorMessage).toMatch(/^sandbox lock-down failed: open files: fd \d+ is an open file or socket from outside the jail$/);
      expect(result.response).toBeNull();
      const everything = result.stdout.data.toString() + result.stderr.data.toString();
      expect(everything).not.toContain(DB_MARKER);
    } finally {
      leaked.close();
      await stopSandbox(other);
    }
  });
});

describe("a child that dies before reading its request", () => {
  it("never crashes the gateway (EPIPE on its request channel), and the next run works", async () => {
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on("uncaughtException", record);
    try {
      const body = new Uint8Array(8 * MiB);
      const results: InvocationResult[] = await Promise.all(
        [...RUNTIMES, ...RUNTIMES].map((runtime) =>
          run(runtime, runtime === "python" ? `def handler(request):\n    return "read"` : `module.exports = () => "read";`, {
            timeoutMs: 1,
            request: request({ method: "POST", body }),
          }),
        ),
      );
      for (const result of results) {
        expect(result.status).toBe("timeout");
        expect(result.response).toBeNull();
      }
      await new Promise((r) => setTimeout(r, 100)); // let any late stream error surface
      expect(uncaught).toEqual([]);
      for (const runtime of RUNTIMES) {
        const next = await run(
          runtime,
          runtime === "python"
            ? `def handler(request):\n    return len(request.body)`
            : `module.exports = async (r) => (await r.arrayBuffer()).byteLength;`,
          {
            request: request({ method: "POST", body }),
          },
        );
        expect(next.status, bodyText(next)).toBe("ok");
        expect(bodyText(next)).toBe(String(8 * MiB));
      }
    } finally {
      process.off("uncaughtException", record);
    }
  });
});

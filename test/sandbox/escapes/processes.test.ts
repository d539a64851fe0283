// Escape attempts through other processes: creating them, tracing them, signalling them, and
// outliving the gateway.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { bodyText } from "../harness.js";
import { alive, attack, findSandboxedProcess, js, lit, observe, outcome, py, RUNTIMES, run, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox();

describe("creating processes", () => {
  it("python: fork, exec, subprocess, os.system and posix_spawn are refused with EPERM", async () => {
    const seen = await observe(
      "python",
      py(`
        import subprocess
        return {
            "fork": attempt(os.fork),
            "execv": attempt(os.execv, "/bin/sh", ["sh", "-c", "true"]),
            "subprocess": attempt(subprocess.run, ["/bin/true"]),
            "posix_spawn": attempt(os.posix_spawn, "/bin/true", ["true"], {}),
            "system": attempt(os.system, "true"),
        }
      `),
    );
    for (const what of ["fork", "execv", "subprocess", "posix_spawn"]) {
      expect(seen[what], what).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
    }
    // glibc's system() cannot start the shell: it reports the shell's "command not run" status 127.
    expect(seen.system).toEqual({ ok: true, value: 127 << 8 });
  });

  it("node: child_process spawnSync, execSync, spawn and fork are refused with EPERM", async () => {
    const seen = await observe(
      "node",
      js(`
        const cp = require("node:child_process");
        const sync = cp.spawnSync("/bin/true");
        return {
          spawnSync: { error: sync.error ? sync.error.code : null, status: sync.status },
          execSync: attempt(() => cp.execSync("true")),
          execFileSync: attempt(() => cp.execFileSync("/bin/true")),
          spawn: await new Promise((resolve) => {
            try {
              const child = cp.spawn("/bin/true");
              child.on("error", (e) => resolve({ ok: false, code: e.code }));
              child.on("exit", (code) => resolve({ ok: true, value: code }));
            } catch (e) { resolve(describeError(e)); }
          }),
          fork: attempt(() => cp.fork("/tmp/child.js")),
        };
      `),
    );
    expect(seen.spawnSync).toEqual({ error: "EPERM", status: null });
    for (const what of ["execSync", "execFileSync", "spawn", "fork"]) {
      expect(outcome(seen[what]), what).toEqual({ ok: false, code: "EPERM" });
    }
  });

  it.each(RUNTIMES)("%s: a refused exec that escapes the handler makes the invocation an error", async (runtime) => {
    const result = await run(
      runtime,
      runtime === "python"
        ? `import subprocess\ndef handler(request):\n    subprocess.run(["/bin/true"])\n    return "ran"`
        : `const cp = require("node:child_process");\nmodule.exports = () => { cp.execFileSync("/bin/true"); return "ran"; };`,
    );
    expect(result.status).toBe("error");
    expect(result.errorMessage).toMatch(runtime === "python" ? /PermissionError: \[Errno 1\] Operation not permitted/ : /EPERM/);
    expect(result.response).toBeNull();
  });
});

// Node has no API for ptrace, mount, chroot or unshare: without native code it cannot even
// try them. Python reaches them through ctypes (stdlib). Node's only route to native code,
// re-opening the koffi addon the prescript loaded, is covered in library.test.ts.
describe("ptrace", () => {
  it("python: PTRACE_TRACEME and PTRACE_ATTACH of pid 1 fail with EPERM", async () => {
    const seen = await observe(
      "python",
      py(`
        _libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
        _libc.ptrace.restype = ctypes.c_long
        return {"traceme": libc_call("ptrace", 0, 0, None, None), "attach": libc_call("ptrace", 16, 1, None, None),
                "seize": libc_call("ptrace", 0x4206, 1, None, None)}
      `),
    );
    expect(seen).toEqual({ traceme: { ret: -1, errno: "EPERM" }, attach: { ret: -1, errno: "EPERM" }, seize: { ret: -1, errno: "EPERM" } });
  });
});

describe("outliving the gateway", () => {
  it("python: the parent-death signal cannot be cleared or changed (PR_SET_PDEATHSIG fails with EPERM)", async () => {
    const seen = await observe(
      "python",
      py(`
        return {"clear": libc_call("prctl", 1, 0, 0, 0, 0), "change": libc_call("prctl", 1, 15, 0, 0, 0)}
      `),
    );
    expect(seen).toEqual({ clear: { ret: -1, errno: "EPERM" }, change: { ret: -1, errno: "EPERM" } });
  });
});

describe("signalling other processes", () => {
  it.each(RUNTIMES)("%s: cannot kill pid 1, nor every process it could reach (kill -1)", async (runtime) => {
    const seen = await observe(
      runtime,
      attack(
        runtime,
        `import signal\nreturn {"pid1": attempt(os.kill, 1, signal.SIGKILL), "all": attempt(os.kill, -1, signal.SIGKILL), "probe": attempt(os.kill, 1, 0)}`,
        `return { pid1: attempt(() => process.kill(1, "SIGKILL")), all: attempt(() => process.kill(-1, "SIGKILL")), probe: attempt(() => process.kill(1, 0)) };`,
      ),
    );
    for (const what of ["pid1", "all", "probe"]) expect(outcome(seen[what]), what).toEqual({ ok: false, code: "EPERM" });
  });

  it("cannot kill a concurrent sandbox, which still ends ok", async () => {
    const name = `victim${crypto.randomBytes(3).toString("hex")}`;
    // The victim names its main thread (PR_SET_NAME) so that the test can find its pid.
    const victim = run(
      "python",
      `import ctypes, time\nctypes.CDLL(None).prctl(15, ${lit(name)}.encode(), 0, 0, 0)\ndef handler(request):\n    time.sleep(3)\n    return "survived"`,
    );
    const { pid, uid: victimUid } = await findSandboxedProcess(name);
    const [fromPython, fromNode] = await Promise.all([
      observe(
        "python",
        py(`
          import signal
          _libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
          return {"kill": attempt(os.kill, ${pid}, signal.SIGKILL), "stop": attempt(os.kill, ${pid}, signal.SIGSTOP),
                  "probe": attempt(os.kill, ${pid}, 0), "pidfd": attempt(os.pidfd_open, ${pid}),
                  "ptrace": libc_call("ptrace", 16, ${pid}, None, None), "uid": os.getuid()}
        `),
      ),
      observe(
        "node",
        js(`return { kill: attempt(() => process.kill(${pid}, "SIGKILL")), term: attempt(() => process.kill(${pid}, "SIGTERM")),
                     probe: attempt(() => process.kill(${pid}, 0)), uid: process.getuid() };`),
      ),
    ]);
    expect(alive(pid)).toBe(true);
    for (const what of ["kill", "stop", "probe", "pidfd"])
      expect(outcome(fromPython[what]), `python ${what}`).toEqual({ ok: false, code: "EPERM" });
    expect(fromPython.ptrace).toEqual({ ret: -1, errno: "EPERM" });
    for (const what of ["kill", "term", "probe"]) expect(outcome(fromNode[what]), `node ${what}`).toEqual({ ok: false, code: "EPERM" });
    // Each attacker ran in another slot, under another uid.
    expect(fromPython.uid).not.toBe(victimUid);
    expect(fromNode.uid).not.toBe(victimUid);
    const result = await victim;
    expect(result.status, bodyText(result)).toBe("ok");
    expect(bodyText(result)).toBe("survived");
  });
});

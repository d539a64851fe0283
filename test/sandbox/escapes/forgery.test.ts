// Attacks on the log: a function can neither make a row name a call it did not make, nor hide one
// it made. The names come from the kernel, which hands each refused call to the gateway's seccomp
// listener; the listener reached the gateway before any user code ran, and nothing in the process
// holds it. The result channel (fd 4) is writable by user code, since the prescript writes the
// response there: a `forbidden` frame on it is never believed, a lock-down failure only as the
// first frame with exit status 125, and the message of an `error` frame is labelled as the
// function's (prescripts/PROTOCOL.md, "What is believed").
// How the attacks are written and run: ./attacks.ts.
import { describe, expect, it } from "vitest";
import { NOTIFICATION_BURST, REFILL_PER_SECOND } from "../../../src/sandbox/seccomp-listener.js";
import { bodyJson } from "../harness.js";
import { attack, koffiAddonPath, lit, RUNTIMES, run, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox();

/** A report of a call the function never made (execve), then half a frame that would swallow the next one. */
const FAKE_REPORT = '{"kind":"forbidden","syscall":59,"name":"execve"}\n{"kind":"forb';
const FAKE_FAILURE = '{"kind":"lockdown_failed","message":"chroot: operation not permitted"}\n';

/** syslog(SYSLOG_ACTION_READ_ALL): a call the policy neither allows nor refuses with EPERM, so it kills. */
const PY_SYSLOG = `ctypes.CDLL(None).syscall({"x86_64": 103, "aarch64": 116}[os.uname().machine], 3, None, 0)`;
// Node has no API that reaches a killing call: the koffi addon, re-opened (library.test.ts), does.
const JS_SYSLOG = `
  const addon = { exports: {} };
  process.dlopen(addon, ${lit(koffiAddonPath())});
  const syscall = addon.exports.load("libc.so.6").func("long syscall(long nr, long a, void *b, long c)");
  syscall({ x64: 103, arm64: 116 }[process.arch], 3, null, 0);`;
const KILLED = "the function called syslog, which the sandbox does not allow (killed)";

describe("naming a call it did not make", () => {
  it.each(RUNTIMES)(
    "%s: a fake forbidden frame, a partial frame, then a real killing call: syslog is named, execve is not",
    async (runtime) => {
      const result = await run(
        runtime,
        attack(
          runtime,
          `os.write(4, ${lit(FAKE_REPORT)}.encode())\n${PY_SYSLOG}\nreturn "survived"`,
          `fs.writeSync(4, ${lit(FAKE_REPORT)});\n${JS_SYSLOG}\nreturn "survived";`,
        ),
      );
      expect(result.errorMessage, "process.dlopen of koffi no longer works: trap a call another way").not.toMatch(
        /dlopen|ERR_DLOPEN_FAILED/,
      );
      expect(result).toMatchObject({ status: "forbidden", blockedSyscall: "syslog", errorMessage: KILLED, response: null });
      expect(result.deniedSyscalls).toEqual([{ name: "syslog", count: 1 }]);
    },
  );

  it.each(RUNTIMES)("%s: a fake forbidden frame, then SIGSYS sent to itself: forbidden, no call named", async (runtime) => {
    // kill of its own pid is allowed; no call was refused.
    const result = await run(
      runtime,
      attack(
        runtime,
        `import signal\nos.write(4, ${lit(FAKE_REPORT)}.encode())\nos.kill(os.getpid(), signal.SIGSYS)\nreturn "survived"`,
        `fs.writeSync(4, ${lit(FAKE_REPORT)});\nprocess.kill(process.pid, "SIGSYS");\nawait new Promise((r) => setTimeout(r, 1000));\nreturn "survived";`,
      ),
    );
    expect(result).toMatchObject({ status: "forbidden", signal: "SIGSYS", blockedSyscall: null, deniedSyscalls: [], response: null });
    expect(result.errorMessage).toMatch(/^killed by SIGSYS/);
  });

  it.each(RUNTIMES)("%s: no descriptor to send anything on: the listener's channel is closed before user code runs", async (runtime) => {
    const result = await run(
      runtime,
      attack(runtime, `return {"channel": attempt(os.fstat, 5)}`, `return { channel: attempt(() => fs.fstatSync(5)) };`),
    );
    expect(bodyJson<{ channel: { ok: boolean } }>(result).channel.ok).toBe(false);
    expect(result.deniedSyscalls).toEqual([]);
  });
});

describe("hiding a call it made", () => {
  it.each(RUNTIMES)("%s: a refused exec named with its count though the function catches every error and answers ok", async (runtime) => {
    const result = await run(
      runtime,
      attack(
        runtime,
        `for _ in range(3):\n    attempt(os.execv, "/bin/true", ["true"])\nreturn "fine"`,
        `const cp = require("node:child_process");\nfor (let i = 0; i < 3; i++) attempt(() => cp.execFileSync("/bin/true"));\nreturn "fine";`,
      ),
    );
    expect(result.status).toBe("ok");
    // Python's os.execv is execve itself; Node's child_process forks first (clone), which is refused.
    expect(result.deniedSyscalls).toEqual([{ name: runtime === "python" ? "execve" : "clone", count: 3 }]);
  });

  it("python: a killing call from a thread that blocks every signal, with stdout, stderr and fd 4 closed first", async () => {
    // Under a trapping filter a thread with SIGSYS blocked was killed by the kernel without a report;
    // the listener does not depend on signals, nor on any channel of the process.
    const result = await run(
      "python",
      attack(
        "python",
        `import signal, threading
def blocked():
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))
    for fd in (1, 2, 4):
        os.close(fd)
    ${PY_SYSLOG}
thread = threading.Thread(target=blocked)
thread.start()
thread.join()
return "survived"`,
        "",
      ),
    );
    expect(result).toMatchObject({ status: "forbidden", blockedSyscall: "syslog", errorMessage: KILLED });
  });

  it("python: a killing call while another thread exits the process 50 ms later: the call wins", async () => {
    const result = await run(
      "python",
      attack(
        "python",
        `import threading, time
threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0)), daemon=True).start()
${PY_SYSLOG}
return "survived"`,
        "",
      ),
    );
    expect(result).toMatchObject({ status: "forbidden", blockedSyscall: "syslog" });
  });

  it.each(RUNTIMES)("%s: a storm of refused calls is counted exactly and answered at a bounded rate", async (runtime) => {
    // The function calls setsid (refused with EPERM) for one second as fast as it is answered, and
    // counts its calls. The gateway answers NOTIFICATION_BURST at once, then REFILL_PER_SECOND, so
    // the storm costs it a few hundred answers, and it still counts every call.
    const result = await run(
      runtime,
      attack(
        runtime,
        `import time\nstart = time.monotonic()\ncalls = 0\nwhile time.monotonic() - start < 1:\n    attempt(os.setsid)\n    calls += 1\nreturn {"calls": calls, "seconds": time.monotonic() - start}`,
        `const ffi = { exports: {} };\nprocess.dlopen(ffi, ${lit(koffiAddonPath())});\nconst setsid = ffi.exports.load("libc.so.6").func("int setsid()");\nconst start = performance.now();\nlet calls = 0;\nwhile (performance.now() - start < 1000) { setsid(); calls++; }\nreturn { calls, seconds: (performance.now() - start) / 1000 };`,
      ),
    );
    const seen = bodyJson<{ calls: number; seconds: number }>(result);
    expect(result.deniedSyscalls).toEqual([{ name: "setsid", count: seen.calls }]);
    expect(seen.calls).toBeGreaterThan(NOTIFICATION_BURST);
    expect(seen.calls).toBeLessThanOrEqual(NOTIFICATION_BURST + Math.ceil(REFILL_PER_SECOND * seen.seconds) + 1);
  });
});

describe("a forged lock-down failure", () => {
  it.each(RUNTIMES)("%s: a fake lockdown_failed frame, then exit status 125: an ordinary non-zero exit", async (runtime) => {
    const result = await run(
      runtime,
      attack(
        runtime,
        `os.write(4, ${lit(FAKE_FAILURE)}.encode())\nos._exit(125)`,
        `fs.writeSync(4, ${lit(FAKE_FAILURE)});\nprocess.exit(125);`,
      ),
    );
    expect(result).toMatchObject({ status: "error", exitCode: 125, errorMessage: "exited with code 125", response: null });
  });

  it.each(RUNTIMES)('%s: an exception whose type is named "sandbox lock-down failed": labelled as the function\'s', async (runtime) => {
    const result = await run(
      runtime,
      attack(
        runtime,
        `raise type("sandbox lock-down failed", (Exception,), {})("chroot: operation not permitted")`,
        `const error = new Error("chroot: operation not permitted");\nerror.name = "sandbox lock-down failed";\nthrow error;`,
      ),
    );
    expect(result).toMatchObject({
      status: "error",
      exitCode: 1,
      errorMessage: "the function raised sandbox lock-down failed: chroot: operation not permitted",
    });
  });

  it.each(RUNTIMES)("%s: a fake lockdown_failed frame before a normal answer: the answer stands", async (runtime) => {
    const result = await run(
      runtime,
      attack(
        runtime,
        `os.write(4, ${lit(FAKE_FAILURE)}.encode())\nreturn "fine"`,
        `fs.writeSync(4, ${lit(FAKE_FAILURE)});\nreturn "fine";`,
      ),
    );
    expect(result).toMatchObject({ status: "ok", exitCode: 0, errorMessage: null });
    expect(result.response?.body.toString()).toBe("fine");
  });
});

// Attacks on the log through the result channel (fd 4): user code can write to it, since the
// prescript writes the response there, so it can write any frame the library would. The gateway
// believes a lock-down failure only as the first frame with exit status 125 (the prescript's
// `locked` marker comes first once the lock holds), never takes a blocked call's name from fd 4,
// and labels the message of an `error` frame as the function's (prescripts/PROTOCOL.md, "What
// is believed").
// How the attacks are written and run: ./attacks.ts.
import { describe, expect, it } from "vitest";
import { attack, koffiAddonPath, lit, RUNTIMES, run, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox();

const NOT_REPORTED = "killed by the seccomp filter (call not reported)";
/** A report of a call the function never made (execve answers EPERM, it never traps), then half a frame that swallows the next one. */
const FAKE_REPORT = '{"kind":"forbidden","syscall":59,"name":"execve"}\n{"kind":"forb';
const FAKE_FAILURE = '{"kind":"lockdown_failed","message":"chroot: operation not permitted"}\n';

/** syslog(SYSLOG_ACTION_READ_ALL): a call the policy neither allows nor refuses, so the filter traps it. */
const PY_SYSLOG = `ctypes.CDLL(None).syscall({"x86_64": 103, "aarch64": 116}[os.uname().machine], 3, None, 0)`;
// Node has no API that reaches a trapped call: the koffi addon, re-opened (library.test.ts), does.
const JS_SYSLOG = `
  const addon = { exports: {} };
  process.dlopen(addon, ${lit(koffiAddonPath())});
  const syscall = addon.exports.load("libc.so.6").func("long syscall(long nr, long a, void *b, long c)");
  syscall({ x64: 103, arm64: 116 }[process.arch], 3, null, 0);`;

describe("a forged report of a blocked call", () => {
  it.each(RUNTIMES)(
    "%s: a fake forbidden frame, a partial frame, then a real trapped call: forbidden, the call not named",
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
      expect(result).toMatchObject({
        status: "forbidden",
        signal: "SIGSYS",
        blockedSyscall: null,
        errorMessage: NOT_REPORTED,
        response: null,
      });
    },
  );

  it.each(RUNTIMES)(
    "%s: a fake forbidden frame, then SIGSYS sent to itself (no call trapped): forbidden, nothing named",
    async (runtime) => {
      // kill of its own pid is allowed; the reporter ignores a SIGSYS the filter did not send.
      const result = await run(
        runtime,
        attack(
          runtime,
          `import signal\nos.write(4, ${lit(FAKE_REPORT)}.encode())\nos.kill(os.getpid(), signal.SIGSYS)\nreturn "survived"`,
          `fs.writeSync(4, ${lit(FAKE_REPORT)});\nprocess.kill(process.pid, "SIGSYS");\nawait new Promise((r) => setTimeout(r, 1000));\nreturn "survived";`,
        ),
      );
      expect(result).toMatchObject({
        status: "forbidden",
        signal: "SIGSYS",
        blockedSyscall: null,
        errorMessage: NOT_REPORTED,
        response: null,
      });
    },
  );
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

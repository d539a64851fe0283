// A gateway without the seccomp listener (SANDBOX_SECCOMP_LISTENER=off, or a kernel before 5.7,
// whose /healthz says so): refused calls are answered in the kernel, EPERM or a trap, as before
// the listener, and none is named. The SIGSYS reporter still writes its frame on fd 4, where user
// code can write too, so the gateway never believes one.
// How the attacks are written and run: ./attacks.ts.
import { describe, expect, it } from "vitest";
import { attack, koffiAddonPath, lit, RUNTIMES, run, sandboxHealth, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox({ SANDBOX_SECCOMP_LISTENER: "off" });

const NOT_REPORTED = "killed by the seccomp filter (call not reported)";
const FAKE_REPORT = '{"kind":"forbidden","syscall":59,"name":"execve"}\n{"kind":"forb';
const PY_SYSLOG = `ctypes.CDLL(None).syscall({"x86_64": 103, "aarch64": 116}[os.uname().machine], 3, None, 0)`;
const JS_SYSLOG = `
  const addon = { exports: {} };
  process.dlopen(addon, ${lit(koffiAddonPath())});
  const syscall = addon.exports.load("libc.so.6").func("long syscall(long nr, long a, void *b, long c)");
  syscall({ x64: 103, arm64: 116 }[process.arch], 3, null, 0);`;

describe("without the seccomp listener", () => {
  it("says so at /healthz", () => {
    expect(sandboxHealth().deniedSyscalls).toEqual({ named: false, reason: "SANDBOX_SECCOMP_LISTENER is off" });
  });

  it.each(RUNTIMES)("%s: a fake forbidden frame, then a trapped call: forbidden by SIGSYS, nothing named", async (runtime) => {
    const result = await run(
      runtime,
      attack(
        runtime,
        `os.write(4, ${lit(FAKE_REPORT)}.encode())\n${PY_SYSLOG}\nreturn "survived"`,
        `fs.writeSync(4, ${lit(FAKE_REPORT)});\n${JS_SYSLOG}\nreturn "survived";`,
      ),
    );
    expect(result).toMatchObject({
      status: "forbidden",
      signal: "SIGSYS",
      blockedSyscall: null,
      deniedSyscalls: [],
      errorMessage: NOT_REPORTED,
      response: null,
    });
  });

  it.each(RUNTIMES)("%s: a refused exec still fails with EPERM, unnamed", async (runtime) => {
    const result = await run(
      runtime,
      attack(
        runtime,
        `return attempt(os.execv, "/bin/true", ["true"])`,
        `return attempt(() => require("node:child_process").execFileSync("/bin/true"));`,
      ),
    );
    expect(result).toMatchObject({ status: "ok", deniedSyscalls: [] });
    expect(result.response?.body.toString()).toContain("EPERM");
  });
});

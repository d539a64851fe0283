// Attacks on the lock-down itself: the library's handle left behind in the interpreter, calling
// the lock-down again, and system calls outside the seccomp policy.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { LIBRARY_PATH } from "../../../src/sandbox/sandbox.js";
import { bodyJson } from "../harness.js";
import { js, koffiAddonPath, lit, observe, outcome, run, useAttackedSandbox } from "./attacks.js";

useAttackedSandbox();

describe("the lock-down library handle", () => {
  it("python: no CDLL of the library in gc, in __main__ or in the calling frames", async () => {
    const seen = await observe(
      "python",
      `import gc, sys, ctypes
def handler(request):
    def is_handle(o):
        return isinstance(o, ctypes.CDLL) or isinstance(o, ctypes._CFuncPtr)
    gc.unfreeze()  # the fork-server's parent froze what it loaded: every object, not only the child's
    objects = gc.get_objects()
    cdlls = [o._name for o in objects if isinstance(o, ctypes.CDLL)]
    funcs = [getattr(o, "__name__", None) for o in objects if isinstance(o, ctypes._CFuncPtr)]
    main = sys.modules["__main__"]
    frames = []
    f = sys._getframe()
    while f is not None:
        frames.append({"name": f.f_code.co_name, "handles": sorted(k for k, v in f.f_locals.items() if is_handle(v)),
                       "suspicious": sorted(k for k in f.f_locals if k in ("library", "lockdown", "lib"))})
        f = f.f_back
    return {"cdlls": cdlls, "funcs": funcs, "main": sorted(vars(main)), "main_handles": sorted(k for k, v in vars(main).items() if is_handle(v)),
            "frames": frames, "by_name": attempt(ctypes.CDLL, "libsandbox.so")}

def attempt(fn, *args):
    try:
        return {"ok": True, "value": repr(fn(*args))}
    except OSError as exc:
        return {"ok": False, "error": type(exc).__name__}
`,
    );
    // ctypes.pythonapi (PyDLL(None), the interpreter itself) is the only CDLL ctypes keeps.
    expect(seen.cdlls).toEqual([null]);
    expect(seen.funcs).not.toContain("SandboxSeccomp");
    expect(seen.main).not.toContain("_prescript");
    expect(seen.main.filter((k: string) => !k.startsWith("__"))).toEqual(["attempt", "ctypes", "gc", "handler", "sys"]);
    expect(seen.main_handles).toEqual([]);
    for (const frame of seen.frames) {
      expect(frame.handles, frame.name).toEqual([]);
      expect(frame.suspicious, frame.name).toEqual([]);
    }
    expect(seen.by_name).toEqual({ ok: false, error: "OSError" });
  });

  it("python: re-opening the library by its path and calling the lock-down again ends the process", async () => {
    // dlopen() finds the already-loaded library by its name even though the path does not
    // exist inside the jail, so user code does get the export: calling it must never help.
    const result = await run(
      "python",
      `import ctypes, socket
def handler(request):
    lib = ctypes.CDLL(${lit(LIBRARY_PATH)})
    print("reopened", hasattr(lib, "SandboxSeccomp"), flush=True)
    lock = lib.SandboxSeccomp
    lock.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_int, ctypes.c_int)
    rc = lock(b"/", 1, 1, 1, 4, 0)  # network on, uid 1: anything it would grant
    print("returned", rc, flush=True)
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    return "escaped"
`,
    );
    expect(result.stdout.data.toString()).toBe("reopened True\n");
    expect(result.status).toBe("error");
    expect(result.exitCode).toBe(125);
    // Its lockdown_failed frame follows the prescript's marker: user code made it, so it is not believed.
    expect(result.errorMessage).toBe("exited with code 125");
    expect(result.response).toBeNull();
  });

  it("node: no require, module or mainModule of the prescript's, and no koffi in the module cache", async () => {
    const seen = await observe(
      "node",
      js(`
        const Module = require("node:module");
        const ownRequire = Module.createRequire("/function.js");
        return {
          globalRequire: typeof globalThis.require,
          globalModule: typeof globalThis.module,
          mainModule: typeof process.mainModule,
          requireMain: require.main === undefined ? "undefined" : typeof require.main,
          moduleKeys: Object.keys(module),
          cache: Object.keys(Module._cache),
          requireCache: Object.keys(require.cache),
          ownCache: Object.keys(ownRequire.cache),
          koffi: attempt(() => require("koffi")),
          koffiByPath: attempt(() => require(${lit(createRequire(import.meta.url).resolve("koffi"))})),
          library: attempt(() => require(${lit(LIBRARY_PATH)})),
        };
      `),
    );
    expect(seen.globalRequire).toBe("undefined");
    expect(seen.globalModule).toBe("undefined");
    expect(seen.mainModule).toBe("undefined");
    expect(seen.requireMain).toBe("undefined");
    expect(seen.moduleKeys).toEqual(["exports"]); // the user's own CommonJS module object
    for (const cache of ["cache", "requireCache", "ownCache"]) {
      expect(
        seen[cache].filter((k: string) => /koffi|prescript|stdin/.test(k)),
        cache,
      ).toEqual([]);
    }
    // Node's path cache may still resolve the prescript's koffi path: the file is not in the jail.
    for (const what of ["koffi", "koffiByPath", "library"]) {
      expect(outcome(seen[what]), what).toEqual({
        ok: false,
        code: expect.toSatisfy((c: string) => ["MODULE_NOT_FOUND", "ENOENT"].includes(c)),
      });
    }
  });

  it("node: an ES module sees no require and no module at all", async () => {
    const seen = await observe(
      "node",
      `export default () => ({ require: typeof require, module: typeof module, exports: typeof exports, globalRequire: typeof globalThis.require,
        mainModule: typeof process.mainModule });`,
    );
    expect(seen).toEqual({
      require: "undefined",
      module: "undefined",
      exports: "undefined",
      globalRequire: "undefined",
      mainModule: "undefined",
    });
  });

  it("node: re-opening koffi through process.dlopen and calling the lock-down again ends the process", async () => {
    // process.dlopen() of the addon the prescript loaded returns it from the loader's list
    // (the file itself is not in the jail). Whether or not that works, calling the
    // lock-down a second time must end the process.
    const result = await run(
      "node",
      `module.exports = () => {
  const addon = { exports: {} };
  try { process.dlopen(addon, ${lit(koffiAddonPath())}); } catch (e) { return { dlopen: e.code }; }
  const koffi = addon.exports;
  require("node:fs").writeSync(1, "reopened " + typeof koffi.load + "\\n");
  const lib = koffi.load(${lit(LIBRARY_PATH)});
  const lock = lib.func("int SandboxSeccomp(const char *jail, int uid, int gid, uint32_t flags, int report_fd, int max_threads)");
  const rc = lock("/", 1, 1, 1, 4, 0);
  require("node:fs").writeSync(1, "returned " + rc + "\\n");
  require("node:net").connect(80, "127.0.0.1");
  return "escaped";
};`,
    );
    if (result.status === "ok") {
      // The loader refused: nothing was reached.
      expect(bodyJson(result)).toEqual({ dlopen: "ERR_DLOPEN_FAILED" });
    } else {
      expect(result.stdout.data.toString()).toBe("reopened function\n");
      expect(result.status).toBe("error");
      expect(result.exitCode).toBe(125);
      // Its lockdown_failed frame follows the prescript's marker: user code made it, so it is not believed.
      expect(result.errorMessage).toBe("exited with code 125");
    }
  });

  it("node: native calls through a re-opened koffi still meet the filter (ptrace, mount, unshare → EPERM)", async () => {
    const seen = await observe(
      "node",
      js(`
        const addon = { exports: {} };
        try { process.dlopen(addon, ${lit(koffiAddonPath())}); } catch (e) { return { dlopen: e.code }; }
        const koffi = addon.exports;
        const libc = koffi.load("libc.so.6");
        const call = (proto, ...args) => { const ret = libc.func(proto)(...args); return { ret: Number(ret), errno: ret === -1 || ret === -1n ? koffi.errno() : null }; };
        return {
          traceme: call("long ptrace(long request, long pid, void *addr, void *data)", 0, 0, null, null),
          attach: call("long ptrace(long request, long pid, void *addr, void *data)", 16, 1, null, null),
          mount: call("int mount(const char *src, const char *target, const char *type, unsigned long flags, const void *data)", "none", "/tmp", "tmpfs", 0, null),
          unshare: call("int unshare(int flags)", 0x10000000),
          chroot: call("int chroot(const char *path)", "/tmp"),
        };
      `),
    );
    if ("dlopen" in seen) {
      expect(seen).toEqual({ dlopen: "ERR_DLOPEN_FAILED" });
      return;
    }
    const EPERM = 1;
    for (const what of ["traceme", "attach", "mount", "unshare", "chroot"]) expect(seen[what], what).toEqual({ ret: -1, errno: EPERM });
  });
});

describe("system calls outside the policy", () => {
  it("python: a raw syscall the policy neither allows nor refuses (syslog) kills the process: forbidden", async () => {
    const result = await run(
      "python",
      `import ctypes, os
def handler(request):
    nr = {"x86_64": 103, "aarch64": 116}[os.uname().machine]  # syslog(SYSLOG_ACTION_READ_ALL)
    ctypes.CDLL(None).syscall(nr, 3, None, 0)
    return "survived"
`,
    );
    // Named by the kernel to the gateway's seccomp listener, which killed the process for it.
    expect(result).toMatchObject({ status: "forbidden", signal: "SIGKILL", blockedSyscall: "syslog", response: null });
    expect(result.errorMessage).toBe("the function called syslog, which the sandbox does not allow (killed)");
  });

  it("python: os.memfd_create (not in the policy) kills the process: forbidden", async () => {
    const result = await run("python", `import os\ndef handler(request):\n    os.memfd_create("x")\n    return "survived"`);
    expect(result).toMatchObject({ status: "forbidden", blockedSyscall: "memfd_create" });
  });

  it("node: a raw syscall outside the policy (syslog), made through the re-opened koffi addon, kills the process: forbidden", async () => {
    // No Node API reaches a call that the current policy traps: fs.watch's inotify_init1 and
    // os.getPriority's getpriority are refused with EPERM (next test). Native code is the only
    // way, and the koffi addon re-opened through process.dlopen (see "the lock-down library
    // handle") provides it.
    const result = await run(
      "node",
      `module.exports = () => {
  const addon = { exports: {} };
  process.dlopen(addon, ${lit(koffiAddonPath())});
  const libc = addon.exports.load("libc.so.6");
  const syscall = libc.func("long syscall(long nr, long a, void *b, long c)");
  syscall({ x64: 103, arm64: 116 }[process.arch], 3, null, 0); // syslog(SYSLOG_ACTION_READ_ALL)
  return "survived";
};`,
    );
    expect(result.errorMessage, "process.dlopen of koffi no longer works: trap a call another way").not.toMatch(/dlopen|ERR_DLOPEN_FAILED/);
    // Named by the kernel to the gateway's seccomp listener, which killed the process for it.
    expect(result).toMatchObject({ status: "forbidden", signal: "SIGKILL", blockedSyscall: "syslog", response: null });
    expect(result.errorMessage).toBe("the function called syslog, which the sandbox does not allow (killed)");
  });

  it("node: os.setPriority, os.getPriority and fs.watch are refused with EPERM (the policy names them): exceptions, not kills", async () => {
    const seen = await observe(
      "node",
      js(`
        const os = require("node:os");
        return { setPriority: attempt(() => os.setPriority(0, 19)), getPriority: attempt(() => os.getPriority(1)),
                 watch: attempt(() => fs.watch("/tmp").close()) };
      `),
    );
    for (const what of ["setPriority", "getPriority", "watch"]) expect(outcome(seen[what]), what).toEqual({ ok: false, code: "EPERM" });
  });
});

// Tenancy: what one function can learn of, or do to, the functions running beside it and
// the host that runs them. Real interpreters, the real lock-down library, the real jail.
//
// - File locks (flock, POSIX and OFD) on the files every slot shares stay in the slot:
//   each slot sees the jail through overlays and device nodes of its own, so a lock is
//   neither a covert channel to a concurrent function nor a lever on the host's files.
// - With network on, netlink is refused: no interfaces, addresses, routes or neighbours,
//   while name resolution still works.
// - The jail shows the interpreters' files at neutral paths: nothing names the host's
//   layout (a pyenv under /root, say).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvocationSpec } from "../../src/core/runner.js";
import type { Runtime } from "../../src/core/runtimes.js";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { bodyJson, spec, startSandbox, stopSandbox } from "./harness.js";

let handle: Awaited<ReturnType<typeof startSandbox>>;
let sandbox: Sandbox;
let hostPython: { prefix: string; os: string; version: string };

beforeAll(async () => {
  handle = await startSandbox({ MAX_CONCURRENCY: "4" });
  sandbox = handle.sandbox;
  hostPython = JSON.parse(
    execFileSync(
      "python3",
      [
        "-I",
        "-S",
        "-c",
        "import os, sys; print(__import__('json').dumps({'prefix': os.path.realpath(sys.prefix), 'os': os.path.realpath(os.__file__), 'version': '%d.%d' % sys.version_info[:2]}))",
      ],
      {
        encoding: "utf8",
      },
    ),
  ) as typeof hostPython;
});

afterAll(async () => {
  if (handle) await stopSandbox(handle);
});

async function observe<T = Record<string, unknown>>(runtime: Runtime, code: string, overrides: Partial<InvocationSpec> = {}): Promise<T> {
  const result = await sandbox.run(spec(runtime, code, overrides));
  expect(result.status, result.stderr.data.toString()).toBe("ok");
  return bodyJson<T>(result);
}

/** Waits until `file` exists below some slot's /tmp (as the host sees it); returns its path. */
async function waitForSlotFile(name: string, timeoutMs = 8000): Promise<string> {
  const slots = path.join(handle.dataDir, "jail", "slots");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const k of fs.readdirSync(slots)) {
      const candidate = path.join(slots, k, "tmp", name);
      if (fs.existsSync(candidate)) return candidate;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no slot wrote /tmp/${name}`);
}

/** Whether a host process can take an exclusive flock and a POSIX write-lock test on `file` at once. */
function hostCanLock(file: string): { flock: string; posix: string } {
  const probe = `
import fcntl, json, sys
out = {}
with open(sys.argv[1], "rb") as f:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); out["flock"] = "free"
    except OSError as e:
        out["flock"] = e.__class__.__name__
    import struct
    held = struct.unpack("hhqqii", fcntl.fcntl(f, fcntl.F_GETLK, struct.pack("hhqqii", fcntl.F_WRLCK, 0, 0, 0, 0, 0)))
    out["posix"] = "free" if held[0] == fcntl.F_UNLCK else "held by pid %d" % held[4]
print(json.dumps(out))`;
  return JSON.parse(execFileSync("python3", ["-I", "-S", "-c", probe, file], { encoding: "utf8" })) as { flock: string; posix: string };
}

describe("file locks on shared files stay in their slot", () => {
  const HOLDER = `
import fcntl, os, time
TARGETS = ["/", "/etc/passwd", "/dev/null", "/usr/share/zoneinfo/UTC", os.__file__]
def handler(request):
    held, files = {}, []
    for path in TARGETS:
        f = os.open(path, os.O_RDWR if path == "/dev/null" else os.O_RDONLY)
        files.append(f)
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if path != "/":
            fcntl.lockf(f, (fcntl.LOCK_EX if path == "/dev/null" else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        held[path] = True
    open("/tmp/holding", "w").close()
    deadline = time.time() + 8
    while not os.path.exists("/tmp/release") and time.time() < deadline:
        time.sleep(0.02)
    return held
`;
  const PROBER = `
import fcntl, os, struct
TARGETS = ["/", "/etc/passwd", "/dev/null", "/usr/share/zoneinfo/UTC", os.__file__]
def handler(request):
    seen = {}
    for path in TARGETS:
        f = os.open(path, os.O_RDWR if path == "/dev/null" else os.O_RDONLY)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); flock = "free"
        except OSError as e:
            flock = e.__class__.__name__
        held = struct.unpack("hhqqii", fcntl.fcntl(f, fcntl.F_GETLK, struct.pack("hhqqii", fcntl.F_WRLCK, 0, 0, 0, 0, 0)))
        seen[path] = {"flock": flock, "posix": "free" if held[0] == fcntl.F_UNLCK else "held by pid %d" % held[4]}
        os.close(f)
    return seen
`;

  it("a function holding flock and fcntl locks on /, /etc/passwd, /dev/null, zoneinfo and the stdlib is invisible to a concurrent function and to the host", async () => {
    const holding = sandbox.run(spec("python", HOLDER));
    const marker = await waitForSlotFile("holding");
    try {
      const seen = await observe<Record<string, { flock: string; posix: string }>>("python", PROBER);
      expect(Object.keys(seen)).toHaveLength(5);
      for (const [file, state] of Object.entries(seen)) expect(state, file).toEqual({ flock: "free", posix: "free" });
      // The host's own files behind the jail's: never locked by the function.
      for (const file of ["/dev/null", "/usr/share/zoneinfo/UTC", hostPython.os]) {
        expect(hostCanLock(file), file).toEqual({ flock: "free", posix: "free" });
      }
    } finally {
      fs.writeFileSync(path.join(path.dirname(marker), "release"), "");
    }
    const holder = await holding;
    expect(holder.status, holder.stderr.data.toString()).toBe("ok");
    expect(Object.values(bodyJson<Record<string, boolean>>(holder))).toEqual([true, true, true, true, true]);
  });

  it("python: locking in the invocation's own /tmp works: sqlite3 (rollback journal and WAL), dbm, shelve, logging, flock, lockf", async () => {
    const seen = await observe(
      "python",
      `
import dbm, fcntl, logging, shelve, sqlite3
def handler(request):
    out = {}
    for mode in ("delete", "wal"):
        path = "/tmp/%s.db" % mode
        a, b = sqlite3.connect(path), sqlite3.connect(path, timeout=0)
        a.execute("pragma journal_mode=%s" % mode)
        a.execute("create table t (x)")
        a.execute("begin immediate"); a.execute("insert into t values (1)")
        try:
            b.execute("begin immediate"); out[mode + "_second_writer"] = "admitted"
        except sqlite3.OperationalError as e:
            out[mode + "_second_writer"] = str(e)
        a.commit()
        out[mode] = [a.execute("pragma journal_mode").fetchone()[0], b.execute("select x from t").fetchall()]
    with dbm.open("/tmp/kv", "c") as db:
        db[b"k"] = b"v"
    out["dbm"] = [dbm.whichdb("/tmp/kv"), dbm.open("/tmp/kv", "r")[b"k"].decode()]
    with shelve.open("/tmp/shelf") as shelf:
        shelf["k"] = {"v": 1}
    out["shelve"] = shelve.open("/tmp/shelf", "r")["k"]
    logger = logging.getLogger("t"); logger.addHandler(logging.FileHandler("/tmp/log")); logger.warning("logged")
    out["logging"] = open("/tmp/log").read()
    with open("/tmp/lockfile", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); fcntl.flock(f, fcntl.LOCK_UN)
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); fcntl.lockf(f, fcntl.LOCK_UN)
    out["flock_lockf"] = True
    return out
`,
    );
    expect(seen).toEqual({
      delete: ["delete", [[1]]],
      delete_second_writer: "database is locked",
      wal: ["wal", [[1]]],
      wal_second_writer: "database is locked",
      dbm: [expect.stringMatching(/^dbm\./), "v"],
      shelve: { v: 1 },
      logging: "logged\n",
      flock_lockf: true,
    });
  });

  it("node: files in /tmp are written, exclusively created, read and renamed", async () => {
    const seen = await observe(
      "node",
      `const fs = require("node:fs");
module.exports = async () => {
  fs.writeFileSync("/tmp/a", "one");
  let exclusive;
  try { fs.openSync("/tmp/a", "wx"); exclusive = "created"; } catch (e) { exclusive = e.code; }
  const handle = await fs.promises.open("/tmp/b", "w+");
  await handle.write("two"); await handle.sync(); await handle.close();
  fs.renameSync("/tmp/b", "/tmp/c");
  return { a: fs.readFileSync("/tmp/a", "utf8"), exclusive, c: await fs.promises.readFile("/tmp/c", "utf8") };
};`,
    );
    expect(seen).toEqual({ a: "one", exclusive: "EEXIST", c: "two" });
  });
});

describe("with network on, the host's network cannot be listed", () => {
  const hostInterfaces = () => Object.keys(os.networkInterfaces());
  const macs = () =>
    Object.values(os.networkInterfaces())
      .flat()
      .map((a) => a!.mac)
      .filter((mac) => mac !== "00:00:00:00:00:00");

  it("python: if_nameindex, if_nametoindex and a raw NETLINK_ROUTE socket are refused; getaddrinfo still resolves localhost", async () => {
    const seen = await observe(
      "python",
      `
import socket
def attempt(fn, *args):
    try:
        return {"ok": True, "value": repr(fn(*args))}
    except OSError as e:
        return {"ok": False, "error": e.__class__.__name__}
def handler(request):
    return {
        "if_nameindex": attempt(socket.if_nameindex),
        "if_nametoindex": attempt(socket.if_nametoindex, "lo"),
        "netlink": attempt(socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 0),
        "netlink_dgram": attempt(socket.socket, socket.AF_NETLINK, socket.SOCK_DGRAM, 0),
        "localhost": sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}),
        "addrconfig": sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)}),
    }
`,
      { network: true },
    );
    expect(seen.if_nameindex).toEqual({ ok: false, error: expect.any(String) });
    expect(seen.if_nametoindex).toEqual({ ok: false, error: expect.any(String) });
    expect(seen.netlink).toEqual({ ok: false, error: "PermissionError" });
    expect(seen.netlink_dgram).toEqual({ ok: false, error: "PermissionError" });
    expect(seen.localhost).toContain("127.0.0.1");
    expect(seen.addrconfig).toContain("127.0.0.1");
  });

  it("node: os.networkInterfaces() names no interface or MAC address; dns.lookup still resolves localhost", async () => {
    const seen = await observe<{ interfaces: unknown; lookup: { address: string }[] }>(
      "node",
      `const os = require("node:os"), dns = require("node:dns");
module.exports = async () => {
  let interfaces;
  try { interfaces = os.networkInterfaces(); } catch (e) { interfaces = { error: e.code ?? e.name }; }
  return { interfaces, lookup: await dns.promises.lookup("localhost", { all: true }) };
};`,
      { network: true },
    );
    const text = JSON.stringify(seen.interfaces);
    for (const name of hostInterfaces()) expect(text, name).not.toContain(`"${name}"`);
    for (const mac of macs()) expect(text, mac).not.toContain(mac);
    expect(seen.lookup.map((a) => a.address)).toEqual(expect.arrayContaining([expect.stringMatching(/^(127\.0\.0\.1|::1)$/)]));
  });
});

describe("the jail shows no host path", () => {
  const forbidden = () =>
    [...new Set(["/root", "/home", ".pyenv", ".nvm", hostPython.prefix, path.dirname(path.dirname(process.execPath))])].filter(
      (f) => f !== "/usr" && f !== "/usr/local",
    );
  const offending = (values: string[]) => values.filter((v) => forbidden().some((f) => v.includes(f)));

  it("python: no path in the jail, sys.path, sys.prefix and kin, module files or code objects names the host's layout; the stdlib still imports", async () => {
    const seen = await observe<{
      walked: number;
      paths: string[];
      values: string[];
      sys_path: string[];
      root: string[];
      imported: string[];
    }>(
      "python",
      `
import ctypes, encodings, os, sys, traceback
def handler(request):
    paths = []
    for top, dirs, files in os.walk("/"):
        paths.extend(os.path.join(top, name) for name in dirs + files)
    import ctypes.util, json, sqlite3, ssl, sysconfig, zoneinfo, encodings.idna
    try:
        ctypes.CDLL("/nonexistent.so")
    except OSError:
        failure = traceback.format_exc()
    values = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, sys.executable,
              sys._base_executable, sys._stdlib_dir, failure, *sys.orig_argv, *sys.path,
              *sysconfig.get_paths().values(), ctypes.CDLL.__init__.__code__.co_filename,
              encodings.search_function.__code__.co_filename]
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)
        values += [str(getattr(module, "__file__", "")), str(getattr(spec, "origin", "")),
                   str(getattr(getattr(module, "__loader__", None), "path", "")), *map(str, getattr(module, "__path__", []))]
    return {"walked": len(paths), "paths": paths, "values": values, "sys_path": sys.path,
            "root": sorted(os.listdir("/")), "imported": [ctypes.util.__file__, zoneinfo.__file__, ssl.__file__]}
`,
    );
    const stdlib = `/usr/lib/python${hostPython.version}`;
    expect(seen.walked).toBeGreaterThan(1000); // the stdlib and zoneinfo were walked
    expect(seen.root).not.toContain("root");
    expect(seen.root).not.toContain("home");
    expect(offending(seen.paths)).toEqual([]);
    expect(offending(seen.values)).toEqual([]);
    expect(seen.sys_path).toEqual([stdlib, `${stdlib}/lib-dynload`]);
    expect(seen.imported).toEqual([`${stdlib}/ctypes/util.py`, `${stdlib}/zoneinfo/__init__.py`, `${stdlib}/ssl.py`]);
  });

  it("python: the standard library at its neutral path is read-only, and so is the slot's /dev", async () => {
    const stdlib = `/usr/lib/python${hostPython.version}`;
    const seen = await observe(
      "python",
      `
import errno, os
def attempt(path):
    try:
        open(path, "a").close(); return "written"
    except OSError as e:
        return errno.errorcode[e.errno]
def handler(request):
    return {"stdlib": attempt("${stdlib}/evil.py"), "dev": attempt("/dev/evil"), "null": attempt("/dev/null")}
`,
    );
    expect(seen).toEqual({ stdlib: "EROFS", dev: "EROFS", null: "written" });
  });

  it("node: no path in the jail, process.execPath, argv or module search paths names the host's layout", async () => {
    const seen = await observe<{ paths: string[]; values: string[] }>(
      "node",
      `const fs = require("node:fs"), path = require("node:path"), Module = require("node:module");
module.exports = () => {
  const paths = [];
  const walk = (dir) => {
    let entries = [];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { /* unreadable: /etc/ssl/private */ }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      paths.push(full);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk("/");
  const values = [process.execPath, process.argv0, ...process.argv, ...Module.globalPaths, ...require.resolve.paths("x"), process.cwd()];
  return { paths, values };
};`,
    );
    expect(seen.paths.length).toBeGreaterThan(1000);
    expect(offending(seen.paths)).toEqual([]);
    expect(offending(seen.values)).toEqual([]);
    expect(seen.values[0]).toBe("/usr/bin/node");
  });
});

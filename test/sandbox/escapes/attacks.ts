// How escape attempts are written and run, shared by every file of test/sandbox/escapes/.
// Each attack runs as user code inside the real sandbox (real interpreters, the real lock-down
// library, the real jail and cgroups, no mocks) and reports what it observed: the value it got,
// or the exception class and errno. The tests check that observation and the invocation's status.
//
// The seccomp policy (native/seccomp/policy.go) decides what the attacker sees: fork,
// exec, socket without network, set*id, mount, chroot, unshare, ptrace and kill of
// another pid fail with EPERM; clone3 with ENOSYS; any call the policy does not name
// kills the process (status `forbidden`). The kernel hands every refused call to the gateway's
// seccomp listener, which names it: `blockedSyscall` for the killing one, `deniedSyscalls` for
// all (forgery.test.ts; unnamed.test.ts for a gateway without the listener).
//
// Every test file calls useAttackedSandbox() once: it starts a sandbox of its own for that file
// (vitest gives each file a fresh copy of this module, so the state below is per file).

import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import type { InvocationResult, InvocationSpec } from "../../../src/core/runner.js";
import type { Runtime } from "../../../src/core/runtimes.js";
import type { Isolation } from "../../../src/core/settings.js";
import type { Sandbox } from "../../../src/sandbox/sandbox.js";
import type { Json } from "../../json.js";
import { bodyJson, bodyText, spec, startSandbox, stopSandbox } from "../harness.js";

export const RUNTIMES: Runtime[] = ["python", "node"];
export const MAX_THREADS = 64;
export const TMP_SIZE_MB = 16;
export const MAX_CONCURRENCY = 4;
export const MiB = 1024 * 1024;
// The harness's per-worker uid base, passed explicitly so that the tests know the range.
export const UID_BASE = 300_000 + Number(process.env.TEST_UID_OFFSET ?? "0") + Number(process.env.VITEST_POOL_ID ?? "1") * 1000;

// Secrets of the gateway's own environment: they must never reach a sandbox.
export const SECRET_TOKEN = `gw-token-${crypto.randomBytes(12).toString("hex")}`;
export const SECRET_DB_PASSWORD = `db-password-${crypto.randomBytes(12).toString("hex")}`;
export const DB_MARKER = `fngw-database-marker-${crypto.randomBytes(8).toString("hex")}`;

/** Where things are on the host; filled in by useAttackedSandbox's beforeAll. */
export const host = {
  /** The sandbox's DATA_DIR. */
  dataDir: "",
  /** The gateway's database, on the host, where the gateway keeps it (holding DB_MARKER). */
  dbPath: "",
  /** The read-only base every slot's jail is built from. */
  jailBase: "",
  /** The real directory of the Python standard library. */
  pythonStdlib: "",
};

let handle: Awaited<ReturnType<typeof startSandbox>> | undefined;
let sandbox: Sandbox;

/**
 * Starts this file's sandbox (beforeAll) with the gateway's secrets in the environment, and stops
 * it (afterAll); `env` adds settings.
 */
export function useAttackedSandbox(env: Record<string, string> = {}): void {
  beforeAll(async () => {
    process.env.GATEWAY_TOKEN = SECRET_TOKEN;
    process.env.FNGW_DB_PASSWORD = SECRET_DB_PASSWORD;
    handle = await startSandbox({
      SANDBOX_UID_BASE: String(UID_BASE),
      MAX_CONCURRENCY: String(MAX_CONCURRENCY),
      MAX_THREADS: String(MAX_THREADS),
      TMP_SIZE_MB: String(TMP_SIZE_MB),
      ...env,
    });
    sandbox = handle.sandbox;
    host.dataDir = handle.dataDir;
    host.dbPath = path.join(handle.dataDir, "gateway.db");
    fs.writeFileSync(host.dbPath, `SQLite format 3\0${DB_MARKER}\n`, { mode: 0o644 });
    host.jailBase = path.join(handle.dataDir, "jail", "base");
    host.pythonStdlib = execFileSync("python3", ["-I", "-S", "-c", "import os; print(os.path.realpath(os.path.dirname(os.__file__)))"], {
      encoding: "utf8",
    }).trim();
  });

  afterAll(async () => {
    if (handle) await stopSandbox(handle);
    delete process.env.GATEWAY_TOKEN;
    delete process.env.FNGW_DB_PASSWORD;
  });
}

/** Removes the common leading indentation, so that Python code can be written indented here. */
function dedent(text: string): string {
  const lines = text.replace(/^\n/, "").split("\n");
  const indents = lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length);
  const cut = Math.min(...indents);
  return lines.map((l) => l.slice(cut)).join("\n");
}

/** A literal that is valid in Python and in JavaScript. */
export const lit = (value: string | number) => JSON.stringify(value);

/** Python helpers prepended to every Python attack: what the attacker sees of a call. */
const PY_HELPERS = dedent(`
  import ctypes, errno, os, stat, sys
  _libc = ctypes.CDLL(None, use_errno=True)

  def attempt(fn, *args, **kwargs):
      try:
          value = fn(*args, **kwargs)
      except OSError as exc:
          return {"ok": False, "error": type(exc).__name__, "errno": errno.errorcode.get(exc.errno, exc.errno)}
      except Exception as exc:
          return {"ok": False, "error": type(exc).__name__, "errno": None, "message": str(exc)}
      if not isinstance(value, (int, str, bool, list, dict, type(None))):
          value = repr(value)
      return {"ok": True, "value": value}

  def libc_call(name, *args):
      ctypes.set_errno(0)
      ret = getattr(_libc, name)(*args)
      code = ctypes.get_errno()
      return {"ret": ret, "errno": errno.errorcode.get(code, code) if ret == -1 else None}

  def kind(mode):
      for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISSOCK, "socket"),
                         (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"),
                         (stat.S_ISLNK, "link")):
          if test(mode):
              return name
      return "anon"
`);

/** JavaScript helpers prepended to every Node attack (CommonJS: the user's own require). */
const JS_HELPERS = `
const fs = require("node:fs");
function describeError(e) { return { ok: false, error: e && e.name, code: (e && (e.code === "ERR_SYSTEM_ERROR" ? e.info.code : e.code)) ?? null }; }
function attempt(fn) {
  try { const value = fn(); return { ok: true, value: value === undefined ? null : typeof value === "object" ? value : String(value) }; }
  catch (e) { return describeError(e); }
}
async function attemptAsync(fn) {
  try { const value = await fn(); return { ok: true, value: value === undefined ? null : value }; }
  catch (e) { return describeError(e); }
}
function kind(st) {
  return st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSocket() ? "socket" : st.isFIFO() ? "fifo"
    : st.isCharacterDevice() ? "chr" : st.isBlockDevice() ? "blk" : st.isSymbolicLink() ? "link" : "anon";
}
`;

/** A Python attack: `body` is the handler's body, written at any indentation. */
export function py(body: string): string {
  const indented = dedent(body)
    .split("\n")
    .map((l) => (l ? `    ${l}` : l))
    .join("\n");
  return `${PY_HELPERS}\ndef handler(request):\n${indented}\n`;
}

/** A Node attack: `body` is the body of an async handler (CommonJS). */
export function js(body: string): string {
  return `${JS_HELPERS}\nmodule.exports = async function handler(request) {\n${body}\n};\n`;
}

/** One attack written twice, in the runtime's own words. */
export const attack = (runtime: Runtime, python: string, node: string) => (runtime === "python" ? py(python) : js(node));

let isolation: Isolation = "invocation";
/**
 * Runs this file's attacks with the given isolation (escapes/warm/ runs every attack again in warm
 * instances). Called at a test file's top level, before its tests run.
 */
export function useIsolation(chosen: Isolation): void {
  isolation = chosen;
}
/** The isolation this file's attacks run with, for the few tests whose expectations differ. */
export const currentIsolation = (): Isolation => isolation;

/**
 * The spec with this file's isolation. In warm instances, each distinct attack (code and settings)
 * is a function version of its own, so running the same attack again reuses its warm instance.
 */
function isolated(given: InvocationSpec): InvocationSpec {
  if (isolation === "invocation" || given.isolation !== undefined) return given;
  const { request: _request, ...settings } = given;
  const digest = crypto.createHash("sha256").update(JSON.stringify(settings)).digest("hex").slice(0, 16);
  return { ...given, isolation, version: { name: `attack-${digest}`, version: 1, maxConcurrency: null } };
}

/** Runs code in this file's sandbox. */
export const run = (runtime: Runtime, code: string, overrides: Partial<InvocationSpec> = {}): Promise<InvocationResult> =>
  sandbox.run(isolated(spec(runtime, code, overrides)));

/**
 * Runs an attack that must end normally and returns what the attacker reported. The default
 * type is an any-record: the attacks report free-form JSON and the tests index into it.
 */
export async function observe<T = Json>(runtime: Runtime, code: string, overrides: Partial<InvocationSpec> = {}): Promise<T> {
  const result = await run(runtime, code, overrides);
  expect(result.status, bodyText(result)).toBe("ok");
  return bodyJson<T>(result);
}

/** The file's sandbox as /healthz shows it. */
export function sandboxHealth(): ReturnType<Sandbox["health"]> {
  return sandbox.health();
}

/**
 * Observes `code` (which reports its `uid`) in the slot whose uid is `uid`, when it can: free slots
 * are taken least recently used first, so it runs once per slot at most until one lands there.
 * Returns the last observation (a warm function keeps its own instance's slot, so never lands there).
 */
export async function observeInSlot(uid: number, runtime: Runtime, code: string): Promise<Json> {
  let observed = await observe(runtime, code);
  for (let tries = 1; observed.uid !== uid && tries < MAX_CONCURRENCY; tries++) observed = await observe(runtime, code);
  return observed;
}

/** What the attacker saw, normalised over both runtimes: { ok, code }. */
// any: an attack's report is free-form JSON from either runtime (errno in Python, code in Node).
export function outcome(observed: Json): { ok: boolean; code: string | null } {
  return { ok: observed.ok, code: observed.errno ?? observed.code ?? null };
}

/** Whether a process still exists on the host. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Finds the host pid of a sandboxed process by the thread name it gave itself and its uid. */
export async function findSandboxedProcess(comm: string, timeoutMs = 5000): Promise<{ pid: number; uid: number }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== comm) continue;
        const uid = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${entry}/status`, "utf8"))![1]);
        if (uid >= UID_BASE && uid < UID_BASE + MAX_CONCURRENCY) return { pid: Number(entry), uid };
      } catch {
        // the process went away while we looked
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no sandboxed process named ${comm} appeared`);
}

/** Waits until a file shows up in some slot's /tmp, seen from the host. */
export async function waitForSlotFile(name: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (let k = 0; k < MAX_CONCURRENCY; k++) {
      const file = path.join(host.dataDir, "jail", "slots", String(k), "tmp", name);
      if (fs.existsSync(file)) return file;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${name} never appeared in a slot's /tmp`);
}

/** A TCP server on the host's loopback, standing for the gateway's own port. */
export async function greetingServer(): Promise<{ port: number; greeting: string; accepted: () => number; close: () => Promise<void> }> {
  const greeting = `fngw-greeting-${crypto.randomBytes(6).toString("hex")}`;
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    socket.end(`${greeting}\n`);
  });
  // On every interface: the host's loopback and its own external address.
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { port, greeting, accepted: () => accepted, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The host's first non-loopback IPv4 address, where the test server is reachable from outside loopback. */
export function externalAddress(): string {
  const address = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === "IPv4" && !a.internal)?.address;
  if (!address) throw new Error("this host has no non-loopback IPv4 address to test network access with");
  return address;
}

/** The path of the koffi addon the prescript loads (the test process has it mapped too: src/sandbox/libc.ts). */
export function koffiAddonPath(): string {
  const line = fs
    .readFileSync("/proc/self/maps", "utf8")
    .split("\n")
    .find((l) => /\/koffi[^/]*\.node$/.test(l) || l.endsWith("/koffi.node"));
  if (!line) throw new Error("koffi's addon is not mapped in the test process");
  return line.slice(line.indexOf("/"));
}

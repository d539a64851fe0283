import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect } from "vitest";

export type { Json } from "../json.js";

import type { Json } from "../json.js";

/**
 * The REAL gateway, started as `node --import tsx src/main.ts` in a child process and spoken to
 * only over HTTP. Each test file runs in a vitest worker of its own; every server a file starts
 * gets a block of sandbox uids no other worker (and no other server of the same file) uses.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const LISTENING = /fngw listening on http:\/\/[^:\s]+:(\d+)\b/;
const GENERATED_TOKEN = /^API token \(printed this once[^)]*\): (\S+)$/m;

/**
 * A uid block for the `index`-th server of this worker: 400000 + 1000 per worker + 100 per server,
 * shifted by TEST_UID_OFFSET so that two checkouts can run their suites on one machine at once.
 */
export function uidBase(index: number): number {
  const worker = Number(process.env.VITEST_POOL_ID ?? "1");
  return 400_000 + Number(process.env.TEST_UID_OFFSET ?? "0") + 1000 * worker + 100 * index;
}

export function tempDataDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "fngw-e2e-"));
}

export interface Server {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  readonly exited: Promise<number | string>;
  /** Sends SIGTERM and resolves with the exit code; SIGKILLs it if it does not end within `graceMs`. */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL: the gateway dies without any clean-up. */
  kill(): Promise<number | string>;
}

export interface StartOptions {
  /** Configuration; GATEWAY_TOKEN is only set when given. */
  env?: Record<string, string>;
  dataDir?: string;
  uidIndex?: number;
  /** Its own process group, so a test can signal the group as a supervisor would. */
  detached?: boolean;
}

/** Starts the gateway on a free port (PORT=0; the port is read from its listen line) and waits for /healthz to say ready. */
export async function startServer(options: StartOptions = {}): Promise<Server> {
  const dataDir = options.dataDir ?? tempDataDir();
  // A minimal environment, so nothing of the test runner's (or the machine's GATEWAY_TOKEN) leaks in.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    SANDBOX_UID_BASE: String(uidBase(options.uidIndex ?? 0)),
    ...options.env,
  };
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });

  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error("the gateway printed no listen line within 30 s")), 30_000);
    const onData = () => {
      const match = LISTENING.exec(out);
      if (match) {
        cleanUp();
        resolve(Number(match[1]));
      }
    };
    const onExit = (code: number | null, signal: string | null) =>
      fail(new Error(`the gateway exited (${code ?? signal}) before listening`));
    function fail(error: Error) {
      cleanUp();
      child.kill("SIGKILL");
      reject(new Error(`${error.message}\nstdout:\n${out}\nstderr:\n${err}`));
    }
    function cleanUp() {
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      child.off("exit", onExit);
    }
    child.stdout!.on("data", onData);
    child.on("exit", onExit);
  });

  let port: number;
  try {
    port = await listening;
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, "/healthz to answer 200");
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    if (!options.dataDir) removeDataDir(dataDir);
    throw error;
  }
  const url = `http://127.0.0.1:${port}`;

  const server: Server = {
    url,
    port,
    dataDir,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      child.kill("SIGKILL");
      return exited;
    },
  };
  return server;
}

/** The token printed on stdout at a first start without GATEWAY_TOKEN, or null. */
/** Runs a gateway that is expected to refuse to start; resolves with its exit code and output. */
export async function startRefused(env: Record<string, string>): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | string>((resolve) => child.on("exit", (c, signal) => resolve(c ?? signal ?? "unknown")));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Mount points at or below `dir`, from this process's mount table. */
export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

export function generatedToken(stdout: string): string | null {
  return GENERATED_TOKEN.exec(stdout)?.[1] ?? null;
}

/** Polls `check` every 25 ms until it holds; fails after `timeoutMs`, saying what it waited `for` (computed then). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const waitedFor = typeof what === "string" ? what : what();
      throw new Error(`timed out waiting for ${waitedFor}${lastError ? `: ${String(lastError)}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** fetch against one server, with its token (unless `token: null`) and a JSON body when `json` is given. */
export function client(base: () => string, defaultToken: () => string | null) {
  return async (pathname: string, init: RequestInit & { json?: unknown; token?: string | null } = {}): Promise<Response> => {
    const { json, token, ...rest } = init;
    const headers = new Headers(rest.headers);
    const presented = token === undefined ? defaultToken() : token;
    if (presented !== null && !headers.has("authorization")) headers.set("authorization", `Bearer ${presented}`);
    if (json !== undefined) headers.set("content-type", "application/json");
    return fetch(`${base()}${pathname}`, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
  };
}

export type Call = ReturnType<typeof client>;

/** Registers a function; fails with the server's answer unless it is 201. */
export async function register(call: Call, body: Json): Promise<Json> {
  const res = await call("/api/functions", { method: "POST", json: body });
  if (res.status !== 201) throw new Error(`register ${String(body.name)}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Json;
}

/** GET /api/invocations/:id as JSON; fails unless it is 200. */
export async function invocation(call: Call, id: string | null): Promise<Json> {
  expectId(id);
  const res = await call(`/api/invocations/${id}`);
  if (res.status !== 200) throw new Error(`invocation ${id}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Json;
}

function expectId(id: string | null): asserts id is string {
  if (!id) throw new Error("the response carried no x-invocation-id");
}

/**
 * Removes a data directory once its gateway has stopped and unmounted the jail. A directory with
 * something still mounted below it (a gateway that did not stop cleanly) is left alone: a recursive
 * delete would reach into the host directories bound into the jail.
 */
export function removeDataDir(dir: string): void {
  const mountPoints = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)));
  if (mountPoints.length > 0) {
    console.warn(`left ${dir} in place: still mounted there: ${mountPoints.join(", ")}`);
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * One gateway for a whole test file: started in beforeAll with `env` (GATEWAY_TOKEN = `token`),
 * stopped in afterAll, where it must exit 0. `python` and `node` register a function of that runtime.
 */
export function useGateway(token: string, env: Record<string, string> = {}) {
  let server: Server | undefined;
  const started = (): Server => {
    if (!server) throw new Error("the gateway has not started (beforeAll failed)");
    return server;
  };
  const call = client(
    () => started().url,
    () => token,
  );
  beforeAll(async () => {
    server = await startServer({ env: { GATEWAY_TOKEN: token, ...env } });
  });
  afterAll(async () => {
    if (!server) return;
    const code = await server.stop();
    removeDataDir(server.dataDir);
    expect(code, `stderr:\n${server.stderr()}`).toBe(0);
  });
  return {
    call,
    get server(): Server {
      return started();
    },
    /** Registers a Python function with the given code (and settings). */
    python: (name: string, code: string, settings: Json = {}) => register(call, { name, runtime: "python", code, ...settings }),
    /** Registers a JavaScript function with the given code (and settings). */
    node: (name: string, code: string, settings: Json = {}) => register(call, { name, runtime: "node", code, ...settings }),
  };
}

/** The answer's x-invocation-id, which every /fn answer that has a log row carries. */
export function invocationId(res: Response): string {
  const id = res.headers.get("x-invocation-id");
  expect(id, "x-invocation-id").toMatch(/^[0-9a-f-]{36}$/);
  return id!;
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** An answer read off a raw socket; `reset` when the connection was cut instead. */
export interface RawAnswer {
  status: number | null;
  headers: Record<string, string>;
  body: string;
  reset: boolean;
  /** Milliseconds from the request's first byte to the end of the connection. */
  elapsedMs: number;
}

/**
 * A request over a socket of its own, for what fetch cannot send: bodies in 1-byte chunks,
 * bodies that stall. `head` is the request line and headers (Connection: close is added);
 * `send` writes the body as it likes. The server closes after its answer, so the answer is
 * whatever arrived before the end.
 */
export function rawRequest(port: number, head: string, send: (socket: net.Socket) => Promise<void> | void = () => {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    let reset = false;
    socket.on("data", (chunk) => received.push(chunk));
    socket.on("error", () => (reset = true));
    socket.on("close", () => resolve({ ...parseAnswer(Buffer.concat(received)), reset, elapsedMs: performance.now() - started }));
    socket.on("connect", () => {
      socket.write(`${head.trimEnd()}\r\nConnection: close\r\n\r\n`);
      Promise.resolve(send(socket)).catch(() => socket.destroy());
    });
  });
}

/** Writes `data` and waits for the socket to take it (backpressure), unless the socket is gone. */
export function writeAll(socket: net.Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return reject(new Error("socket closed"));
    if (socket.write(data)) return resolve();
    const onDrain = () => {
      socket.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      socket.off("drain", onDrain);
      reject(new Error("socket closed"));
    };
    socket.once("drain", onDrain);
    socket.once("close", onClose);
  });
}

/** Sends `bytes` bytes of `fill` as a chunked body in 1-byte chunks, in writes of about 64 KiB, then the last chunk. */
export async function sendOneByteChunks(socket: net.Socket, bytes: number, fill = "x"): Promise<void> {
  const perWrite = 10_000;
  const block = Buffer.from(`1\r\n${fill}\r\n`.repeat(perWrite));
  for (let sent = 0; sent < bytes; sent += perWrite) {
    const count = Math.min(perWrite, bytes - sent);
    await writeAll(socket, count === perWrite ? block : block.subarray(0, count * 6));
  }
  await writeAll(socket, "0\r\n\r\n");
}

/** Status, headers and body of an HTTP/1.1 answer (Content-Length or read to the end; chunked decoded). */
function parseAnswer(raw: Buffer): Pick<RawAnswer, "status" | "headers" | "body"> {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return { status: null, headers: {}, body: "" };
  const [statusLine = "", ...lines] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers["transfer-encoding"] === "chunked") {
    const parts: Buffer[] = [];
    for (let at = 0; ; ) {
      const lineEnd = body.indexOf("\r\n", at);
      const size = lineEnd < 0 ? 0 : parseInt(body.subarray(at, lineEnd).toString("latin1"), 16);
      if (!size) break;
      parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers["content-length"] !== undefined) {
    body = body.subarray(0, Number(headers["content-length"]));
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? NaN) || null, headers, body: body.toString("utf8") };
}

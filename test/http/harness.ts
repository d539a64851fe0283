import fs from "node:fs";
import { expect } from "vitest";
import os from "node:os";
import path from "node:path";
import { loadConfig, type Config } from "../../src/core/config.js";
import { openDatabase, type OpenedDatabase } from "../../src/db/client.js";
import { loadSecretBox } from "../../src/db/secrets.js";
import { createStores, type Stores } from "../../src/db/stores.js";
import { createApp, type App } from "../../src/http/app.js";
import { provisionToken } from "../../src/http/middleware/auth.js";
import type { RunnerHealth as SandboxHealth } from "../../src/core/runner.js";
import { Admission } from "../../src/http/admission.js";
import type { InvocationResult, InvocationSpec, Runner, SandboxResponse, SyntaxProblem } from "../../src/core/runner.js";
import type { Runtime } from "../../src/core/runtimes.js";
import { resolveInterpreters, type Interpreters } from "../../src/sandbox/binaries.js";
import { checkSyntax } from "../../src/sandbox/syntax.js";

let interpreters: Interpreters | undefined;

export const TOKEN = "test-token-0123456789abcdef";
export const auth = { authorization: `Bearer ${TOKEN}` };

/**
 * TEST STAND-IN, NOT A SANDBOX: a deterministic Runner that answers from a script, used only to
 * test the HTTP mapping and the invocation log. Real sandboxed invocations are tested end to end
 * against src/sandbox.
 */
export class ScriptedRunner implements Runner {
  readonly calls: InvocationSpec[] = [];
  /** What the next run does; by default it echoes the request as JSON. */
  script: (spec: InvocationSpec) => InvocationResult | Promise<InvocationResult> = (spec) =>
    okResult({ body: Buffer.from(JSON.stringify({ path: spec.request.path })) });

  async run(spec: InvocationSpec): Promise<InvocationResult> {
    this.calls.push(spec);
    return this.script(spec);
  }

  /** The real check, with the real interpreters: registration's syntax errors are not scripted. */
  checkSyntax(runtime: Runtime, code: string): Promise<SyntaxProblem | null> {
    interpreters ??= resolveInterpreters(loadConfig({}).PYTHON_BIN, process.execPath);
    return checkSyntax(interpreters, runtime, code);
  }

  get last(): InvocationSpec {
    const spec = this.calls.at(-1);
    if (!spec) throw new Error("the runner was never called");
    return spec;
  }
}

export function result(overrides: Partial<InvocationResult>): InvocationResult {
  return {
    status: "ok",
    exitCode: 0,
    signal: null,
    durationMs: 12,
    stdout: { data: Buffer.alloc(0), truncated: false },
    stderr: { data: Buffer.alloc(0), truncated: false },
    blockedSyscall: null,
    errorMessage: null,
    response: null,
    ...overrides,
  };
}

export function okResult(response: Partial<SandboxResponse>, overrides: Partial<InvocationResult> = {}): InvocationResult {
  return result({
    response: { status: 200, headers: [["content-type", "application/json"]], body: Buffer.alloc(0), ...response },
    ...overrides,
  });
}

export interface Gateway {
  app: App;
  config: Config;
  database: OpenedDatabase;
  stores: Stores;
  runner: ScriptedRunner;
  admission: Admission;
  dataDir: string;
  /** The clock the log and the stats use; tests move it. */
  clock: { now: number };
  health: { value: SandboxHealth };
  /** app.request with the token (unless `token: null`) and a JSON body when `json` is given. */
  call(pathname: string, init?: RequestInit & { json?: unknown; token?: string | null }): Promise<Response>;
  close(): void;
}

/** A fresh gateway over a real SQLite database in a temporary directory. */
export function makeGateway(env: Record<string, string> = {}): Gateway {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-http-"));
  const config = loadConfig({ DATA_DIR: dataDir, GATEWAY_TOKEN: TOKEN, ...env });
  const database = openDatabase(config.DB_PATH);
  const clock = { now: Date.parse("2030-01-01T00:00:00Z") };
  const stores = createStores(database, loadSecretBox(config).box, { now: () => clock.now });
  provisionToken(stores.tokens, TOKEN);
  const runner = new ScriptedRunner();
  const admission = new Admission(config.MAX_CONCURRENCY + config.QUEUE_LIMIT);
  const health = { value: { ready: true, slots: 4 } as SandboxHealth };
  const app = createApp({
    config,
    stores,
    runner,
    health: () => health.value,
    admission,
    now: () => clock.now,
  });
  return {
    app,
    config,
    database,
    stores,
    runner,
    admission,
    dataDir,
    clock,
    health,
    call(pathname, init = {}) {
      const { json, token, ...rest } = init;
      const headers = new Headers(rest.headers);
      const presented = token === undefined ? TOKEN : token;
      if (presented !== null && !headers.has("authorization")) headers.set("authorization", `Bearer ${presented}`);
      if (json !== undefined) headers.set("content-type", "application/json");
      return Promise.resolve(
        app.request(pathname, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body }),
      );
    },
    close() {
      database.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const PY_HELLO = 'def handler(request):\n    return {"hello": "world"}\n';

/** Registers a function with sensible defaults; fails the test if that does not give 201. */
export async function register(gw: Gateway, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await gw.call("/api/functions", { method: "POST", json: { runtime: "python", code: PY_HELLO, ...body } });
  if (res.status !== 201) throw new Error(`register ${String(body.name)}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

export type Json = Record<string, any>; // test-side view of response bodies: any keeps the assertions short

/** Expects the error shape with `status` and `code` (and a message matching `messagePart`); returns the body. */
export async function expectError(res: Response, status: number, code: string, messagePart?: string | RegExp): Promise<Json> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${res.status}: ${text}`);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  const json = JSON.parse(text) as Json;
  expect(json.error.code).toBe(code);
  expect(json.error.message).not.toMatch(/\n\s+at /); // never a stack trace
  if (messagePart) expect(json.error.message).toMatch(messagePart);
  return json;
}

/** Invokes /fn/<name> and returns the env the runner was handed. */
export async function envSeenBy(gw: Gateway, name: string): Promise<Record<string, string>> {
  const res = await gw.call(`/fn/${name}`);
  if (res.status !== 200) throw new Error(`/fn/${name}: ${res.status} ${await res.text()}`);
  return gw.runner.last.env;
}

/** Whether `needle` occurs anywhere in the database's files (main, WAL, shared memory). */
export function databaseFilesContain(gw: Gateway, needle: string): boolean {
  const file = gw.config.DB_PATH;
  return [file, `${file}-wal`, `${file}-shm`].some((f) => fs.existsSync(f) && fs.readFileSync(f).includes(Buffer.from(needle)));
}

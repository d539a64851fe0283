import fs from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { serve } from "@hono/node-server";
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import { expect, inject, it } from "vitest";
import { type Cluster, joinCluster } from "../../src/cluster/index.js";
import { type Config, loadConfig } from "../../src/core/config.js";
import type {
  InvocationResult,
  InvocationSpec,
  Runner,
  RunOptions,
  RunnerHealth as SandboxHealth,
  SandboxResponse,
  SyntaxProblem,
} from "../../src/core/runner.js";
import type { Runtime } from "../../src/core/runtimes.js";
import { Admission } from "../../src/http/admission.js";
import { type App, createApp } from "../../src/http/app.js";
import { answerClientErrorsAsJson } from "../../src/http/client-error.js";
import { provisionToken } from "../../src/http/middleware/auth.js";
import { createJobs, type Jobs } from "../../src/jobs/index.js";
import type { FunctionEnvironments } from "../../src/packages/function-environments.js";
import { type Interpreters, resolveInterpreters } from "../../src/sandbox/binaries.js";
import { checkSyntax } from "../../src/sandbox/syntax.js";
import { TypeScriptCompiler } from "../../src/sandbox/typescript.js";
import type { Store } from "../../src/store/contract.js";
import { openStore } from "../../src/store/index.js";
import { loadSecretBox } from "../../src/store/secrets.js";
import type { SqliteStore } from "../../src/store/sqlite/index.js";
import { ENGINE, postgresSql, sqliteSql, testDatabaseUrl } from "../store/harness.js";

export type { Json } from "../json.js";

import type { Json } from "../json.js";

let interpreters: Interpreters | undefined;
let typescript: TypeScriptCompiler | undefined;

export const TOKEN = "test-token-0123456789abcdef";
export const auth = { authorization: `Bearer ${TOKEN}` };

/**
 * TEST STAND-IN, NOT A SANDBOX: a deterministic Runner that answers from a script, used only to
 * test the HTTP mapping and the invocation log. Real sandboxed invocations are tested end to end
 * against src/sandbox.
 */
export class ScriptedRunner implements Runner {
  readonly calls: InvocationSpec[] = [];
  /** The functions whose warm instances the gateway asked to stop (deletions). */
  readonly retired: string[] = [];
  /** What the next run does (a script may stream through `options`); by default it echoes the request as JSON. */
  script: (spec: InvocationSpec, options: RunOptions) => InvocationResult | Promise<InvocationResult> = (spec) =>
    okResult({ body: Buffer.from(JSON.stringify({ path: spec.request.path })) });

  async run(spec: InvocationSpec, options: RunOptions = {}): Promise<InvocationResult> {
    this.calls.push(spec);
    return this.script(spec, options);
  }

  retire(functionName: string): void {
    this.retired.push(functionName);
  }

  /** The real check, with the real interpreters and compiler: registration's syntax errors are not scripted. */
  checkSyntax(runtime: Runtime, code: string): Promise<SyntaxProblem | null> {
    interpreters ??= resolveInterpreters(loadConfig({}).PYTHON_BIN, process.execPath);
    typescript ??= new TypeScriptCompiler(interpreters.node.version);
    if (runtime === "typescript") return typescript.check(code);
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
    deniedSyscalls: [],
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

export { ENGINE };

export interface Gateway {
  app: App;
  config: Config;
  store: Store;
  cluster: Cluster;
  runner: ScriptedRunner;
  admission: Admission;
  /** The job runtime (worker, callbacks, scheduler) on the test's clock; jitter fixed at none (random 0.5). */
  jobs: Jobs;
  dataDir: string;
  /** The clock the log and the stats use; tests move it. */
  clock: { now: number };
  health: { value: SandboxHealth };
  /** app.request with the token (unless `token: null`) and a JSON body when `json` is given. */
  call(pathname: string, init?: RequestInit & { json?: unknown; token?: string | null }): Promise<Response>;
  /** One invocation's log row, its columns by their SQL names (after the log's pending writes). */
  logRow(id: string | null): Promise<Json | undefined>;
  /** Rows in the invocation log. */
  logCount(): Promise<number>;
  /** Runs raw SQL on the database (written for both engines) and returns its rows. */
  sql(text: string): Promise<Record<string, unknown>[]>;
  /** The SQL statements the store ran while `work` ran. */
  queriesDuring(work: () => Promise<unknown>): Promise<string[]>;
  close(): Promise<void>;
}

/** A fresh gateway over a real database (SQLite in a temporary directory, or a new PostgreSQL database). */
export async function makeGateway(
  env: Record<string, string> = {},
  options: { packages?: (gateway: { store: Store; cluster: Cluster }) => Promise<FunctionEnvironments> } = {},
): Promise<Gateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-http-"));
  const databaseUrl = await testDatabaseUrl();
  const config = loadConfig({ DATA_DIR: dataDir, GATEWAY_TOKEN: TOKEN, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}), ...env });
  const clock = { now: Date.parse("2030-01-01T00:00:00Z") };
  const observed: { queries: string[] | null } = { queries: null };
  const box = loadSecretBox(config).box;
  const store = await openStore(config, box, { onQuery: (text) => observed.queries?.push(text) });
  const admission = new Admission(config.MAX_CONCURRENCY + config.QUEUE_LIMIT);
  const cluster = await joinCluster(store, {
    dataDir,
    version: "test",
    leaseMs: config.NODE_LEASE_MS,
    maxOutputBytes: config.LOG_OUTPUT_MAX_BYTES,
    spoolMaxBytes: config.SPOOL_MAX_MB * 1024 * 1024,
    inFlight: () => admission.size,
    now: () => clock.now,
  });
  await provisionToken(cluster.tokens, TOKEN);
  const runner = new ScriptedRunner();
  const health = { value: { ready: true, slots: 4 } as SandboxHealth };
  const packages = await options.packages?.({ store, cluster });
  const jobs = createJobs({
    config,
    store,
    cluster,
    runner,
    slots: admission,
    box,
    packages,
    now: () => clock.now,
    random: () => 0.5,
    schedulerTimer: false,
  });
  const app = createApp({
    config,
    store,
    cluster,
    runner,
    health: () => health.value,
    admission,
    now: () => clock.now,
    packages,
    jobs: jobs.queue,
    jobsRunning: () => jobs.worker.active,
  });
  await jobs.start();
  const raw = databaseUrl ? postgresSql(databaseUrl) : null;
  const sql = raw ?? sqliteSql(store as SqliteStore);
  return {
    app,
    config,
    store,
    cluster,
    runner,
    admission,
    jobs,
    dataDir,
    clock,
    health,
    call(pathname, init = {}) {
      const { json, token, ...rest } = init;
      const headers = new Headers(rest.headers);
      const presented = token === undefined ? TOKEN : token;
      if (presented !== null && !headers.has("authorization")) headers.set("authorization", `Bearer ${presented}`);
      if (json !== undefined) headers.set("content-type", "application/json");
      return Promise.resolve(app.request(pathname, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body }));
    },
    async logRow(id) {
      await cluster.log.flush();
      const row = id === null ? undefined : await store.invocations.get(id);
      return (
        row && Object.fromEntries(Object.entries(row).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value]))
      );
    },
    async logCount() {
      await cluster.log.flush();
      const [row] = await sql("select count(*) as n from invocations");
      return Number(row?.n);
    },
    sql,
    async queriesDuring(work) {
      observed.queries = [];
      try {
        await work();
        return observed.queries;
      } finally {
        observed.queries = null;
      }
    },
    async close() {
      await jobs.stop();
      await cluster.leave();
      await raw?.end();
      await store.close();
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

/**
 * One row of a table-driven API scenario, after PocketBase's tests/api.go: a name, a request, the
 * expected status and what the body must contain.
 */
export interface Scenario {
  name: string;
  /** GET unless given. */
  method?: string;
  url: string;
  /** A JSON body (sent with Content-Type: application/json). */
  json?: unknown;
  /** A raw body, sent as is (with whatever `headers` say). */
  body?: RequestInit["body"];
  headers?: Record<string, string>;
  /** The token presented; the gateway's own unless given, none with null. */
  token?: string | null;
  /** State the row needs, set up just before its request. */
  before?: (gw: Gateway) => unknown;
  expectedStatus: number;
  /**
   * The error code of an error answer. Every answer of 400 or more is checked to be the error
   * shape {"error": {"code", "message"}} as JSON, with no stack trace in the message.
   */
  expectedError?: string;
  /** What error.message must match, each of them. */
  expectedMessage?: RegExp | string | (RegExp | string)[];
  /** Fragments the raw body must contain. */
  expectedContent?: string[];
  /** Response headers: a string must be the exact value, a RegExp must match it. */
  expectedHeaders?: Record<string, string | RegExp>;
  /** Further checks of what the request did (log rows, runner calls), after the ones above. */
  after?: (gw: Gateway, res: Response, body: string) => unknown;
}

/** Runs each row as a test of its own, against the gateway `gw()` gives when the row runs. */
export function runScenarios(gw: () => Gateway, rows: Scenario[]): void {
  for (const row of rows) {
    it(row.name, async () => {
      const gateway = gw();
      await row.before?.(gateway);
      const init: RequestInit & { json?: unknown; token?: string | null } = { method: row.method ?? "GET" };
      if (row.headers) init.headers = row.headers;
      if (row.json !== undefined) init.json = row.json;
      if (row.body !== undefined) init.body = row.body;
      if (row.token !== undefined) init.token = row.token;
      const res = await gateway.call(row.url, init);
      const text = await res.text();
      expect(res.status, text).toBe(row.expectedStatus);
      for (const [name, value] of Object.entries(row.expectedHeaders ?? {})) {
        if (typeof value === "string") expect(res.headers.get(name), name).toBe(value);
        else expect(res.headers.get(name), name).toMatch(value);
      }
      for (const fragment of row.expectedContent ?? []) expect(text).toContain(fragment);
      if (row.expectedStatus >= 400) {
        expect(res.headers.get("content-type")).toMatch(/application\/json/);
        const { error } = JSON.parse(text) as { error: { code: unknown; message: unknown } };
        if (row.expectedError !== undefined) expect(error.code).toBe(row.expectedError);
        expect(typeof error.code).toBe("string");
        expect(typeof error.message).toBe("string");
        expect(error.message).not.toMatch(/\n\s+at /); // never a stack trace
        const messages = row.expectedMessage === undefined ? [] : [row.expectedMessage].flat();
        for (const message of messages) expect(error.message).toMatch(message);
      }
      await row.after?.(gateway, res, text);
    });
  }
}

/**
 * Serves the gateway's app on a free loopback port through the same Node adapter as the real
 * server, so answers go through Node's writeHead (which refuses what `Response` accepts).
 */
export async function listen(gw: Gateway): Promise<{ url: string; close(): Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: gw.app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => {
      answerClientErrorsAsJson(server as Server);
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            if ("closeAllConnections" in server) server.closeAllConnections();
          }),
      });
    });
  });
}

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

/** A file's bytes, or undefined when the server removed it after it was listed (its caches, stats, recycled WAL). */
function readIfPresent(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Every file below `dir`. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

/** Whether `needle` occurs anywhere in the database's files (SQLite: main, WAL, shared memory; PostgreSQL: the cluster's files, WAL included). */
export async function databaseFilesContain(gw: Gateway, needle: string): Promise<boolean> {
  if (ENGINE === "postgres") {
    await gw.sql("checkpoint"); // every page written out to the cluster's files
    return filesUnder(inject("postgresDataDir")).some((f) => readIfPresent(f)?.includes(Buffer.from(needle)));
  }
  (gw.store as SqliteStore).connection.sqlite.pragma("wal_checkpoint(PASSIVE)");
  const file = gw.config.DB_PATH;
  return [file, `${file}-wal`, `${file}-shm`].some((f) => fs.existsSync(f) && fs.readFileSync(f).includes(Buffer.from(needle)));
}

/**
 * A /metrics answer parsed with a Prometheus text-format parser (it throws on a malformed line).
 * `value(name, labels)` is the value of the sample of `name` whose labels include `labels`, or
 * undefined. The parser folds a labelled histogram into one object without its labels, so
 * samples are also read with the histogram TYPE lines left out: then `x_bucket` (with `le`),
 * `x_sum` and `x_count` are samples like any other.
 */
export function parseMetrics(text: string): {
  families: PromFamily[];
  value(name: string, labels?: Record<string, string>): number | undefined;
} {
  const families = parsePrometheusTextFormat(text);
  const samples = parsePrometheusTextFormat(text.replace(/^# TYPE \S+ histogram\n/gm, ""));
  return {
    families,
    value(name, labels = {}) {
      // Without TYPE lines a histogram's series split into one family per run of lines: look in each.
      const sample = samples
        .filter((f) => f.name === name)
        .flatMap((f) => f.metrics)
        .find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
      return sample?.value === undefined ? undefined : Number(sample.value);
    },
  };
}

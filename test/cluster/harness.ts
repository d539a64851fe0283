import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { createDatabase, type PostgresServer, startPostgres } from "../../scripts/postgres.js";
import { type Call, client, removeDataDir, type Server, startServer, uidEnv, waitFor } from "../e2e/harness.js";
import type { Json } from "../json.js";

export type { Json } from "../json.js";

/**
 * Several REAL gateways (child processes, as in test/e2e) on one REAL PostgreSQL server started
 * for the file: each gateway has its own data dir, port and uid block.
 */

export const TOKEN = "cluster-test-token-0123456789";
/** Every gateway on one database seals env values with the same key. */
export const SECRETS_KEY = crypto.randomBytes(32).toString("base64");

export interface Node {
  server: Server;
  call: Call;
  /** Its node id (from /api/nodes). */
  id: string;
}

export interface Cluster {
  postgres: PostgresServer;
  databaseUrl: string;
  nodes: Node[];
  /** Starts one more gateway on the database (uid block `index`), or again on an old one's data dir. */
  start(index: number, dataDir?: string): Promise<Node>;
  stop(): Promise<void>;
}

/** A PostgreSQL server and `count` gateways on one database of it, started together (they migrate the fresh database at once). */
export async function startCluster(count: number, env: Record<string, string> = {}): Promise<Cluster> {
  const postgres = await startPostgres();
  const databaseUrl = await createDatabase(postgres.url);
  const start = async (index: number, dataDir?: string): Promise<Node> => {
    const server = await startServer({
      env: { GATEWAY_TOKEN: TOKEN, SECRETS_KEY, DATABASE_URL: databaseUrl, ...env },
      uidIndex: index,
      dataDir,
    });
    const call = client(
      () => server.url,
      () => TOKEN,
    );
    const nodes = (await (await call("/api/nodes")).json()) as { items: { id: string; self: boolean }[] };
    const self = nodes.items.find((node) => node.self);
    if (!self) throw new Error(`gateway ${index} is not in its own /api/nodes`);
    return { server, call, id: self.id };
  };
  const started = await Promise.allSettled(Array.from({ length: count }, (_, index) => start(index)));
  const nodes = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const failed = started.find((result) => result.status === "rejected");
  if (failed) {
    // None is left running behind a failed start.
    await Promise.all(nodes.map(({ server }) => server.stop()));
    postgres.stop();
    throw failed.reason;
  }
  return {
    postgres,
    databaseUrl,
    nodes,
    start,
    async stop() {
      await Promise.all(
        nodes.map(async ({ server }) => {
          await server.stop();
          removeDataDir(server.dataDir);
        }),
      );
      postgres.stop();
    },
  };
}

/** One answered invocation: its id and HTTP status, or the error that kept it from being answered. */
export interface Answer {
  node: number;
  status: number | null;
  id: string | null;
  error?: string;
}

/**
 * `total` requests to /fn/<name>, spread round-robin over `nodes` (indexes into the cluster),
 * `perNode` at a time on each; `pause` is awaited before each request (a test holds it to act
 * mid-load). Resolves with every answer, in no particular order.
 */
export async function load(
  cluster: Cluster,
  options: {
    name: string;
    total: number;
    perNode: number;
    nodes: number[];
    token?: string | null;
    before?: (n: number) => Promise<void> | void;
  },
): Promise<Answer[]> {
  const answers: Answer[] = [];
  // Request n goes to options.nodes[n % nodes.length]; each node's workers take its requests in turn.
  const queues = options.nodes.map((node, k) => ({ node, next: k }));
  const worker = async (queue: { node: number; next: number }) => {
    while (queue.next < options.total) {
      const n = queue.next;
      queue.next += options.nodes.length;
      await options.before?.(n);
      try {
        const res = await cluster.nodes[queue.node]!.call(`/fn/${options.name}`, { token: options.token });
        await res.arrayBuffer();
        answers.push({ node: queue.node, status: res.status, id: res.headers.get("x-invocation-id") });
      } catch (error) {
        answers.push({ node: queue.node, status: null, id: null, error: String(error) });
      }
    }
  };
  await Promise.all(queues.flatMap((queue) => Array.from({ length: options.perNode }, () => worker(queue))));
  return answers;
}

/** Every log row of a function as node `call` lists it (page by page). */
export async function logOf(call: Call, name: string): Promise<Json[]> {
  const rows: Json[] = [];
  let cursor = "";
  for (;;) {
    const res = await call(`/api/invocations?function=${name}&limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: Json[]; next_cursor: string | null };
    rows.push(...page.items);
    if (!page.next_cursor) return rows;
    cursor = page.next_cursor;
  }
}

/** Waits until a node's log has handed its spool back (after the database was away). */
export async function spoolDrained(node: Node): Promise<void> {
  await waitFor(
    async () => {
      const health = (await (await fetch(`${node.server.url}/healthz`)).json()) as Json;
      return health.database?.database === "reachable" && health.database?.spooled_writes === 0;
    },
    `node ${node.id}'s spool to drain`,
    60_000,
  );
}

/** A package environment as a node keeps it on its own disk: its record and its lock. */
export function environmentOnDisk(node: Node, runtime: string, key: string): { record: Json; lock: string } | null {
  const dir = path.join(node.server.dataDir, "packages", runtime, key);
  if (!fs.existsSync(dir)) return null;
  return {
    record: JSON.parse(fs.readFileSync(path.join(dir, "environment.json"), "utf8")) as Json,
    lock: fs.existsSync(path.join(dir, "lock")) ? fs.readFileSync(path.join(dir, "lock"), "utf8") : "",
  };
}

/** How many of a node's log lines (pino JSON on stdout) have a message matching `pattern`. */
export function logLines(node: Node, pattern: RegExp): number {
  return node.server
    .stdout()
    .split("\n")
    .filter((line) => {
      try {
        return pattern.test((JSON.parse(line) as { msg?: string }).msg ?? "");
      } catch {
        return false;
      }
    }).length;
}

/**
 * Calls /fn/<name> on `node` until it answers 200 (once it knows the function: a 404 before that is
 * skipped); returns every answer before the 200, with its error code and Retry-After.
 */
export async function answersUntilReady(
  node: Node,
  name: string,
  timeoutMs: number,
): Promise<{ status: number; code: string | null; retryAfter: string | null; id: string | null }[]> {
  const answers: { status: number; code: string | null; retryAfter: string | null; id: string | null }[] = [];
  await waitFor(
    async () => {
      const res = await node.call(`/fn/${name}`);
      const body = await res.text();
      if (res.status === 200) return true;
      if (res.status !== 404 || answers.length > 0) {
        const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? null;
        answers.push({ status: res.status, code, retryAfter: res.headers.get("retry-after"), id: res.headers.get("x-invocation-id") });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      return false;
    },
    () => `/fn/${name} to answer 200 on node ${node.id} (answers so far: ${JSON.stringify(answers.slice(-3))})`,
    timeoutMs,
  );
  return answers;
}

/**
 * Waits until no process runs as gateway `index`'s installer uid (an install a SIGKILLed gateway
 * left running ends on its own), then removes that installer's staging directory.
 */
export async function installerEnded(index: number, timeoutMs: number): Promise<void> {
  const uid = Number(uidEnv(index).PACKAGES_UID);
  const running = () =>
    fs.readdirSync("/proc").some((entry) => {
      try {
        return /^\d+$/.test(entry) && fs.statSync(`/proc/${entry}`).uid === uid;
      } catch {
        return false; // ended meanwhile
      }
    });
  await waitFor(() => !running(), `the installer of gateway ${index} (uid ${uid}) to end`, timeoutMs);
  fs.rmSync(path.join(os.tmpdir(), `fngw-packages-${uid}`), { recursive: true, force: true });
}

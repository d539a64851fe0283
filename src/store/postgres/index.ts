import { sql as q } from "drizzle-orm";
import type { Change, EnvSealer, Store, StoreStatus } from "../contract.js";
import { connect, database, migrateLocked, type PostgresOptions } from "./client.js";
import { PostgresEnvironments } from "./environments.js";
import { type Notify, PostgresFunctions } from "./functions.js";
import { PostgresInvocations } from "./invocations.js";
import { PostgresJobs, PostgresSchedules } from "./jobs.js";
import { Listener } from "./listener.js";
import { PostgresNodes } from "./nodes.js";
import { PostgresSessions } from "./sessions.js";
import { PostgresSettings } from "./settings.js";
import { PostgresTokens } from "./tokens.js";

/** The channel every gateway on the database LISTENs on. */
export const CHANGES_CHANNEL = "fngw_changes";

type Subscriber = { listener: (change: Change) => void; onGap: () => void };

/**
 * The store on a PostgreSQL server, which several gateways share. Writes that others must hear of
 * NOTIFY inside their transaction (delivered at commit); each gateway LISTENs on one connection
 * of its own, connected again after a loss (then `onGap`: caches reload whole).
 */
export async function openPostgresStore(url: string, sealer: EnvSealer, options: PostgresOptions): Promise<Store> {
  await migrateLocked(url);
  const pool = connect(url, options);
  const db = database(pool, options.onQuery);
  const notify: Notify = async (tx, change) => {
    await tx.execute(q`select pg_notify(${CHANGES_CHANNEL}, ${JSON.stringify(change)})`);
  };
  const invocations = new PostgresInvocations(db);
  const jobs = new PostgresJobs(db);
  const subscribers = new Set<Subscriber>();
  let listener: Listener | null = null;
  const sizes = async () => {
    const { rows } = await pool.query<{ file: string; used: string }>(
      "select pg_database_size(current_database()) as file, (select bytes from log_usage where id = 1) as used",
    );
    return { file_bytes: Number(rows[0]?.file ?? 0), used_bytes: Number(rows[0]?.used ?? 0) };
  };
  return {
    functions: new PostgresFunctions(db, sealer, notify),
    invocations,
    tokens: new PostgresTokens(db, notify),
    sessions: new PostgresSessions(db, notify),
    settings: new PostgresSettings(db),
    nodes: new PostgresNodes(db, invocations),
    jobs,
    schedules: new PostgresSchedules(db, jobs),
    environments: new PostgresEnvironments(db, notify),
    changes: {
      subscribe(onChange, onGap) {
        const subscriber = { listener: onChange, onGap };
        subscribers.add(subscriber);
        listener ??= new Listener(
          url,
          CHANGES_CHANNEL,
          (payload) => {
            const change = JSON.parse(payload) as Change;
            for (const s of subscribers) s.listener(change);
          },
          () => {
            for (const s of subscribers) s.onGap();
          },
        );
        return () => {
          subscribers.delete(subscriber);
          if (subscribers.size === 0) {
            listener?.close();
            listener = null;
          }
        };
      },
    },
    remote: true,
    unavailable: isUnavailable,
    async exclusively(name, work) {
      // A session lock lives on one connection: hold one for the lock's whole life (an advisory key per name).
      const key = `fngw:${name}`;
      const client = await pool.connect();
      try {
        const { rows } = await client.query<{ held: boolean }>("select pg_try_advisory_lock(hashtextextended($1, 0)) as held", [key]);
        if (!rows[0]?.held) return undefined;
        try {
          return await work();
        } finally {
          await client.query("select pg_advisory_unlock(hashtextextended($1, 0))", [key]);
        }
      } finally {
        client.release();
      }
    },
    sizes,
    async status(): Promise<StoreStatus> {
      try {
        // A real write, as on SQLite: a read-only or full database shows here.
        await pool.query(
          "insert into settings (key, value) values ('health_probe', $1) on conflict (key) do update set value = excluded.value",
          [new Date().toISOString()],
        );
        return { ready: true, ...(await sizes()) };
      } catch (err) {
        return { ready: false, error: (err as Error).message, file_bytes: 0, used_bytes: 0 };
      }
    },
    async compact() {
      // Rewrites the versions' table, so no dead row keeps an env value sealed under the old key.
      await pool.query("vacuum full function_versions");
    },
    async close() {
      listener?.close();
      await pool.end();
    },
  };
}

/** Codes of a connection that failed or was lost: the system's, and PostgreSQL's class 08 and shutdowns. */
const LOST_CONNECTION = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
]);

/** node-postgres reports a lost or timed-out connection by message only. */
const LOST_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed/i;

function isUnavailable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (LOST_CONNECTION.has(code) || code.startsWith("08"))) return true;
    if (LOST_MESSAGE.test(e.message)) return true;
  }
  return false;
}

import { sql as q } from "drizzle-orm";
import type { Change, EnvSealer, Store, StoreStatus } from "../contract.js";
import { connect, database, migrateLocked, type PostgresOptions } from "./client.js";
import { type Notify, PostgresFunctions } from "./functions.js";
import { PostgresInvocations } from "./invocations.js";
import { PostgresNodes } from "./nodes.js";
import { PostgresSessions } from "./sessions.js";
import { PostgresSettings } from "./settings.js";
import { PostgresTokens } from "./tokens.js";

/** The channel every gateway on the database LISTENs on. */
export const CHANGES_CHANNEL = "fngw_changes";

/**
 * The store on a PostgreSQL server: several gateways share it. Writes that others must hear of
 * NOTIFY inside their transaction (delivered at commit); each gateway LISTENs on one connection
 * of its own, which the driver re-establishes after a loss (then `onGap`: caches reload whole).
 */
export async function openPostgresStore(url: string, sealer: EnvSealer, options: PostgresOptions): Promise<Store> {
  await migrateLocked(url);
  const sql = connect(url, options);
  const db = database(sql, options.onQuery);
  const notify: Notify = async (tx, change) => {
    await tx.execute(q`select pg_notify(${CHANGES_CHANNEL}, ${JSON.stringify(change)})`);
  };
  const invocations = new PostgresInvocations(db);
  const sizes = async () => {
    const [row] = await sql<{ file: string; used: string }[]>`
      select pg_database_size(current_database()) as file, (select bytes from log_usage where id = 1) as used`;
    return { file_bytes: Number(row?.file ?? 0), used_bytes: Number(row?.used ?? 0) };
  };
  return {
    functions: new PostgresFunctions(db, sealer, notify),
    invocations,
    tokens: new PostgresTokens(db, notify),
    sessions: new PostgresSessions(db, notify),
    settings: new PostgresSettings(db),
    nodes: new PostgresNodes(db, invocations),
    changes: {
      subscribe(listener, onGap) {
        let listening = false;
        const request = sql.listen(
          CHANGES_CHANNEL,
          (payload) => listener(JSON.parse(payload) as Change),
          () => {
            // Called on every (re)connection: after the first, notifications may have been missed.
            if (listening) onGap();
            listening = true;
          },
        );
        request.catch(() => onGap());
        return () => {
          void request.then((listen) => listen.unlisten()).catch(() => {});
        };
      },
    },
    remote: true,
    unavailable: isUnavailable,
    async exclusively(name, work) {
      // A session lock lives on one connection: hold one for the lock's whole life (an advisory key per name).
      const key = `fngw:${name}`;
      const reserved = await sql.reserve();
      try {
        const [row] = await reserved`select pg_try_advisory_lock(hashtextextended(${key}, 0)) as held`;
        if (!row?.held) return undefined;
        try {
          return await work();
        } finally {
          await reserved`select pg_advisory_unlock(hashtextextended(${key}, 0))`;
        }
      } finally {
        reserved.release();
      }
    },
    sizes,
    async status(): Promise<StoreStatus> {
      try {
        // A real write, as on SQLite: a read-only or full database shows here.
        await db.execute(
          q`insert into settings (key, value) values ('health_probe', ${new Date().toISOString()}) on conflict (key) do update set value = excluded.value`,
        );
        return { ready: true, ...(await sizes()) };
      } catch (err) {
        return { ready: false, error: (err as Error).message, file_bytes: 0, used_bytes: 0 };
      }
    },
    async compact() {
      // Rewrites the versions' table, so no dead row keeps an env value sealed under the old key.
      await sql`vacuum full function_versions`;
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}

/** Errors of a connection that failed or was lost (the driver's codes, PostgreSQL's class 08, a server shutting down). */
const LOST_CONNECTION = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
]);

function isUnavailable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (LOST_CONNECTION.has(code) || code.startsWith("08"))) return true;
  }
  return false;
}

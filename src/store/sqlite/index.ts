import { EventEmitter } from "node:events";
import type { Change, EnvSealer, Store, StoreOptions, StoreStatus } from "../contract.js";
import { fileBytes, openSqlite, queueBytes, type SqliteConnection, usedBytes } from "./client.js";
import { SqliteEnvironments } from "./environments.js";
import { SqliteFunctions } from "./functions.js";
import { SqliteInvocations } from "./invocations.js";
import { SqliteJobs, SqliteSchedules } from "./jobs.js";
import { SqliteNodes } from "./nodes.js";
import { BackgroundReader } from "./reader.js";
import { SqliteSessions } from "./sessions.js";
import { SqliteSettings } from "./settings.js";
import { SqliteTokens } from "./tokens.js";

/** The store in one SQLite file (DATA_DIR/gateway.db): the embedded engine, one gateway. */
export interface SqliteStore extends Store {
  /** The connection, for tests that look at the file itself. */
  readonly connection: SqliteConnection;
}

export function openSqliteStore(file: string, sealer: EnvSealer, options: StoreOptions = {}): SqliteStore {
  const connection = openSqlite(file, options.onQuery);
  const { db, sqlite } = connection;
  // One process writes this file, so every change is heard here, after its commit.
  const emitter = new EventEmitter().setMaxListeners(0);
  const publish = (change: Change) => emitter.emit("change", change);
  const reader = file === ":memory:" ? null : new BackgroundReader(file);
  const invocations = new SqliteInvocations(db, {
    readInBackground:
      reader?.read ??
      (async ({ sql, params }) =>
        sqlite
          .prepare(sql)
          .raw()
          .all(...params) as unknown[][]),
    // What LOG_MAX_MB bounds: the pages in use, less the job queue's (bounded on their own).
    usedBytes: () => usedBytes(sqlite) - queueBytes(sqlite),
  });
  // /healthz writes for real: a full disk or a read-only file shows up here, not only in a failed invocation.
  const probe = sqlite.prepare(
    "insert into settings (key, value) values ('health_probe', ?) on conflict (key) do update set value = excluded.value",
  );
  const held = new Set<string>();
  const jobs = new SqliteJobs(db);
  return {
    connection,
    functions: new SqliteFunctions(db, sealer, publish),
    invocations,
    tokens: new SqliteTokens(db, publish),
    sessions: new SqliteSessions(db, publish),
    settings: new SqliteSettings(db),
    nodes: new SqliteNodes(db, invocations),
    jobs,
    schedules: new SqliteSchedules(db, jobs),
    environments: new SqliteEnvironments(db, publish),
    changes: {
      subscribe(listener) {
        emitter.on("change", listener);
        return () => emitter.off("change", listener);
      },
    },
    remote: false,
    unavailable: () => false,
    async exclusively(name, work) {
      if (held.has(name)) return undefined;
      held.add(name);
      try {
        return await work();
      } finally {
        held.delete(name);
      }
    },
    async sizes() {
      return { file_bytes: fileBytes(file), used_bytes: usedBytes(sqlite) };
    },
    async status(): Promise<StoreStatus> {
      const sizes = { file_bytes: fileBytes(file), used_bytes: usedBytes(sqlite) };
      try {
        probe.run(new Date().toISOString());
        return { ready: true, ...sizes };
      } catch (err) {
        return { ready: false, error: (err as Error).message, ...sizes };
      }
    },
    async backup(target) {
      await sqlite.backup(target);
    },
    async compact() {
      if (file === ":memory:") return;
      sqlite.exec("VACUUM");
      sqlite.pragma("wal_checkpoint(TRUNCATE)");
    },
    async close() {
      // The file first, synchronously: a process exiting calls this without waiting.
      if (sqlite.open) {
        sqlite.pragma("optimize");
        sqlite.close();
      }
      await reader?.close();
    },
  };
}

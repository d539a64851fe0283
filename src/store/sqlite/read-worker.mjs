// @ts-check
/**
 * A read-only connection on a thread of its own. Queries that may read many rows (stats over a
 * long window) run here, so the event loop that serves invocations never waits on them.
 * Plain JavaScript so that every runner (node, tsx, vitest) can start it as a Worker as it is.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const db = new Database(workerData.file, { readonly: true, fileMustExist: true });
db.pragma("busy_timeout = 5000");

parentPort?.on("message", (/** @type {{ id: number; sql: string; params: unknown[] }} */ message) => {
  try {
    const rows = db
      .prepare(message.sql)
      .raw()
      .all(...message.params);
    parentPort?.postMessage({ id: message.id, rows });
  } catch (error) {
    parentPort?.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});

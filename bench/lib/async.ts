import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import Database from "better-sqlite3";
import { loadConfig } from "../../src/core/config.js";
import { Gateway } from "./gateway.js";
import { drive, type Target } from "./load.js";
import type { Figures } from "./stats.js";

/**
 * The asynchronous case, on a gateway of its own (SQLite): how fast requests are accepted with
 * `Prefer: respond-async` (each answered 202 once its job is committed), and how fast the queue
 * drains (from the first enqueue to the last job's end), beside the synchronous throughput of the same function on the same gateway at the
 * concurrency jobs get (ASYNC_MAX_CONCURRENCY). The function is the Python hello world in each
 * isolation mode.
 */

export interface AsyncFigures {
  isolation: "invocation" | "function";
  asyncConcurrency: number;
  enqueue: Figures;
  /** Jobs finished per second, from the moment every job was in the queue to the last one's end. */
  drainPerSecond: number;
  drained: number;
  /** The same function called synchronously at ASYNC_MAX_CONCURRENCY connections. */
  sync: Figures;
  /** drainPerSecond / sync throughput. */
  ratio: number;
  succeeded: number;
  failed: number;
}

const PYTHON_HELLO = 'def handler(request):\n    return {"hello": "world"}\n';
/** Connections that enqueue. */
const ENQUEUE_CONNECTIONS = 32;

export async function measureAsync(jobs: number, syncRequests: number): Promise<AsyncFigures[]> {
  const figures: AsyncFigures[] = [];
  for (const isolation of ["invocation", "function"] as const) {
    // The bound is raised so that the whole burst fits: the case is about speed, not the bound.
    const gateway = await Gateway.start({ ASYNC_QUEUE_MAX_JOBS: String(jobs * 2), ASYNC_QUEUE_FUNCTION_SHARE: "100", ASYNC_POLL_MS: "20" });
    try {
      const name = `bench-async-${isolation}`;
      await gateway.api("POST", "/api/functions", { name, runtime: "python", code: PYTHON_HELLO, isolation });
      const asyncConcurrency = loadConfig({ DATA_DIR: gateway.dataDir, ...gateway.env }).ASYNC_MAX_CONCURRENCY;
      const target: Target = {
        url: `${gateway.url}/fn/${name}`,
        method: "POST",
        headers: { authorization: `Bearer ${gateway.token}` },
        body: "{}",
      };
      // Synchronous first, warmed, at the concurrency jobs will have.
      await drive(target, asyncConcurrency, asyncConcurrency * 3);
      const sync = await drive(target, asyncConcurrency, syncRequests);

      const db = new Database(path.join(gateway.dataDir, "gateway.db"), { readonly: true });
      const count = (state: string) =>
        (db.prepare("select count(*) as n from jobs where function_name = ? and state = ?").get(name, state) as { n: number }).n;
      // The queue drains while it fills (a warm function can finish a short burst before its last 202):
      // the drain is timed from the first enqueue to the last job's end.
      const doneAtStart = count("succeeded") + count("failed");
      const from = performance.now();
      const enqueue = await drive({ ...target, headers: { ...target.headers, prefer: "respond-async" } }, ENQUEUE_CONNECTIONS, jobs);
      let done = count("succeeded") + count("failed");
      while (done < enqueue.statuses["202"]!) {
        await delay(20);
        done = count("succeeded") + count("failed");
      }
      const seconds = (performance.now() - from) / 1000;
      const drained = done - doneAtStart;
      const drainPerSecond = drained / seconds;
      figures.push({
        isolation,
        asyncConcurrency,
        enqueue,
        drainPerSecond,
        drained,
        sync,
        ratio: drainPerSecond / sync.throughput,
        succeeded: count("succeeded"),
        failed: count("failed"),
      });
      db.close();
      process.stderr.write(
        `async ${isolation}: enqueue ${enqueue.throughput.toFixed(0)}/s (p50 ${enqueue.p50.toFixed(1)} ms), drain ${drainPerSecond.toFixed(1)}/s, sync c=${asyncConcurrency} ${sync.throughput.toFixed(1)}/s\n`,
      );
    } finally {
      await gateway.stop();
    }
  }
  return figures;
}

/**
 * Cost of the invocation log on the hot path, and of its queries at a million rows.
 *   npx tsx bench/log-write.ts [rows=1000000]
 * Prints the per-invocation cost of a log write (insert `running` + update at the end),
 * the time of each query the API makes, and SQLite's plan for it.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { v7 as uuidv7 } from "uuid";
import { openDatabase } from "../src/db/client.js";
import type { InvocationEnd } from "../src/db/invocations.js";
import { SecretBox } from "../src/db/secrets.js";
import { createStores } from "../src/db/stores.js";

const totalRows = Number(process.argv[2] ?? 1_000_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-bench-"));
const opened = openDatabase(path.join(dir, "gateway.db"));
const log = createStores(opened, new SecretBox(crypto.randomBytes(32))).invocations;

function end(stdout: string): InvocationEnd {
  return {
    status: "ok",
    durationMs: 12.5,
    exitCode: 0,
    signal: null,
    httpStatus: 200,
    responseBytes: 17,
    stdout,
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    error: null,
    blockedSyscall: null,
  };
}

function writeCost(label: string, stdout: string, n: number): void {
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const { seq } = log.start({
      id: uuidv7(),
      functionName: `fn${i % 50}`,
      version: 1,
      requestBytes: 0,
      method: "GET",
      path: "/",
    });
    log.finish(seq, end(stdout));
  }
  const perWrite = ((performance.now() - started) * 1000) / n;
  console.log(`log write (insert running + update), ${label}: ${perWrite.toFixed(1)} µs per invocation (${n} invocations)`);
}

writeCost("empty stdout, small table", "", 5_000);
writeCost("100 B stdout", "x".repeat(100), 5_000);
writeCost("64 KiB stdout", "x".repeat(64 * 1024), 1_000);
writeCost("1 MiB stdout (the cap)", "x".repeat(1024 * 1024), 100);

// Fill with `totalRows` over the past 30 days: 50 functions, one of them hot (a fifth of the rows).
// The rows above started now; they go, so that started_at keeps growing with seq as in real use.
opened.sqlite.exec("delete from invocations");
const fill = opened.sqlite.prepare(
  `insert into invocations (id, function_name, version, started_at, duration_ms, exit_code, status, http_status,
     request_bytes, response_bytes, stdout, stderr, method, path)
   values (?, ?, 1, ?, ?, 0, ?, 200, 0, 17, '', '', 'GET', '/')`,
);
const statuses = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "error", "timeout"];
const now = Date.now();
const span = 30 * 24 * 3600 * 1000;
const toFill = totalRows;
const fillStarted = performance.now();
opened.sqlite.transaction(() => {
  for (let i = 0; i < toFill; i++) {
    const fn = i % 5 === 0 ? "hot" : `fn${i % 50}`;
    fill.run(uuidv7(), fn, now - span + Math.floor((i / toFill) * span), 5 + (i % 100), statuses[i % 10]);
  }
})();
console.log(`filled ${toFill} rows in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`);
opened.sqlite.pragma("optimize");
writeCost(`100 B stdout, ${totalRows} rows`, "x".repeat(100), 5_000);

async function timed<T>(label: string, run: () => T | Promise<T>, planSql?: string, planParams: unknown[] = []): Promise<T> {
  const started = performance.now();
  const result = await run();
  const ms = performance.now() - started;
  console.log(`\n${label}: ${ms.toFixed(2)} ms`);
  if (planSql) {
    const plan = opened.sqlite.prepare(`explain query plan ${planSql}`).all(...planParams) as { detail: string }[];
    for (const step of plan) console.log(`  plan: ${step.detail}`);
  }
  return result;
}

const listCols = "seq, id, function_name, status";
const firstAtOrAfter = "select seq from invocations where started_at >= ? order by started_at, seq limit 1";
await timed("list, no filter, limit 50", () => log.list({ limit: 50 }), `select ${listCols} from invocations order by seq desc limit 51`);
const page = log.list({ limit: 50 });
await timed(
  "list, next page by cursor",
  () => log.list({ limit: 50, beforeSeq: page.nextBeforeSeq ?? undefined }),
  `select ${listCols} from invocations where seq < ? order by seq desc limit 51`,
  [page.nextBeforeSeq],
);
await timed(
  "list, function=fn7",
  () => log.list({ limit: 50, functionName: "fn7" }),
  `select ${listCols} from invocations where function_name = ? order by seq desc limit 51`,
  ["fn7"],
);
await timed(
  "list, status=timeout",
  () => log.list({ limit: 50, status: "timeout" }),
  `select ${listCols} from invocations where status = ? order by seq desc limit 51`,
  ["timeout"],
);
await timed(
  "list, function=fn7 and status=error",
  () => log.list({ limit: 50, functionName: "fn7", status: "error" }),
  `select ${listCols} from invocations where function_name = ? and status = ? order by seq desc limit 51`,
  ["fn7", "error"],
);
await timed("first key at or after a time (since/until become key ranges)", () => log.list({ limit: 1, since: now }), firstAtOrAfter, [
  now,
]);
await timed(
  "list, since 1h ago",
  () => log.list({ limit: 50, since: now - 3600_000 }),
  `select ${listCols} from invocations where seq >= ? order by seq desc limit 51`,
  [1],
);
const oldUntil = now - 29 * 24 * 3600_000;
await timed(
  "list, until 29 days ago (deep in the past)",
  () => log.list({ limit: 50, until: oldUntil }),
  `select ${listCols} from invocations where seq < ? order by seq desc limit 51`,
  [1],
);
await timed(
  "list, a one-hour window 15 days ago",
  () => log.list({ limit: 50, since: now - 15 * 24 * 3600_000, until: now - 15 * 24 * 3600_000 + 3600_000 }),
  `select ${listCols} from invocations where seq >= ? and seq < ? order by seq desc limit 51`,
  [1, 2],
);
await timed("get by id", () => log.get(page.items[0]!.id), "select * from invocations where id = ?", [page.items[0]!.id]);
// Stats run on the read worker: the time is the request's latency (the first includes starting the
// worker), the loop delay what invocations would feel meanwhile.
for (const [label, hours] of [
  ["1h", 1],
  ["24h", 24],
  ["7d", 24 * 7],
  ["30d", 24 * 30],
] as const) {
  const since = now - hours * 3600_000;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const stats = await timed(`stats of 'hot' (1/5 of the rows) over ${label}`, () => log.stats("hot", since, now + 1));
  loop.disable();
  console.log(`  ${stats.count} rows in the window; event loop delay at most ${(loop.max / 1e6).toFixed(1)} ms meanwhile`);
}
const statsPlan = (sql: string) =>
  (
    opened.sqlite.prepare(`explain query plan ${sql}`).all(...["hot", 0, 1, "hot", 0, 1].slice(0, sql.split("?").length - 1)) as {
      detail: string;
    }[]
  ).map((s) => s.detail);
console.log(
  "  counts plan:",
  statsPlan("select status, count(*) from invocations where function_name = ? and started_at >= ? and started_at < ? group by status").join(
    " | ",
  ),
);
console.log(
  "  percentiles plan:",
  statsPlan(
    `with ranked as (select duration_ms as d, row_number() over (order by duration_ms) as rn from invocations
       where function_name = ? and started_at >= ? and started_at < ? and status in ('ok','error','timeout','oom','forbidden') and duration_ms is not null)
     select min(case when rn = (select count(*) from invocations where function_name = ? and started_at >= ? and started_at < ?) then d end) from ranked`,
  ).join(" | "),
);
await timed(
  "mark interrupted (no running rows)",
  () => log.markInterrupted(),
  "update invocations set status = 'interrupted' where status = 'running'",
);
await timed("prune one batch of 1000 by age (29 days)", () => log.pruneBatch({ olderThan: oldUntil, keepRows: null, batchSize: 1000 }));
await timed("prune one batch of 1000 by count", () => log.pruneBatch({ olderThan: null, keepRows: totalRows - 5000, batchSize: 1000 }));

opened.close();
const reopenStarted = performance.now();
const reopened = openDatabase(path.join(dir, "gateway.db"));
createStores(reopened, new SecretBox(crypto.randomBytes(32))).invocations.markInterrupted();
console.log(`\nreopen at ${totalRows} rows (migrate + optimize + mark interrupted): ${(performance.now() - reopenStarted).toFixed(1)} ms`);
reopened.close();
fs.rmSync(dir, { recursive: true, force: true });

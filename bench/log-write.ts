/**
 * The invocation log's write path on either engine: how many rows per second one database
 * connection absorbs when the log writer batches the starts and the ends of each event-loop turn,
 * with many invocations in flight; then what the API's queries cost at a filled log.
 *   npx tsx bench/log-write.ts [--store sqlite|postgres] [--rows 200000]
 * With postgres, a throwaway server is started for the run and the store has ONE connection.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Command, InvalidArgumentError } from "commander";
import { v7 as uuidv7 } from "uuid";
import { startPostgres } from "../scripts/postgres.js";
import type { InvocationEnd } from "../src/core/invocations.js";
import type { Store } from "../src/store/contract.js";
import { openStore } from "../src/store/index.js";
import { InvocationLogWriter } from "../src/store/log-writer.js";
import { SecretBox } from "../src/store/secrets.js";

const options = new Command()
  .option("--store <engine>", "sqlite or postgres", (text) => {
    if (text !== "sqlite" && text !== "postgres") throw new InvalidArgumentError("sqlite or postgres");
    return text;
  })
  .option("--rows <n>", "rows in the log for the query timings", (text) => Number(text), 200_000)
  .parse()
  .opts<{ store?: "sqlite" | "postgres"; rows: number }>();
const engine = options.store ?? "sqlite";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-log-bench-"));
const postgres = engine === "postgres" ? await startPostgres() : null;
const store: Store = await openStore(
  { DATABASE_URL: postgres?.url, DB_PATH: path.join(dir, "gateway.db"), DATABASE_POOL_SIZE: 1 },
  new SecretBox(crypto.randomBytes(32)),
);
const writer = new InvocationLogWriter(store, { node: "bench", maxOutputBytes: 64 * 1024, spool: null });

const end = (stdout: string): InvocationEnd => ({
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
});

/** `total` invocations' rows (start, then end), `inFlight` at a time, as the invoke route writes them. */
async function absorb(total: number, inFlight: number, stdout: string, into = writer): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        next++;
        const id = uuidv7();
        await into.start({ id, functionName: `fn${next % 50}`, version: 1, requestBytes: 0, method: "GET", path: "/" });
        await into.finish(id, end(stdout));
      }
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

console.log(
  `${engine}${engine === "postgres" ? " (one connection)" : ""}; ${os.availableParallelism()} cores, load ${os.loadavg()[0]!.toFixed(1)}`,
);
for (const [inFlight, stdout, total] of [
  [1, "", 2000],
  [8, "", 10_000],
  [64, "", 20_000],
  [256, "", 30_000],
  [64, "x".repeat(1024), 20_000],
] as const) {
  const perSecond = await absorb(total, inFlight, stdout);
  console.log(
    `rows absorbed, ${inFlight} in flight, ${stdout.length} B stdout: ${perSecond.toFixed(0)} invocations/s (a start and an end each)`,
  );
}

// Several gateways on one database, one connection each: their ends queue on the finish-order lock.
if (postgres) {
  for (const gateways of [2, 4]) {
    const others = await Promise.all(
      Array.from({ length: gateways }, async (_, k) => {
        const own = await openStore(
          { DATABASE_URL: postgres.url, DB_PATH: "", DATABASE_POOL_SIZE: 1 },
          new SecretBox(crypto.randomBytes(32)),
        );
        return { own, writer: new InvocationLogWriter(own, { node: `bench-${k}`, maxOutputBytes: 64 * 1024, spool: null }) };
      }),
    );
    const rates = await Promise.all(others.map(({ writer: w }) => absorb(10_000, 64, "", w)));
    console.log(
      `rows absorbed, ${gateways} gateways (one connection each, 64 in flight each): ${rates.reduce((a, b) => a + b, 0).toFixed(0)} invocations/s in all`,
    );
    for (const { own } of others) await own.close();
  }
}

// Queries at a filled log: `options.rows` rows over the past 30 days, 50 functions, one hot.
const fillStarted = performance.now();
const now = Date.now();
const span = 30 * 24 * 3600_000;
for (let done = 0; done < options.rows; ) {
  const batch = Array.from({ length: Math.min(1000, options.rows - done) }, (_, k) => {
    const i = done + k;
    return {
      id: uuidv7(),
      functionName: i % 5 === 0 ? "hot" : `fn${i % 50}`,
      version: 1,
      requestBytes: 0,
      method: "GET",
      path: "/",
      node: "bench",
      startedAt: now - span + Math.floor((i / options.rows) * span),
    };
  });
  await store.invocations.start(batch);
  await store.invocations.finish(
    batch.map((row, k) => ({
      id: row.id,
      end: { ...end(""), durationMs: 5 + ((done + k) % 100), stdoutDroppedBytes: 0, stderrDroppedBytes: 0 },
    })),
  );
  done += batch.length;
}
console.log(`\nfilled ${options.rows} rows in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`);

async function timed(label: string, run: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  await run();
  console.log(`${label}: ${(performance.now() - started).toFixed(2)} ms`);
}
const page = await store.invocations.list({ limit: 50 });
await timed("list, no filter, limit 50", () => store.invocations.list({ limit: 50 }));
await timed("list, next page by cursor", () => store.invocations.list({ limit: 50, beforeSeq: page.nextBeforeSeq ?? undefined }));
await timed("list, function=fn7", () => store.invocations.list({ limit: 50, functionName: "fn7" }));
await timed("list, function=fn7 and status=ok", () => store.invocations.list({ limit: 50, functionName: "fn7", status: "ok" }));
await timed("list, a one-hour window 15 days ago", () =>
  store.invocations.list({ limit: 50, since: now - 15 * 24 * 3600_000, until: now - 15 * 24 * 3600_000 + 3600_000 }),
);
await timed("list, after a finish place (a poller)", () => store.invocations.list({ limit: 50, afterFinishedSeq: 1000 }));
await timed("get by id", () => store.invocations.get(page.items[0]!.id));
for (const [label, hours] of [
  ["24h", 24],
  ["30d", 24 * 30],
] as const) {
  await timed(`stats of 'hot' (1/5 of the rows) over ${label}`, () => store.invocations.stats("hot", now - hours * 3600_000, now + 1));
}
await timed("prune one batch of 1000 by age", () =>
  store.invocations.pruneBatch({ olderThan: now - 29 * 24 * 3600_000, keepRows: null, batchSize: 1000 }),
);

await store.close();
postgres?.stop();
fs.rmSync(dir, { recursive: true, force: true });

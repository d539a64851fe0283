import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDatabase, type PostgresServer, startPostgres } from "../../scripts/postgres.js";
import type { InvocationEnd } from "../../src/core/invocations.js";
import type { Store } from "../../src/store/contract.js";
import { openStore } from "../../src/store/index.js";
import { InvocationLogWriter } from "../../src/store/log-writer.js";
import { Spool } from "../../src/store/spool.js";
import { endOf, eventually, newSecretBox, postgresSql, type RawSql, spooledWrites, startRow } from "./harness.js";

// The log writer while PostgreSQL goes away and comes back (a server of this file's own, stopped
// and started with pg_ctl): writes are spooled on the node's disk and handed back in order.
// PostgreSQL only: the embedded file cannot go away.

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(() => server?.stop());

const stopServer = () => server.ctl("stop", "-m", "fast");
const startServer = () => server.ctl("start");

let dir: string;
let store: Store;
let sql: RawSql & { end(): Promise<void> };
const opened: { close(): void }[] = [];

/** A test that failed while the server was down leaves it so: the next one (and the clean-up) needs it up. */
function ensureRunning(): void {
  try {
    server.ctl("status");
  } catch {
    startServer();
  }
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-outage-"));
  const url = await createDatabase(server.url);
  store = await openStore({ DATABASE_URL: url, DB_PATH: path.join(dir, "gateway.db"), DATABASE_POOL_SIZE: 4 }, newSecretBox());
  sql = postgresSql(url);
});
afterEach(async () => {
  ensureRunning();
  for (const o of opened.splice(0)) o.close();
  await sql.end();
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const spoolFile = () => path.join(dir, "spool.db");

function writerWith(spool: Spool, maxOutputBytes = 4096): InvocationLogWriter {
  const writer = new InvocationLogWriter(store, { node: "node-a", maxOutputBytes, spool });
  opened.push(writer, spool);
  return writer;
}

const ok = (overrides: Partial<InvocationEnd> = {}): InvocationEnd => {
  const { stdoutDroppedBytes: _, stderrDroppedBytes: __, ...end } = endOf(overrides);
  return end;
};

/** Starts rows through the writer, all in one turn (one batch); returns their ids. */
async function startAll(writer: InvocationLogWriter, count: number): Promise<string[]> {
  const rows = Array.from({ length: count }, () => startRow());
  await Promise.all(rows.map((row) => writer.start(row)));
  return rows.map((row) => row.id);
}

/** What the database holds of these ids: status and finish place, by id. */
async function rowsOf(ids: string[]): Promise<Map<string, { status: string; place: number | null; count: number }>> {
  const rows = await sql(
    `select id, status, finished_seq, count(*) over (partition by id) as n from invocations where id in (${ids.map(() => "?").join(", ")})`,
    ...ids,
  );
  return new Map(
    rows.map((r) => [
      r.id as string,
      { status: r.status as string, place: r.finished_seq === null ? null : Number(r.finished_seq), count: Number(r.n) },
    ]),
  );
}

describe("the log while the database is away", () => {
  it("spools writes on disk while it is down and hands them back in order once it is back: none lost, none twice", async () => {
    const writer = writerWith(new Spool(spoolFile(), 64 * 1024 * 1024));
    const [before] = await startAll(writer, 1);
    await writer.finish(before!, ok());
    const [inFlight] = await startAll(writer, 1);
    expect(writer.health()).toEqual({ database: "reachable", spooled_writes: 0, spool_bytes: expect.any(Number) });

    stopServer();
    // Every write resolves: durable in the spool.
    await writer.finish(inFlight!, ok({ stdout: "ended while the database was down" }));
    const startedWhileDown = await startAll(writer, 20);
    const finishedWhileDown = startedWhileDown.slice(0, 10);
    await Promise.all(finishedWhileDown.map((id) => writer.finish(id, ok())));

    expect(writer.health()).toMatchObject({ database: "unreachable", spooled_writes: 31 });
    expect(writer.health().spool_bytes).toBeGreaterThan(0);
    expect(writer.accepting).toBe(true);
    expect((await store.status()).ready).toBe(false);
    // On disk, in the order made, read by a connection of its own: what a crash now would leave.
    expect(spooledWrites(spoolFile())).toEqual([
      { kind: "finish", id: inFlight },
      ...startedWhileDown.map((id) => ({ kind: "start", id })),
      ...finishedWhileDown.map((id) => ({ kind: "finish", id })),
    ]);

    startServer();
    // Made while the spool is handed back: they wait behind it.
    const [duringReplay] = await startAll(writer, 1);
    await writer.finish(duringReplay!, ok());
    await eventually(() => writer.health().database === "reachable", "the spool to be handed back", 20_000);
    await writer.drained();
    expect(writer.health()).toMatchObject({ database: "reachable", spooled_writes: 0 });
    expect(spooledWrites(spoolFile())).toEqual([]);

    const all = [before!, inFlight!, ...startedWhileDown, duringReplay!];
    const rows = await rowsOf(all);
    expect(rows.size).toBe(all.length);
    for (const [id, row] of rows) expect(row.count, id).toBe(1);
    const ended = [before!, inFlight!, ...finishedWhileDown, duringReplay!];
    for (const id of ended) expect(rows.get(id)?.status, id).toBe("ok");
    for (const id of startedWhileDown.slice(10)) expect(rows.get(id)).toMatchObject({ status: "running", place: null });
    // The finish order is the order the ends were made in.
    const places = ended.map((id) => rows.get(id)!.place!);
    expect([...places].sort((a, b) => a - b)).toEqual(places);
    expect((await store.invocations.get(inFlight!))?.stdout).toBe("ended while the database was down");

    // And then straight to the database again.
    const [after] = await startAll(writer, 1);
    expect((await rowsOf([after!])).get(after!)?.status).toBe("running");
    expect(writer.health().spooled_writes).toBe(0);
  });

  it("hands back what a stopped process left in the spool when the next one starts", async () => {
    const first = writerWith(new Spool(spoolFile(), 64 * 1024 * 1024));
    stopServer();
    const ids = await startAll(first, 5);
    await Promise.all(ids.slice(0, 3).map((id) => first.finish(id, ok())));
    for (const o of opened.splice(0)) o.close(); // the process stops with the database still away
    expect(spooledWrites(spoolFile())).toHaveLength(8);

    startServer();
    const next = writerWith(new Spool(spoolFile(), 64 * 1024 * 1024));
    await eventually(() => next.health().database === "reachable", "the spool to be handed back", 20_000);
    const rows = await rowsOf(ids);
    expect(ids.map((id) => rows.get(id)?.status)).toEqual(["ok", "ok", "ok", "running", "running"]);
    expect(spooledWrites(spoolFile())).toEqual([]);
  });

  it("drops a spooled write the database refuses, with a log line, rather than hold back every later row", async () => {
    const first = writerWith(new Spool(spoolFile(), 64 * 1024 * 1024));
    stopServer();
    const ids = await startAll(first, 3);
    for (const o of opened.splice(0)) o.close();
    await first.drained(); // its own attempts to hand the spool back have stopped
    // A write no database would take (a start without its function's name), between good ones.
    const raw = new Database(spoolFile());
    const [second] = raw.prepare("select seq, body from writes order by seq limit 1 offset 1").all() as { seq: number; body: string }[];
    const broken = JSON.parse(second!.body) as { row: Record<string, unknown> };
    broken.row.functionName = null;
    raw.prepare("update writes set body = ? where seq = ?").run(JSON.stringify(broken), second!.seq);
    raw.close();

    startServer();
    const next = writerWith(new Spool(spoolFile(), 64 * 1024 * 1024));
    await eventually(() => next.health().database === "reachable", "the spool to be handed back", 20_000);
    const rows = await rowsOf(ids);
    expect(ids.map((id) => rows.get(id)?.status)).toEqual(["running", undefined, "running"]);
    expect(spooledWrites(spoolFile())).toEqual([]);
    // Writes after it reach the database directly again.
    const [later] = await startAll(next, 1);
    expect((await rowsOf([later!])).get(later!)?.status).toBe("running");
  });

  it("refuses new invocations once the spool is full, and still keeps the ends of those already running", async () => {
    const output = 64 * 1024;
    const writer = writerWith(new Spool(spoolFile(), 512 * 1024), output);
    stopServer();
    const [admitted] = await startAll(writer, 1);
    const filled: string[] = [];
    while (writer.accepting) {
      const [id] = await startAll(writer, 1);
      await writer.finish(id!, ok({ stdout: "x".repeat(output) }));
      filled.push(id!);
      expect(filled.length).toBeLessThan(100); // it fills
    }
    expect(writer.health().database).toBe("unreachable");
    expect(writer.health().spool_bytes).toBeGreaterThan(512 * 1024);
    // Admitted before the spool filled: its end is kept, not dropped.
    await writer.finish(admitted!, ok({ stdout: "y".repeat(output) }));

    startServer();
    await eventually(() => writer.health().database === "reachable", "the spool to be handed back", 20_000);
    expect(writer.accepting).toBe(true);
    const rows = await rowsOf([admitted!, ...filled]);
    expect([...rows.values()].map((r) => r.status)).toEqual(Array(filled.length + 1).fill("ok"));
  });
});

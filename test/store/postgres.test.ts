import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { postgresBin } from "../../scripts/postgres.js";
import type { Store } from "../../src/store/contract.js";
import { MIGRATIONS_DIR } from "../../src/store/postgres/client.js";
import { endOf, eventually, listenTo, runOne, settingsOf, startRow, useTestStore } from "./harness.js";

// What is PostgreSQL's own: several gateways on one database at the same moment. Each test's
// stores share one fresh database (useTestStore); `db.open()` is another gateway's store.

const db = useTestStore();

/** `n` more gateways' stores on the test's database, opened at once. */
const openMany = (n: number): Promise<Store[]> => Promise.all(Array.from({ length: n }, () => db.open()));

describe("gateways starting together", () => {
  it("migrate a fresh database once, the others waiting for it, and all work", async () => {
    await db.useFreshDatabase();
    const stores = await openMany(8);
    const migrations = fs.readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).length;
    expect(await db.number("select count(*) from drizzle.__drizzle_migrations")).toBe(migrations);
    await Promise.all(stores.map((store, i) => store.functions.create(`f${i}`, settingsOf(), null)));
    for (const store of stores)
      expect((await store.functions.allCurrent()).map((f) => f.name).sort()).toEqual(stores.map((_, i) => `f${i}`).sort());
  });
});

describe("versions stored at the same moment", () => {
  it("are numbered one after the other: two gateways get 2 and 3, never two 2s", async () => {
    const [first, second] = [db.store, await db.open()];
    await first.functions.create("f", settingsOf(), null);
    for (let round = 0; round < 10; round++) {
      const stored = await Promise.all([first, second].map((store) => store.functions.addVersion("f", settingsOf(), null, true)));
      const versions = stored.map((s) => s!.stored.version).sort((a, b) => a - b);
      expect(versions).toEqual([2 + 2 * round, 3 + 2 * round]);
    }
    const many = await openMany(4);
    const stored = await Promise.all(many.map((store) => store.functions.addVersion("f", settingsOf(), null, false)));
    expect(stored.map((s) => s!.stored.version).sort((a, b) => a - b)).toEqual([22, 23, 24, 25]);
    expect((await db.store.functions.versions("f"))?.map((v) => v.version)).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
    // The last to commit is pending.
    expect((await db.store.functions.current("f"))?.pendingVersion).toBeGreaterThanOrEqual(22);
  });
});

describe("the finish order under concurrent writers", () => {
  it("lets a reader following ?after= while gateways finish invocations miss nothing and see nothing twice", async () => {
    const writers = await openMany(3);
    const reader = await db.open();
    const finished = new Set<string>();
    let writing = true;

    /** One gateway: starts rows and ends them in batches of several sizes, several transactions in flight at once. */
    async function write(store: Store, w: number): Promise<void> {
      for (let round = 0; round < 30; round++) {
        const node = `node-${w}`;
        const rows = await store.invocations.start(Array.from({ length: 6 }, () => startRow({ node })));
        const ids = rows.map((r) => r.id);
        const batches = [ids.slice(0, 1), ids.slice(1, 3), ids.slice(3, 5)];
        await Promise.all(
          batches.map(async (batch) => {
            const places = await store.invocations.finish(batch.map((id) => ({ id, end: endOf({ durationMs: round }) })));
            expect(places.every((p) => p !== null)).toBe(true);
            for (const id of batch) finished.add(id);
          }),
        );
        // The sixth row is left running and ended with its node's others, as a restart would.
        if (round % 5 === 4) {
          const ended = await store.invocations.markInterrupted(node, "stopped");
          expect(ended).toBeGreaterThan(0);
          const interrupted = await db.column("select id from invocations where node = ? and status = 'interrupted'", node);
          for (const id of interrupted) finished.add(String(id));
        }
      }
    }

    const seen: { id: string; place: number }[] = [];
    async function follow(): Promise<void> {
      let cursor = 0;
      for (;;) {
        const stillWriting = writing;
        const page = await reader.invocations.list({ afterFinishedSeq: cursor, limit: 7 });
        for (const row of page.items) seen.push({ id: row.id, place: row.finishedSeq! });
        cursor = page.items.at(-1)?.finishedSeq ?? cursor;
        if (!stillWriting && page.items.length === 0) return;
      }
    }

    const following = follow();
    await Promise.all(writers.map((store, w) => write(store, w)));
    writing = false;
    await following;

    const places = seen.map((s) => s.place);
    expect(places).toEqual([...places].sort((a, b) => a - b));
    expect(new Set(places).size).toBe(places.length);
    expect(seen.length).toBe(new Set(seen.map((s) => s.id)).size); // nothing twice
    expect(new Set(seen.map((s) => s.id))).toEqual(finished); // nothing missed
    expect(seen.length).toBe(await db.number("select count(*) from invocations where finished_seq is not null"));
  });
});

describe("reapers racing", () => {
  it("reap each lost node once, however many gateways look at the same moment", async () => {
    const lost = ["lost-1", "lost-2", "lost-3"];
    for (const node of lost) {
      await db.store.nodes.register(node, "1");
      for (let i = 0; i < 4; i++) await db.store.invocations.start([startRow({ node })]);
      await runOne(db.store, { node });
    }
    await db.sql("update nodes set heartbeat_at = heartbeat_at - 60000 where id like 'lost-%'");
    const reapers = [db.store, ...(await openMany(5))];
    const results = (await Promise.all(reapers.map((store) => store.nodes.reapLost(10_000, "lease ran out")))).flat();
    expect(results.map((r) => r.node).sort()).toEqual(lost);
    expect(results.map((r) => r.interrupted)).toEqual([4, 4, 4]);
    expect(await db.number("select count(*) from invocations where status = 'interrupted'")).toBe(12);
    expect(await db.number("select count(*) from invocations where status = 'running'")).toBe(0);
    expect((await Promise.all(reapers.map((store) => store.nodes.reapLost(10_000, "again")))).flat()).toEqual([]);
  });
});

describe("the change channel across gateways", () => {
  it("NOTIFY reaches another gateway's store within a second", async () => {
    const other = await db.open();
    const heard = await listenTo(other, db.store);
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = heard.changes.length;
      const written = performance.now();
      await db.store.functions.create(`f${i}`, settingsOf(), null);
      await eventually(() => heard.changes.length > before, "the notification", 1000);
      latencies.push(performance.now() - written);
    }
    expect(Math.max(...latencies)).toBeLessThan(1000);
    heard.stop();
  });

  it("reports a gap when its listening connection is lost, and listens again", async () => {
    const other = await db.open();
    const heard = await listenTo(other, db.store);
    const terminated = await db.number(
      "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen%'",
    );
    expect(terminated).toBe(1);
    await eventually(() => heard.gaps > 0, "the gap to be reported", 10_000);
    // Listening again: a write is heard (markers until the new connection listens).
    const again = await listenTo(other, db.store);
    await db.store.functions.create("after-the-gap", settingsOf(), null);
    await eventually(() => again.changes.length > 0, "a change after the gap");
    expect(again.changes).toEqual([{ kind: "function", name: "after-the-gap" }]);
    heard.stop();
    again.stop();
  });
});

describe("connections the server drops", () => {
  const token = (id: string) => ({
    id,
    name: id,
    tokenHash: id.padEnd(64, "0"),
    scopes: [],
    createdAt: 1,
    expiresAt: null,
    lastUsedAt: null,
  });

  /**
   * Ends every other connection to the test's database from outside this process, while its event
   * loop is held (a synchronous psql): the pool's idle connections are dead before it can notice,
   * as after a server restart under load.
   */
  function dropConnectionsUnnoticed(): void {
    const url = new URL(db.url!);
    const run = spawnSync(
      path.join(postgresBin(), "psql"),
      [
        "-h",
        url.hostname,
        "-p",
        url.port,
        "-U",
        "postgres",
        "-d",
        url.pathname.slice(1),
        "-qAtc",
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
      ],
      { encoding: "utf8" },
    );
    if (run.status !== 0) throw new Error(`psql: ${run.stderr}`);
  }

  it("give their connection back when a transaction meets them: more such losses than the pool holds, and it still serves", async () => {
    const store = db.store;
    for (let round = 0; round < 6; round++) {
      // Four connections in the pool (its size here), idle; a plain query meeting a dead one fails, and the pool drops it.
      await Promise.all(Array.from({ length: 4 }, () => store.settings.get("warm").catch(() => undefined)));
      dropConnectionsUnnoticed();
      // A transaction meets a dead connection (or, once the pool noticed, a new one): either way, no connection stays taken.
      await store.tokens.delete(`tok_${round}`).catch(() => false);
    }
    // Each dead connection left idle fails the one statement that meets it (at most the pool's four),
    // then is dropped; a pool that lost its connections for good fails every attempt.
    const attempts: string[] = [];
    for (let i = 0; i < 5 && !attempts.includes("ok"); i++) {
      await store.tokens.insert(token(`tok_${i}`)).then(
        () => attempts.push("ok"),
        (err: Error) => attempts.push(err.message),
      );
    }
    expect(attempts.at(-1), attempts.join("; ")).toBe("ok");
    expect(await store.tokens.all()).toHaveLength(1);
    await db.close(store); // ends only once every connection is back in the pool
  });
});

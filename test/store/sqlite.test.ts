import fs from "node:fs";
import { describe, expect, it, vi } from "vitest";
import { sha256, TokenRegistry } from "../../src/cluster/tokens.js";
import { INTERRUPTED_MESSAGE } from "../../src/core/invocations.js";
import { checkBearer, provisionToken } from "../../src/http/middleware/auth.js";
import type { InvocationRecords } from "../../src/store/contract.js";
import { sealStoredSecrets } from "../../src/store/seal.js";
import { JOURNAL_SIZE_LIMIT_BYTES, MIGRATIONS_DIR } from "../../src/store/sqlite/client.js";
import type { SqliteStore } from "../../src/store/sqlite/index.js";
import { SqliteInvocations } from "../../src/store/sqlite/invocations.js";
import { endOf, runOne, startOne, startRow, T0, useTestStore } from "./harness.js";
import { databaseBeforeSealing } from "./legacy.js";

// What is SQLite's own: the file's settings, its migrations, the log's time keys and query plans,
// the read worker, and databases written by earlier versions.

const db = useTestStore();
const sqlite = () => (db.store as SqliteStore).connection.sqlite;
const pragma = (name: string) => sqlite().pragma(name, { simple: true });

describe("the file", () => {
  it("is opened with WAL, a journal size limit, synchronous=NORMAL, a busy timeout, foreign keys and secure delete", () => {
    expect(pragma("journal_mode")).toBe("wal");
    expect(pragma("journal_size_limit")).toBe(JOURNAL_SIZE_LIMIT_BYTES);
    expect(pragma("synchronous")).toBe(1); // NORMAL
    expect(pragma("busy_timeout")).toBeGreaterThan(0);
    expect(pragma("foreign_keys")).toBe(1);
    expect(pragma("secure_delete")).toBe(1);
    expect(fs.statSync(db.file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(db.dir).mode & 0o777).toBe(0o700);
  });

  it("cuts the write-ahead log back to the limit after a burst, and counts it in the size on disk", async () => {
    // One large transaction: the WAL grows past the limit while it is written.
    const rows = await db.store.invocations.start(Array.from({ length: 120 }, () => startRow()));
    await db.store.invocations.finish(rows.map(({ id }) => ({ id, end: endOf({ stdout: "x".repeat(64 * 1024) }) })));
    const wal = () => fs.statSync(`${db.file}-wal`).size;
    expect(wal()).toBeGreaterThan(JOURNAL_SIZE_LIMIT_BYTES);
    expect((await db.store.sizes()).file_bytes).toBe(fs.statSync(db.file).size + wal());
    // Once checkpointed, the next write starts the WAL over and truncates it to the limit.
    sqlite().pragma("wal_checkpoint(PASSIVE)");
    await runOne(db.store);
    expect(wal()).toBeLessThanOrEqual(JOURNAL_SIZE_LIMIT_BYTES);
  });

  it("applies each migration once across reopenings", async () => {
    const migrations = fs.readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).length;
    const applied = () => db.number("select count(*) from __drizzle_migrations");
    expect(await applied()).toBe(migrations);
    await db.reopen();
    await db.reopen();
    expect(await applied()).toBe(migrations);
  });
});

describe("the log's time keys", () => {
  it("keeps started_at from going backwards as seq grows when the clock does, across restarts too", async () => {
    const first = await startOne(db.store, { startedAt: T0 });
    const second = await startOne(db.store, { startedAt: T0 - 60_000 });
    expect(second.startedAt).toBe(first.startedAt);
    await db.reopen();
    expect((await startOne(db.store, { startedAt: T0 - 60_000 })).startedAt).toBe(T0);
    expect((await startOne(db.store, { startedAt: T0 + 120_000 })).startedAt).toBe(T0 + 120_000);
    const starts = (await db.column("select started_at from invocations order by seq")).map(Number);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
  });

  it("ends the rows from before gateways had ids (node '') as this data dir's gateway's own", async () => {
    const legacy = await startOne(db.store, { node: "" });
    expect(await db.store.invocations.markInterrupted("node-a", INTERRUPTED_MESSAGE)).toBe(1);
    expect((await db.store.invocations.get(legacy.id))?.status).toBe("interrupted");
  });
});

describe("stats", () => {
  it("run on a worker thread's own connection, never on the one that serves invocations", async () => {
    for (const durationMs of [3, 1, 2]) await runOne(db.store, { functionName: "s" }, { durationMs });
    const prepare = vi.spyOn(sqlite(), "prepare");
    const stats = await db.store.invocations.stats("s", T0, T0 + 1);
    const onMain = prepare.mock.calls.length;
    prepare.mockRestore();
    expect(onMain).toBe(0);
    expect(stats).toMatchObject({ count: 3, durationMs: { p50: 2, p99: 3, max: 3, mean: 2 } });
  });
});

describe("query plans", () => {
  /** EXPLAIN QUERY PLAN of every statement `run` sends, on the main connection or to the read worker. */
  async function plansOf(run: (log: InvocationRecords) => unknown): Promise<string[]> {
    const statements: string[] = [];
    const { connection } = db.store as SqliteStore;
    const capturing = new SqliteInvocations(connection.db, {
      readInBackground: async (query) => {
        statements.push(query.sql);
        return [];
      },
      usedBytes: () => 0,
    });
    const prepare = vi.spyOn(connection.sqlite, "prepare");
    await run(capturing);
    statements.push(...prepare.mock.calls.map(([sql]) => String(sql)));
    prepare.mockRestore();
    return statements.map((sql) => {
      const params = Array.from(sql.matchAll(/\?/g), () => 1);
      const rows = connection.sqlite.prepare(`explain query plan ${sql}`).all(...params) as { detail: string }[];
      return rows.map((r) => r.detail).join(" | ");
    });
  }

  it("answers every filter of the API from an index, never a scan of the log", async () => {
    const cases: [string, (log: InvocationRecords) => unknown, RegExp][] = [
      ["newest first", (l) => l.list({ limit: 50 }), /SCAN invocations$/], // reverse rowid walk, stops at the limit
      ["after a cursor", (l) => l.list({ limit: 50, beforeSeq: 10 }), /USING INTEGER PRIMARY KEY \(rowid<\?\)/],
      ["by function", (l) => l.list({ limit: 50, functionName: "f" }), /USING INDEX invocations_function_seq/],
      [
        "by function and status",
        (l) => l.list({ limit: 50, functionName: "f", status: "ok" }),
        /USING INDEX invocations_function_status_seq/,
      ],
      ["by status", (l) => l.list({ limit: 50, status: "error" }), /USING INDEX invocations_status_seq/],
      ["one invocation", (l) => l.get("x"), /USING INDEX invocations_id_unique/],
      ["start-up", (l) => l.markInterrupted("node-a", "stopped"), /USING INDEX invocations_status_seq/],
      [
        "what finished after a place",
        (l) => l.list({ limit: 50, afterFinishedSeq: 10 }),
        /USING INDEX invocations_finished_seq \(finished_seq>\?\)/,
      ],
      ["the place of an id", (l) => l.finishedSeqOf("x"), /USING INDEX invocations_id_unique/],
      ["where the log stands", (l) => l.lastFinishedSeq(), /SEARCH invocations USING COVERING INDEX invocations_finished_seq/],
      ["whether it saw a function", (l) => l.hasFunction("f"), /USING COVERING INDEX invocations_function_seq/],
    ];
    for (const [label, run, expected] of cases) {
      const plans = await plansOf(run);
      expect(plans.length, label).toBeGreaterThan(0);
      expect(plans.join(" || "), label).toMatch(expected);
    }
  });

  it("computes stats from the covering index, counts and percentiles alike", async () => {
    const plans = await plansOf((l) => l.stats("f", 0, 1));
    expect(plans).toHaveLength(2);
    for (const plan of plans) expect(plan).toContain("USING COVERING INDEX invocations_function_started");
    expect(plans.join(" || ")).not.toMatch(/SCAN invocations(?! USING)/);
  });

  it("turns since/until into primary-key ranges found through the started_at index", async () => {
    await startOne(db.store, { startedAt: T0 });
    const later = await startOne(db.store, { startedAt: T0 + 1000 });
    const plans = await plansOf((l) => l.list({ limit: 50, since: 0, until: later.startedAt }));
    expect(plans.filter((p) => p.includes("USING COVERING INDEX invocations_started_at"))).toHaveLength(2);
    expect(plans.at(-1)).toMatch(/USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)/);
  });

  it("prunes through indexes", async () => {
    const plans = (await plansOf((l) => l.pruneBatch({ olderThan: 0, keepRows: 10, batchSize: 100 }))).join(" || ");
    expect(plans).toContain("USING COVERING INDEX invocations_started_at");
    expect(plans).toContain("USING INTEGER PRIMARY KEY");
    expect(plans).not.toMatch(/SCAN invocations(?! USING)/);
  });
});

describe("databases written before", () => {
  const SECRET = "clear-secret-from-before-sealing-91c2";
  /** Closes the test's store and removes its file, for one written the old way. */
  const removeDatabase = async () => {
    await db.close(db.store);
    for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(`${db.file}${suffix}`, { force: true });
  };
  const fileBytesContain = (needle: string) =>
    [db.file, `${db.file}-wal`].some((f) => fs.existsSync(f) && fs.readFileSync(f).includes(Buffer.from(needle)));

  it("the migration to sealed env values: every clear value sealed at the first start, no clear copy left in the files", async () => {
    await removeDatabase();
    databaseBeforeSealing(db.file, (legacy) => {
      legacy.prepare("INSERT INTO functions VALUES ('old', 2, 1, 1)").run();
      const insert = legacy.prepare(
        "INSERT INTO function_versions (function_name, version, runtime, code, timeout_ms, memory_mb, network, env, public, created_at) VALUES ('old', ?, 'python', 'x = 1', 1000, 64, 0, ?, 0, 1)",
      );
      insert.run(1, JSON.stringify({ API_KEY: SECRET }));
      insert.run(2, JSON.stringify({ API_KEY: SECRET, OTHER: "o" }));
    });
    expect(fileBytesContain(SECRET)).toBe(true);
    const store = await db.reopen();
    expect(await sealStoredSecrets(store, db.box)).toEqual({ sealed: 2, resealed: 0 });
    expect((await store.functions.current("old"))?.env).toEqual({ API_KEY: SECRET, OTHER: "o" });
    expect((await store.functions.version("old", 1))?.env).toEqual({ API_KEY: SECRET });
    expect(await sealStoredSecrets(store, db.box)).toEqual({ sealed: 0, resealed: 0 }); // once
    expect(fileBytesContain(SECRET)).toBe(false);
  });

  it("the migration to scoped tokens: the old token's hash becomes the admin token, and nothing new is printed", async () => {
    await removeDatabase();
    const token = "token-from-before-scopes-0123";
    databaseBeforeSealing(db.file, (legacy) => {
      legacy.prepare("INSERT INTO settings VALUES ('api_token_sha256', ?)").run(sha256(token).toString("hex"));
    });
    const store = await db.reopen();
    const tokens = await TokenRegistry.load(store);
    try {
      expect((await provisionToken(tokens, undefined)).generated).toBeNull();
      const check = checkBearer(`Bearer ${token}`, tokens);
      expect(check.kind === "ok" && { id: check.token.id, scopes: check.token.scopes }).toEqual({ id: "root", scopes: ["admin"] });
      expect(await store.settings.get("api_token_sha256")).toBeUndefined();
    } finally {
      tokens.close();
    }
  });
});

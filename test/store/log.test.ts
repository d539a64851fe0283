import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type OpenedDatabase, openDatabase } from "../../src/db/client.js";
import { INTERRUPTED_MESSAGE, type InvocationEnd, InvocationLog } from "../../src/db/invocations.js";
import { startRetention } from "../../src/db/retention.js";
import { SecretBox } from "../../src/db/secrets.js";
import { createStores } from "../../src/db/stores.js";

let dir: string;
let opened: OpenedDatabase;
let log: InvocationLog;
const clock = { now: 0 };
const DAY = 24 * 3600_000;

function open(): void {
  opened = openDatabase(path.join(dir, "gateway.db"));
  log = createStores(opened, new SecretBox(crypto.randomBytes(32)), { now: () => clock.now }).invocations;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-db-"));
  clock.now = Date.parse("2030-01-01T00:00:00Z");
  open();
});
afterEach(() => {
  opened.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function start(functionName = "f") {
  counter++;
  return log.start({ id: `id-${counter}`, functionName, version: 1, requestBytes: 0, method: "GET", path: "/" });
}

const ended = (overrides: Partial<InvocationEnd> = {}): InvocationEnd => ({
  status: "ok",
  durationMs: 5,
  exitCode: 0,
  signal: null,
  httpStatus: 200,
  responseBytes: 2,
  stdout: "",
  stderr: "",
  stdoutTruncated: false,
  stderrTruncated: false,
  error: null,
  blockedSyscall: null,
  ...overrides,
});

const statusOf = (seq: number) => opened.sqlite.prepare("select status from invocations where seq = ?").pluck().get(seq);

describe("opening the database", () => {
  it("applies the migrations and sets WAL, a busy timeout, synchronous=NORMAL and foreign keys", () => {
    const tables = opened.sqlite.prepare("select name from sqlite_master where type = 'table' order by name").pluck().all();
    expect(tables).toEqual(expect.arrayContaining(["functions", "function_versions", "invocations", "settings", "__drizzle_migrations"]));
    expect(opened.sqlite.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(opened.sqlite.pragma("busy_timeout", { simple: true })).toBeGreaterThan(0);
    expect(opened.sqlite.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    expect(opened.sqlite.pragma("foreign_keys", { simple: true })).toBe(1);
  });

  it("applies each migration once across reopenings", () => {
    opened.close();
    open();
    const applied = opened.sqlite.prepare("select count(*) from __drizzle_migrations").pluck().get();
    expect(applied).toBe(fs.readdirSync(path.join(import.meta.dirname, "../../migrations")).filter((f) => f.endsWith(".sql")).length);
  });
});

describe("the log's start and finish", () => {
  it("writes `running` first, then the end", () => {
    const { seq } = start();
    expect(statusOf(seq)).toBe("running");
    log.finish(seq, ended({ status: "timeout", httpStatus: 504 }));
    expect(log.get(`id-${counter}`)).toMatchObject({ status: "timeout", httpStatus: 504, stdoutTruncated: false });
  });

  it("writes an end once: a row already marked interrupted stays so", () => {
    const { seq } = start();
    log.markInterrupted();
    log.finish(seq, ended());
    expect(statusOf(seq)).toBe("interrupted");
  });

  it("finishSoon writes the ends of one event-loop turn together, after the turn, in one commit", async () => {
    const [a, b] = [start(), start()];
    const watcher = openDatabase(path.join(dir, "gateway.db")); // data_version counts other connections' commits
    const before = watcher.sqlite.prepare("pragma data_version").pluck().get() as number;
    const written = Promise.all([log.finishSoon(a.seq, ended()), log.finishSoon(b.seq, ended({ status: "error" }))]);
    expect([statusOf(a.seq), statusOf(b.seq)]).toEqual(["running", "running"]);
    await written;
    expect([statusOf(a.seq), statusOf(b.seq)]).toEqual(["ok", "error"]);
    expect((watcher.sqlite.prepare("pragma data_version").pluck().get() as number) - before).toBe(1);
    watcher.close();
  });

  it("markInterrupted writes the ends already recorded first: they are not interruptions", async () => {
    const [done, inFlight] = [start(), start()];
    const written = log.finishSoon(done.seq, ended());
    expect(log.markInterrupted()).toBe(1);
    await written;
    expect(statusOf(done.seq)).toBe("ok");
    expect(statusOf(inFlight.seq)).toBe("interrupted");
  });

  it("turns rows left `running` into `interrupted` when a new process opens the database", () => {
    const a = start();
    const b = start();
    log.finish(b.seq, ended());
    opened.close(); // the process died with `a` in flight
    open();
    expect(log.markInterrupted()).toBe(1);
    expect(statusOf(a.seq)).toBe("interrupted");
    expect(statusOf(b.seq)).toBe("ok");
    expect(opened.sqlite.prepare("select error from invocations where seq = ?").pluck().get(a.seq)).toBe(INTERRUPTED_MESSAGE);
  });

  it("keeps started_at from going backwards when the clock does, across restarts too", () => {
    const first = start();
    clock.now -= 60_000;
    const second = start();
    expect(second.startedAt).toBe(first.startedAt);
    opened.close();
    open();
    expect(start().startedAt).toBe(first.startedAt);
    clock.now += 120_000;
    expect(start().startedAt).toBe(clock.now);
  });
});

describe("stats", () => {
  it("runs on a worker thread's own connection, never on the one that serves invocations", async () => {
    for (const d of [3, 1, 2]) {
      const { seq } = start("s");
      log.finish(seq, ended({ durationMs: d }));
    }
    const prepare = vi.spyOn(opened.sqlite, "prepare");
    const stats = await log.stats("s", 0, clock.now + 1);
    const onMain = prepare.mock.calls.length;
    prepare.mockRestore();
    expect(onMain).toBe(0);
    expect(stats).toMatchObject({ count: 3, durationMs: { p50: 2, p99: 3, max: 3, mean: 2 } });
  });
});

describe("listing", () => {
  it("gives the same rows for since/until as a plain filter on started_at", () => {
    const times: number[] = [];
    for (let i = 0; i < 40; i++) {
      clock.now += (i % 3) * 1000; // repeated timestamps included
      const { seq } = start(i % 2 ? "a" : "b");
      log.finish(seq, ended());
      times.push(clock.now);
    }
    const naive = opened.sqlite.prepare("select seq from invocations where started_at >= ? and started_at < ? order by seq desc");
    for (const [since, until] of [
      [times[0], times[39]! + 1],
      [times[5], times[20]],
      [times[7]! + 1, times[8]! + 1],
      [times[39]! + 1, times[39]! + 2],
    ] as [number, number][]) {
      const got = log.list({ since, until, limit: 500 }).items.map((r) => r.seq);
      expect(got).toEqual(naive.pluck().all(since, until));
    }
  });
});

describe("following the log (?after=)", () => {
  const idOf = (seq: number) => opened.sqlite.prepare("select id from invocations where seq = ?").pluck().get(seq);
  const keyOf = (seq: number) => log.finishedSeqOf(idOf(seq) as string);

  it("lists what finished after an invocation in the order it finished, not the order it started", () => {
    const slow = start();
    const quick = start();
    const third = start("g");
    log.finish(quick.seq, ended());
    expect(keyOf(slow.seq)).toBeNull(); // running: no place in the finish order yet
    log.finish(third.seq, ended());
    log.finish(slow.seq, ended());
    const afterQuick = log.list({ afterFinishedSeq: keyOf(quick.seq)!, limit: 50 });
    expect(afterQuick.items.map((r) => r.seq)).toEqual([third.seq, slow.seq]);
    expect(afterQuick.more).toBe(false);
    expect(log.list({ afterFinishedSeq: keyOf(quick.seq)!, functionName: "f", limit: 50 }).items.map((r) => r.seq)).toEqual([slow.seq]);
    const firstOnly = log.list({ afterFinishedSeq: 0, limit: 1 });
    expect(firstOnly).toMatchObject({ items: [{ seq: quick.seq }], more: true, nextBeforeSeq: null });
    expect(log.list({ afterFinishedSeq: keyOf(slow.seq)!, limit: 50 }).items).toEqual([]);
  });

  it("gives rows marked interrupted at start-up a place after everything that finished before", () => {
    const a = start();
    const b = start();
    const c = start();
    log.finish(b.seq, ended());
    log.markInterrupted();
    expect(log.list({ afterFinishedSeq: keyOf(b.seq)!, limit: 50 }).items.map((r) => [r.seq, r.status])).toEqual([
      [a.seq, "interrupted"],
      [c.seq, "interrupted"],
    ]);
    const d = start();
    log.finish(d.seq, ended());
    expect(keyOf(d.seq)).toBeGreaterThan(keyOf(c.seq)!);
  });

  it("answers undefined for an id the log does not hold", () => {
    expect(log.finishedSeqOf("no-such-id")).toBeUndefined();
  });
});

describe("query plans", () => {
  /** EXPLAIN QUERY PLAN of every statement `run` sends, on the main connection or to the read worker. */
  async function plansOf(run: (log: InvocationLog) => unknown): Promise<string[]> {
    const statements: string[] = [];
    const capturing = new InvocationLog(opened.db, {
      now: () => clock.now,
      readInBackground: async (query) => {
        statements.push(query.sql);
        return [];
      },
    });
    const prepare = vi.spyOn(opened.sqlite, "prepare");
    await run(capturing);
    statements.push(...prepare.mock.calls.map(([sql]) => String(sql)));
    prepare.mockRestore();
    return statements.map((sql) => {
      const params = Array.from(sql.matchAll(/\?/g), () => 1);
      const rows = opened.sqlite.prepare(`explain query plan ${sql}`).all(...params) as { detail: string }[];
      return rows.map((r) => r.detail).join(" | ");
    });
  }

  it("answers every filter of the API from an index, never a scan of the log", async () => {
    const cases: [string, (log: InvocationLog) => unknown, RegExp][] = [
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
      ["start-up", (l) => l.markInterrupted(), /USING INDEX invocations_status_seq/],
      [
        "what finished after an invocation",
        (l) => l.list({ limit: 50, afterFinishedSeq: 10 }),
        /USING INDEX invocations_finished_seq \(finished_seq>\?\)/,
      ],
      ["the finish key of an id", (l) => l.finishedSeqOf("x"), /USING INDEX invocations_id_unique/],
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
    start();
    clock.now += 1000;
    const later = start();
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

describe("retention", () => {
  function fill(count: number, stepMs: number) {
    for (let i = 0; i < count; i++) {
      const { seq } = start();
      log.finish(seq, ended());
      clock.now += stepMs;
    }
  }
  const remaining = () => opened.sqlite.prepare("select count(*) from invocations").pluck().get() as number;

  it("deletes rows older than LOG_RETENTION_DAYS, in batches", async () => {
    fill(30, DAY / 2); // 15 days of rows
    const retention = startRetention(log, {
      retentionDays: 10,
      retentionRows: 0,
      intervalMs: 3600_000,
      batchSize: 4,
      now: () => clock.now,
    });
    const deleted = await retention.runOnce();
    retention.stop();
    // Rows from the first 5 days (started more than 10 days before now) are gone.
    expect(deleted).toBe(10);
    const oldest = opened.sqlite.prepare("select min(started_at) from invocations").pluck().get() as number;
    expect(oldest).toBeGreaterThanOrEqual(clock.now - 10 * DAY);
  });

  it("keeps at most LOG_RETENTION_ROWS rows, the newest", async () => {
    fill(25, 1000);
    const newest = opened.sqlite.prepare("select max(seq) from invocations").pluck().get() as number;
    const retention = startRetention(log, {
      retentionDays: 0,
      retentionRows: 10,
      intervalMs: 3600_000,
      batchSize: 3,
      now: () => clock.now,
    });
    expect(await retention.runOnce()).toBe(15);
    retention.stop();
    expect(remaining()).toBe(10);
    expect(opened.sqlite.prepare("select min(seq) from invocations").pluck().get()).toBe(newest - 9);
  });

  it("deletes nothing when both limits are off", async () => {
    fill(5, DAY * 100);
    const retention = startRetention(log, { retentionDays: 0, retentionRows: 0, intervalMs: 3600_000, now: () => clock.now });
    expect(await retention.runOnce()).toBe(0);
    retention.stop();
    expect(remaining()).toBe(5);
  });

  it("runs on its interval without keeping the process alive", async () => {
    fill(5, 1000);
    const retention = startRetention(log, { retentionDays: 0, retentionRows: 2, intervalMs: 1000, now: () => clock.now });
    await new Promise((resolve) => setTimeout(resolve, 1300));
    retention.stop();
    expect(remaining()).toBe(2);
  });
});

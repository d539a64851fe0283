import { describe, expect, it } from "vitest";
import type { Store } from "../../src/store/contract.js";
import { type RetentionOptions, startRetention } from "../../src/store/retention.js";
import { DAY, eventually, runOne, T0, useTestStore } from "./harness.js";

// Retention of the invocation log, and the named lock that lets one gateway prune at a time.

const db = useTestStore();

/** `count` finished rows, `stepMs` apart from T0 on; returns their ids, oldest first. */
async function fill(count: number, stepMs: number, output = ""): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await runOne(db.store, { startedAt: T0 + i * stepMs }, { stdout: output })).id);
  return ids;
}
const remaining = () => db.number("select count(*) from invocations");

/** Runs one pass of retention on `store` with these options (never on its interval). */
async function pruneOnce(store: Store, options: Partial<RetentionOptions>): Promise<number> {
  const retention = startRetention(store, { retentionDays: 0, retentionRows: 0, intervalMs: 3600_000, ...options });
  try {
    return await retention.runOnce();
  } finally {
    retention.stop();
  }
}

describe("retention", () => {
  it("deletes rows older than LOG_RETENTION_DAYS, in batches", async () => {
    await fill(30, DAY / 2); // 15 days of rows
    const now = T0 + 15 * DAY;
    expect(await pruneOnce(db.store, { retentionDays: 10, batchSize: 4, now: () => now })).toBe(10);
    expect(await remaining()).toBe(20);
    expect(await db.number("select min(started_at) from invocations")).toBe(now - 10 * DAY);
  });

  it("keeps at most LOG_RETENTION_ROWS rows, the newest", async () => {
    const ids = await fill(25, 1000);
    expect(await pruneOnce(db.store, { retentionRows: 10, batchSize: 3 })).toBe(15);
    expect((await db.column("select id from invocations order by seq")).sort()).toEqual(ids.slice(15).sort());
  });

  it("deletes nothing when both limits are off", async () => {
    await fill(5, DAY * 100);
    expect(await pruneOnce(db.store, { now: () => T0 + 1000 * DAY })).toBe(0);
    expect(await remaining()).toBe(5);
  });

  it("prunes the oldest rows to 90% of LOG_MAX_MB, and starts the output count afresh", async () => {
    const ids = await fill(40, 1000, "x".repeat(8192));
    const used = await db.store.invocations.usedBytes();
    const maxBytes = Math.floor(used / 2);
    const written = { bytesWritten: 12345 };
    const deleted = await pruneOnce(db.store, { maxBytes, written, batchSize: 5 });
    expect(deleted).toBeGreaterThan(0);
    expect(await db.store.invocations.usedBytes()).toBeLessThanOrEqual(maxBytes * 0.9);
    expect(await remaining()).toBe(40 - deleted);
    // Oldest first: what is left is the newest rows.
    expect((await db.column("select id from invocations")).sort()).toEqual(ids.slice(deleted).sort());
    expect(written.bytesWritten).toBe(0);
  });

  it("runs on its interval without keeping the process alive", async () => {
    await fill(5, 1000);
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const retention = startRetention(db.store, { retentionDays: 0, retentionRows: 2, intervalMs: 100 });
    try {
      // Its timers are unref'd: they are no resource that keeps the event loop alive.
      expect(process.getActiveResourcesInfo().filter((r) => r === "Timeout").length).toBe(timersBefore);
      await eventually(async () => (await remaining()) === 2, "retention's first pass on its interval");
    } finally {
      retention.stop();
    }
  });

  it("prunes on one gateway at a time: while another holds the lock, a pass deletes nothing", async () => {
    await fill(12, 1000);
    const [first, second] = await db.gateways(2);
    const whileHeld = await first!.exclusively("log-retention", async () => {
      const skipped = await pruneOnce(second!, { retentionRows: 2 });
      return { skipped, left: await remaining() };
    });
    expect(whileHeld).toEqual({ skipped: 0, left: 12 });
    expect(await pruneOnce(second!, { retentionRows: 2 })).toBe(10);
  });
});

describe("exclusively", () => {
  it("runs work holding a named lock; another gateway asking for the same name is turned away, not made to wait", async () => {
    const [first, second] = await db.gateways(2);
    let ranInside = false;
    const outcome = await first!.exclusively("job", async () => {
      const refused = await second!.exclusively("job", async () => {
        ranInside = true;
        return "ran";
      });
      const other = await second!.exclusively("another-job", async () => "other ran");
      return { refused, other };
    });
    expect(outcome).toEqual({ refused: undefined, other: "other ran" });
    expect(ranInside).toBe(false);
    expect(await second!.exclusively("job", async () => "ran after")).toBe("ran after");
  });

  it("releases the lock when the work throws", async () => {
    const [first, second] = await db.gateways(2);
    await expect(
      first!.exclusively("job", async () => {
        throw new Error("failed inside");
      }),
    ).rejects.toThrow("failed inside");
    expect(await second!.exclusively("job", async () => "ran")).toBe("ran");
  });
});

import { describe, expect, it } from "vitest";
import type { InvocationFilter } from "../../src/core/invocations.js";
import { INVOCATION_STATUSES, type InvocationStatus } from "../../src/core/statuses.js";
import { endOf, runOne, startOne, startRow, T0, useTestStore } from "./harness.js";

// The invocation log's contract, on the engine under test.

const db = useTestStore();
const log = () => db.store.invocations;
const statusOf = async (id: string) => (await log().get(id))?.status;

describe("start", () => {
  it("writes `running` rows with their gateway and start time, keyed in the order given", async () => {
    const rows = [
      startRow({ startedAt: T0 }),
      startRow({ startedAt: T0 + 1, functionName: "g", version: 3 }),
      startRow({ node: "node-b" }),
    ];
    const written = await log().start(rows);
    expect(written.map((w) => w.id)).toEqual(rows.map((r) => r.id));
    expect(written[1]!.seq).toBeGreaterThan(written[0]!.seq);
    expect(written[2]!.seq).toBeGreaterThan(written[1]!.seq);
    expect(await log().get(rows[1]!.id)).toMatchObject({
      seq: written[1]!.seq,
      functionName: "g",
      version: 3,
      node: "node-a",
      status: "running",
      startedAt: T0 + 1,
      trigger: "http",
      attempt: 1,
      jobId: null,
      finishedSeq: null,
      durationMs: null,
      stdout: "",
    });
    expect((await log().get(rows[2]!.id))?.node).toBe("node-b");
  });

  it("keeps a job's trigger, attempt and job id", async () => {
    const { id } = await startOne(db.store, { trigger: "async", attempt: 2, jobId: "job-1" });
    expect(await log().get(id)).toMatchObject({ trigger: "async", attempt: 2, jobId: "job-1" });
  });

  it("leaves a row whose id exists alone: a start handed in twice is written once", async () => {
    const { id, seq } = await runOne(db.store);
    const again = await log().start([startRow({ id }), startRow()]);
    expect(again.map((w) => w.id)).not.toContain(id);
    expect(again).toHaveLength(1);
    expect(await log().get(id)).toMatchObject({ seq, status: "ok" });
    expect(await db.number("select count(*) from invocations where id = ?", id)).toBe(1);
  });
});

describe("finish", () => {
  it("stores the end as given, every column", async () => {
    const { id } = await startOne(db.store);
    const end = endOf({
      status: "forbidden",
      durationMs: 12.5,
      firstByteMs: 3.25,
      exitCode: null,
      signal: "SIGSYS",
      httpStatus: 500,
      responseBytes: 1234,
      stdout: "out ✓",
      stderr: "err",
      stdoutTruncated: true,
      stderrTruncated: false,
      stdoutDroppedBytes: 4096,
      stderrDroppedBytes: 0,
      error: "the function made a forbidden system call",
      blockedSyscall: "socket",
      deniedSyscalls: [{ name: "ptrace", count: 2 }],
    });
    const [place] = await log().finish([{ id, end }]);
    expect(place).toBeGreaterThan(0);
    const row = await log().get(id);
    expect(row).toMatchObject({ ...end, finishedSeq: place });
  });

  it("ends a row once: a second end changes nothing", async () => {
    const { id } = await startOne(db.store);
    expect((await log().finish([{ id, end: endOf({ status: "timeout", httpStatus: 504 }) }]))[0]).not.toBeNull();
    expect(await log().finish([{ id, end: endOf({ status: "ok" }) }])).toEqual([null]);
    expect(await log().get(id)).toMatchObject({ status: "timeout", httpStatus: 504 });
  });

  it("leaves a row marked interrupted as it is", async () => {
    const { id } = await startOne(db.store);
    expect(await log().markInterrupted("node-a", "stopped")).toBe(1);
    expect(await log().finish([{ id, end: endOf() }])).toEqual([null]);
    expect(await log().get(id)).toMatchObject({ status: "interrupted", error: "stopped", durationMs: null });
  });

  it("answers null for an id the log does not hold, and still ends the others of the call", async () => {
    const { id } = await startOne(db.store);
    const places = await log().finish([
      { id: "no-such-id", end: endOf() },
      { id, end: endOf() },
    ]);
    expect(places[0]).toBeNull();
    expect(places[1]).toBeGreaterThan(0);
    expect(await statusOf(id)).toBe("ok");
  });

  it("gives the ends of one call places in the order given", async () => {
    const rows = await log().start([startRow(), startRow(), startRow()]);
    const places = await log().finish([rows[2]!, rows[0]!, rows[1]!].map(({ id }) => ({ id, end: endOf() })));
    expect(places.every((p) => p !== null)).toBe(true);
    expect([...places].sort((a, b) => a! - b!)).toEqual(places);
  });
});

describe("markInterrupted", () => {
  it("ends that gateway's running rows as interrupted, and touches nothing else", async () => {
    const mine = await startOne(db.store, { node: "node-a" });
    const done = await runOne(db.store, { node: "node-a" });
    const theirs = await startOne(db.store, { node: "node-b" });
    expect(await log().markInterrupted("node-a", "the gateway stopped")).toBe(1);
    expect(await log().get(mine.id)).toMatchObject({ status: "interrupted", error: "the gateway stopped" });
    expect(await statusOf(done.id)).toBe("ok");
    expect(await statusOf(theirs.id)).toBe("running");
    expect(await log().markInterrupted("node-a", "again")).toBe(0);
    expect((await log().get(mine.id))?.error).toBe("the gateway stopped");
  });
});

describe("the finish order (?after=)", () => {
  it("lists what finished after a place in the order it finished, not the order it started", async () => {
    const [slow, quick, other] = await log().start([startRow(), startRow(), startRow({ functionName: "g" })]);
    const [quickPlace] = await log().finish([{ id: quick!.id, end: endOf() }]);
    expect(await log().finishedSeqOf(slow!.id)).toBeNull(); // running: no place yet
    await log().finish([{ id: other!.id, end: endOf() }]);
    await log().finish([{ id: slow!.id, end: endOf() }]);

    const afterQuick = await log().list({ afterFinishedSeq: quickPlace!, limit: 50 });
    expect(afterQuick.items.map((r) => r.id)).toEqual([other!.id, slow!.id]);
    expect(afterQuick).toMatchObject({ more: false, nextBeforeSeq: null });
    expect((await log().list({ afterFinishedSeq: quickPlace!, functionName: "f", limit: 50 })).items.map((r) => r.id)).toEqual([slow!.id]);
    expect(await log().list({ afterFinishedSeq: 0, limit: 1 })).toMatchObject({
      items: [{ id: quick!.id }],
      more: true,
      nextBeforeSeq: null,
    });
    const slowPlace = (await log().finishedSeqOf(slow!.id))!;
    expect((await log().list({ afterFinishedSeq: slowPlace, limit: 50 })).items).toEqual([]);
  });

  it("places rows marked interrupted after everything that finished before, and later ends after them", async () => {
    const [a, b, c] = await log().start([startRow(), startRow(), startRow()]);
    const [bPlace] = await log().finish([{ id: b!.id, end: endOf() }]);
    await log().markInterrupted("node-a", "stopped");
    const after = await log().list({ afterFinishedSeq: bPlace!, limit: 50 });
    expect(after.items.map((r) => [r.id, r.status])).toEqual([
      [a!.id, "interrupted"],
      [c!.id, "interrupted"],
    ]);
    const d = await runOne(db.store);
    expect(d.finishedSeq).toBeGreaterThan((await log().finishedSeqOf(c!.id))!);
    expect(await log().lastFinishedSeq()).toBe(d.finishedSeq);
  });

  it("knows where the log stands: 0 when empty, then the newest place", async () => {
    expect(await log().lastFinishedSeq()).toBe(0);
    await startOne(db.store);
    expect(await log().lastFinishedSeq()).toBe(0);
    const first = await runOne(db.store);
    const second = await runOne(db.store);
    expect(second.finishedSeq).toBeGreaterThan(first.finishedSeq);
    expect(await log().lastFinishedSeq()).toBe(second.finishedSeq);
    expect(await log().finishedSeqOf(first.id)).toBe(first.finishedSeq);
  });

  it("answers undefined for the place of an id the log does not hold", async () => {
    expect(await log().finishedSeqOf("no-such-id")).toBeUndefined();
    expect(await log().get("no-such-id")).toBeUndefined();
  });
});

describe("list", () => {
  /** 60 rows over two functions, every status, timestamps repeating. */
  async function fill(): Promise<number[]> {
    const times: number[] = [];
    let now = T0;
    const ends = INVOCATION_STATUSES.filter((s) => s !== "running");
    for (let i = 0; i < 60; i++) {
      now += (i % 3) * 1000;
      const { id } = await startOne(db.store, { functionName: i % 2 ? "a" : "b", startedAt: now });
      if (i % 7 !== 0) await log().finish([{ id, end: endOf({ status: ends[i % ends.length] as Exclude<InvocationStatus, "running"> }) }]);
      times.push(now);
    }
    return times;
  }

  /** What a plain SQL filter gives, newest first. */
  async function naive(filter: Omit<InvocationFilter, "limit">): Promise<number[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      where.push(clause);
      params.push(value);
    };
    if (filter.functionName !== undefined) add("function_name = ?", filter.functionName);
    if (filter.status !== undefined) add("status = ?", filter.status);
    if (filter.since !== undefined) add("started_at >= ?", filter.since);
    if (filter.until !== undefined) add("started_at < ?", filter.until);
    if (filter.beforeSeq !== undefined) add("seq < ?", filter.beforeSeq);
    const text = `select seq from invocations ${where.length ? `where ${where.join(" and ")}` : ""} order by seq desc`;
    return (await db.column(text, ...params)).map(Number);
  }

  /** Every page of `filter`, followed by its cursor. */
  async function allPages(filter: Omit<InvocationFilter, "limit">, limit: number): Promise<number[]> {
    const seqs: number[] = [];
    let beforeSeq = filter.beforeSeq;
    for (;;) {
      const page = await log().list({ ...filter, beforeSeq, limit });
      expect(page.items.length).toBeLessThanOrEqual(limit);
      seqs.push(...page.items.map((r) => r.seq));
      if (page.nextBeforeSeq === null) {
        expect(page.more).toBe(false);
        return seqs;
      }
      expect(page.more).toBe(true);
      beforeSeq = page.nextBeforeSeq;
    }
  }

  it("gives the rows of every filter that a plain SQL filter gives, newest first, page after page", async () => {
    const times = await fill();
    const seqs = await naive({});
    const filters: Omit<InvocationFilter, "limit">[] = [
      {},
      { functionName: "a" },
      { status: "ok" },
      { status: "running" },
      { functionName: "b", status: "error" },
      { since: times[0]!, until: times[59]! + 1 },
      { since: times[5]!, until: times[20]! },
      { since: times[7]! + 1, until: times[8]! + 1 },
      { since: times[59]! + 1 },
      { until: times[0]! },
      { until: times[30]!, functionName: "a", status: "interrupted" },
      { beforeSeq: seqs[10]! },
      { beforeSeq: seqs[10]!, since: times[12]!, functionName: "b" },
    ];
    for (const filter of filters) {
      const expected = await naive(filter);
      expect(await allPages(filter, 500), JSON.stringify(filter)).toEqual(expected);
      expect(await allPages(filter, 7), JSON.stringify(filter)).toEqual(expected);
    }
  });

  it("leaves out the output in listed rows", async () => {
    await runOne(db.store, {}, { stdout: "out", stderr: "err" });
    const [item] = (await log().list({ limit: 1 })).items;
    expect(item).toBeDefined();
    expect(item).not.toHaveProperty("stdout");
    expect(item).not.toHaveProperty("stderr");
  });

  it("knows which functions it has seen", async () => {
    await startOne(db.store, { functionName: "seen" });
    expect(await log().hasFunction("seen")).toBe(true);
    expect(await log().hasFunction("unseen")).toBe(false);
  });
});

describe("stats", () => {
  it("counts by status and takes nearest-rank percentiles over the runs of [since, until)", async () => {
    // Before the window, in it (durations 1..20 in shuffled order), another function's, after it.
    await runOne(db.store, { functionName: "s", startedAt: T0 }, { durationMs: 5000 });
    const durations = Array.from({ length: 20 }, (_, i) => i + 1).sort((x, y) => ((x * 7) % 20) - ((y * 7) % 20));
    for (const durationMs of durations) await runOne(db.store, { functionName: "s", startedAt: T0 + 10 }, { durationMs });
    // Counted, but no run of the function's own: not in the percentiles.
    await runOne(db.store, { functionName: "s", startedAt: T0 + 10 }, { status: "interrupted", durationMs: 1000 });
    await runOne(db.store, { functionName: "s", startedAt: T0 + 10 }, { status: "rejected", durationMs: 0, httpStatus: 503 });
    await startOne(db.store, { functionName: "s", startedAt: T0 + 10 });
    await runOne(db.store, { functionName: "other", startedAt: T0 + 10 }, { durationMs: 5000 });
    await runOne(db.store, { functionName: "s", startedAt: T0 + 100 }, { durationMs: 5000 });

    const stats = await log().stats("s", T0 + 1, T0 + 100);
    expect(stats.count).toBe(23);
    expect(stats.byStatus).toMatchObject({ ok: 20, interrupted: 1, rejected: 1, running: 1, error: 0 });
    // Nearest rank: the value at rank ceil(p * n), n = 20.
    expect(stats.durationMs).toEqual({ p50: 10, p95: 19, p99: 20, max: 20, mean: 10.5 });
  });

  it("ranks an odd count and counts every timed status", async () => {
    const runs: [number, "ok" | "error" | "timeout" | "oom" | "forbidden"][] = [
      [70, "ok"],
      [10, "error"],
      [40, "timeout"],
      [30, "oom"],
      [60, "forbidden"],
      [20, "ok"],
      [50, "ok"],
    ];
    for (const [durationMs, status] of runs) await runOne(db.store, { functionName: "s" }, { durationMs, status });
    const stats = await log().stats("s", T0, T0 + 1);
    expect(stats.byStatus).toMatchObject({ ok: 3, error: 1, timeout: 1, oom: 1, forbidden: 1 });
    // n = 7: ranks ceil(3.5) = 4, ceil(6.65) = 7, ceil(6.93) = 7.
    expect(stats.durationMs).toEqual({ p50: 40, p95: 70, p99: 70, max: 70, mean: 40 });
  });

  it("answers zero counts and no percentiles for an empty window", async () => {
    await runOne(db.store, { functionName: "s", startedAt: T0 });
    const stats = await log().stats("s", T0 + 1, T0 + 2);
    expect(stats.count).toBe(0);
    expect(Object.values(stats.byStatus).every((n) => n === 0)).toBe(true);
    expect(stats.durationMs).toEqual({ p50: null, p95: null, p99: null, max: null, mean: null });
  });
});

describe("pruning", () => {
  /** `count` finished rows, `stepMs` apart from T0 on. */
  async function fill(count: number, stepMs: number, output = ""): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push((await runOne(db.store, { startedAt: T0 + i * stepMs }, { stdout: output })).id);
    return ids;
  }
  const remaining = () => db.number("select count(*) from invocations");
  const oldestStart = () => db.number("select min(started_at) from invocations");

  it("pruneBatch deletes rows older than a time, oldest first, a batch at a time", async () => {
    await fill(10, 1000);
    expect(await log().pruneBatch({ olderThan: T0 + 6000, keepRows: null, batchSize: 4 })).toBe(4);
    expect(await oldestStart()).toBe(T0 + 4000);
    expect(await log().pruneBatch({ olderThan: T0 + 6000, keepRows: null, batchSize: 4 })).toBe(2);
    expect(await log().pruneBatch({ olderThan: T0 + 6000, keepRows: null, batchSize: 4 })).toBe(0);
    expect(await remaining()).toBe(4);
    expect(await oldestStart()).toBe(T0 + 6000);
  });

  it("pruneBatch keeps the newest rows, a batch at a time", async () => {
    const ids = await fill(12, 1000);
    let deleted = 0;
    for (let batch = -1; batch !== 0; deleted += batch) batch = await log().pruneBatch({ olderThan: null, keepRows: 5, batchSize: 3 });
    expect(deleted).toBe(7);
    expect((await log().list({ limit: 50 })).items.map((r) => r.id)).toEqual(ids.slice(7).reverse());
  });

  it("pruneBatch with both limits takes what either one names, and nothing with neither", async () => {
    await fill(10, 1000);
    expect(await log().pruneBatch({ olderThan: null, keepRows: null, batchSize: 100 })).toBe(0);
    expect(await log().pruneBatch({ olderThan: T0 + 2000, keepRows: 6, batchSize: 100 })).toBe(4);
    expect(await remaining()).toBe(6);
  });

  it("pruneOldest deletes the oldest rows by key", async () => {
    const ids = await fill(5, 1000);
    expect(await log().pruneOldest(2)).toBe(2);
    expect(await log().get(ids[1]!)).toBeUndefined();
    expect(await log().get(ids[2]!)).toBeDefined();
    expect(await log().pruneOldest(10)).toBe(3);
    expect(await log().pruneOldest(10)).toBe(0);
  });

  it("counts the bytes the log uses: more with output, fewer once pruned", async () => {
    // 8 KiB of output a row; each engine adds its own overhead, so the bounds are what the output alone takes.
    const output = 8192;
    const empty = await log().usedBytes();
    await fill(40, 1000, "x".repeat(output));
    const full = await log().usedBytes();
    expect(full - empty).toBeGreaterThanOrEqual(40 * output);
    expect(await log().pruneOldest(30)).toBe(30);
    const pruned = await log().usedBytes();
    expect(full - pruned).toBeGreaterThanOrEqual(30 * output);
    expect(pruned - empty).toBeGreaterThanOrEqual(10 * output);
  });
});

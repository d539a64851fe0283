import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import type { NewJob, QueueBounds } from "../../src/store/contract.js";
import { useTestStore } from "./harness.js";

// The job queue and schedule ticks of the store contract, on the engine under test (the unit
// project: SQLite; the postgres project: the same on PostgreSQL). Leases are what let several
// gateways share one queue: these tests hold them to it with several "nodes" on one store.

const WIDE: QueueBounds = { maxJobs: 1_000_000, maxBytes: 1e12, functionMaxJobs: 1_000_000, functionMaxBytes: 1e12 };
const db = useTestStore();

let serial = 0;
function job(overrides: Partial<NewJob> = {}): NewJob {
  serial++;
  return {
    id: `job-${String(serial).padStart(6, "0")}-${crypto.randomBytes(3).toString("hex")}`,
    functionName: "f",
    version: null,
    trigger: "async",
    request: { method: "POST", path: "/", url: "http://localhost/fn/f/", headers: [["x-a", "1"]], body: Buffer.from("body") },
    requestBytes: 100,
    maxAttempts: 3,
    createdAt: 1000,
    expiresAt: 1_000_000,
    runAt: 1000,
    idempotencyKey: null,
    callbackUrl: null,
    ...overrides,
  };
}

describe("the job queue", () => {
  it("never leases one job to two nodes, however they race", async () => {
    for (let n = 0; n < 60; n++) expect((await db.store.jobs.enqueue(job(), WIDE, 0)).kind).toBe("enqueued");
    const batches = await Promise.all(Array.from({ length: 6 }, (_, k) => db.store.jobs.lease(`node-${k % 3}`, 2000, 60_000, 15, [])));
    const ids = batches.flat().map((j) => j.id);
    expect(ids).toHaveLength(60);
    expect(new Set(ids).size).toBe(60);
    for (const leased of batches.flat()) expect(leased).toMatchObject({ state: "running", attempts: 1, leaseUntil: 60_000 });
  });

  it("lets only the holder settle, takes a job again once its lease ran out, and counts the queue's use", async () => {
    const stored = await db.store.jobs.enqueue(job(), WIDE, 0);
    expect((await db.store.jobs.usage()).jobs).toBe(1);
    const [mine] = await db.store.jobs.lease("a", 2000, 5000, 10, []);
    expect(mine!.body!.toString()).toBe("body");
    expect(await db.store.jobs.lease("b", 4000, 9000, 10, [])).toEqual([]);
    // a stalled past its lease: b takes it, and a's late end is refused.
    const [again] = await db.store.jobs.lease("b", 5001, 9000, 10, []);
    expect(again).toMatchObject({ id: stored.kind === "enqueued" && stored.job.id, attempts: 2, leaseNode: "b" });
    const end = { finishedAt: 6000, lastInvocationId: "x", lastStatus: "ok" as const, lastError: null, durationMs: 3, result: null };
    expect(await db.store.jobs.settle(again!.id, "a", 1, { state: "succeeded", ...end })).toBe(false);
    expect(await db.store.jobs.renew("a", [again!.id], 20_000)).toEqual([]);
    expect(await db.store.jobs.renew("b", [again!.id], 20_000)).toEqual([again!.id]);
    const result = {
      httpStatus: 200,
      headers: [["content-type", "text/plain"]] as [string, string][],
      body: Buffer.from("ok"),
      truncated: false,
    };
    expect(await db.store.jobs.settle(again!.id, "b", 2, { state: "succeeded", ...end, result })).toBe(true);
    const done = await db.store.jobs.get(again!.id);
    expect(done).toMatchObject({ state: "succeeded", body: null, resultHttpStatus: 200, leaseNode: null });
    expect(done!.resultBody!.toString()).toBe("ok");
    expect((await db.store.jobs.usage()).jobs).toBe(0);
  });

  it("keeps a retrying job until it is due, and hands a job back unrun without counting the attempt", async () => {
    await db.store.jobs.enqueue(job(), WIDE, 0);
    const [first] = await db.store.jobs.lease("a", 2000, 9000, 1, []);
    const retry = { state: "retrying" as const, runAt: 3000, lastInvocationId: "i1", lastStatus: "error" as const, lastError: "boom" };
    expect(await db.store.jobs.settle(first!.id, "a", 1, retry)).toBe(true);
    expect(await db.store.jobs.lease("a", 2999, 9000, 1, [])).toEqual([]);
    const [second] = await db.store.jobs.lease("a", 3000, 9000, 1, []);
    expect(second).toMatchObject({ attempts: 2, lastError: "boom" });
    await db.store.jobs.release(second!.id, "a", 3500);
    expect(await db.store.jobs.get(second!.id)).toMatchObject({ state: "retrying", attempts: 1, runAt: 3500 });
    expect(await db.store.jobs.lease("a", 3500, 9000, 1, ["f"])).toEqual([]);
  });

  it("refuses past the bounds and stores nothing then; answers an idempotency key within its window", async () => {
    const bounds: QueueBounds = { maxJobs: 3, maxBytes: 1e9, functionMaxJobs: 2, functionMaxBytes: 1e9 };
    expect((await db.store.jobs.enqueue(job(), bounds, 0)).kind).toBe("enqueued");
    expect((await db.store.jobs.enqueue(job(), bounds, 0)).kind).toBe("enqueued");
    expect(await db.store.jobs.enqueue(job(), bounds, 0)).toEqual({ kind: "full", scope: "function" });
    expect((await db.store.jobs.enqueue(job({ functionName: "g" }), bounds, 0)).kind).toBe("enqueued");
    expect(await db.store.jobs.enqueue(job({ functionName: "h" }), bounds, 0)).toEqual({ kind: "full", scope: "queue" });
    expect((await db.store.jobs.list({ limit: 100 })).length).toBe(3);
    const usage = await db.store.jobs.usage();
    expect({ all: usage.jobs, f: usage.byFunction.get("f")?.jobs, g: usage.byFunction.get("g")?.jobs }).toEqual({ all: 3, f: 2, g: 1 });

    const keyed = await db.store.jobs.enqueue(job({ functionName: "k", idempotencyKey: "K", createdAt: 10_000 }), WIDE, 0);
    const again = await db.store.jobs.enqueue(job({ functionName: "k", idempotencyKey: "K", createdAt: 20_000 }), WIDE, 5000);
    expect(again.kind).toBe("existing");
    expect(again.kind === "existing" && keyed.kind === "enqueued" && again.job.id === keyed.job.id).toBe(true);
    expect((await db.store.jobs.enqueue(job({ functionName: "k", idempotencyKey: "K", createdAt: 99_000 }), WIDE, 50_000)).kind).toBe(
      "enqueued",
    );
  });

  it("do not count against the log's byte budget (LOG_MAX_MB): the queue has bounds of its own", async () => {
    const before = await db.store.invocations.usedBytes();
    const body = Buffer.alloc(64 * 1024, 7);
    for (let n = 0; n < 100; n++) {
      await db.store.jobs.enqueue(job({ request: { ...job().request, body }, requestBytes: body.byteLength }), WIDE, 0);
    }
    expect((await db.store.jobs.usage()).bytes).toBe(100 * body.byteLength);
    expect((await db.store.invocations.usedBytes()) - before).toBeLessThan(256 * 1024);
  });

  it("cancels a queued job once", async () => {
    const stored = await db.store.jobs.enqueue(job(), WIDE, 0);
    const id = stored.kind === "enqueued" ? stored.job.id : "";
    expect(await db.store.jobs.cancel(id, 5)).toMatchObject({ cancelled: true, job: { state: "cancelled" } });
    expect(await db.store.jobs.cancel(id, 6)).toMatchObject({ cancelled: false, job: { state: "cancelled" } });
    expect(await db.store.jobs.cancel("nope", 6)).toBeUndefined();
    expect((await db.store.jobs.usage()).jobs).toBe(0);
  });

  it("leases each due callback to one node and records its deliveries", async () => {
    const stored = await db.store.jobs.enqueue(job({ callbackUrl: "https://example.com/hook" }), WIDE, 0);
    const id = stored.kind === "enqueued" ? stored.job.id : "";
    await db.store.jobs.lease("a", 2000, 9000, 1, []);
    await db.store.jobs.settle(id, "a", 1, {
      state: "failed",
      finishedAt: 2500,
      lastInvocationId: null,
      lastStatus: "error",
      lastError: "x",
      durationMs: 1,
      result: null,
    });
    const [a, b] = await Promise.all([db.store.jobs.leaseCallbacks("a", 3000, 9000, 5), db.store.jobs.leaseCallbacks("b", 3000, 9000, 5)]);
    expect([...a!, ...b!].map((j) => j.id)).toEqual([id]);
    const holder = a!.length > 0 ? "a" : "b";
    const delivery = { jobId: id, attempt: 1, at: 3000, durationMs: 2, httpStatus: 500, error: "the receiver answered 500", node: holder };
    expect(await db.store.jobs.recordDelivery(delivery, { state: "pending", runAt: 4000 })).toBe(true);
    expect(await db.store.jobs.leaseCallbacks("a", 3999, 9000, 5)).toEqual([]);
    expect((await db.store.jobs.leaseCallbacks("a", 4000, 9000, 5)).map((j) => j.callbackAttempts)).toEqual([2]);
    expect(await db.store.jobs.deliveries(id)).toEqual([delivery]);
  });
});

describe("schedule ticks", () => {
  it("are claimed once however many nodes race for them; a pending run makes the next tick skipped", async () => {
    const tick = { functionName: "f", scheduleKey: "k", tickAt: 60_000, claimedAt: 60_001 };
    const outcomes = await Promise.all(
      ["a", "b", "c", "a", "b", "c"].map((node) =>
        db.store.schedules.claim(
          { ...tick, node },
          { job: job({ scheduleKey: "k", scheduledAt: 60_000 }), bounds: WIDE, skipWhileRunning: true },
        ),
      ),
    );
    expect(outcomes.filter((o) => o !== null)).toEqual(["enqueued"]);
    expect(await db.store.schedules.lastTick("f", "k")).toBe(60_000);
    expect(
      await db.store.schedules.claim(
        { ...tick, tickAt: 61_000, node: "a" },
        { job: job({ scheduleKey: "k", scheduledAt: 61_000 }), bounds: WIDE, skipWhileRunning: true },
      ),
    ).toBe("skipped");
    expect(await db.store.schedules.claim({ ...tick, tickAt: 59_000, node: "a" }, { outcome: "missed" })).toBe("missed");
    const recent = await db.store.schedules.recent("f", 10);
    expect(recent.map((t) => [t.tickAt, t.outcome, t.jobState ?? null])).toEqual([
      [61_000, "skipped", null],
      [60_000, "enqueued", "queued"],
      [59_000, "missed", null],
    ]);
    expect((await db.store.jobs.list({ limit: 10 })).length).toBe(1);
  });

  it("are pruned by age, each schedule's newest kept (its next look starts there)", async () => {
    for (const [key, tickAt] of [
      ["k", 1000],
      ["k", 2000],
      ["k", 3000],
      ["j", 1000],
    ] as const) {
      await db.store.schedules.claim({ functionName: "f", scheduleKey: key, tickAt, node: "a", claimedAt: tickAt }, { outcome: "missed" });
    }
    expect(await db.store.schedules.prune(10_000)).toBe(2);
    expect((await db.store.schedules.recent("f", 10)).map((t) => [t.scheduleKey, t.tickAt])).toEqual([
      ["k", 3000],
      ["j", 1000],
    ]);
    expect(await db.store.schedules.lastTick("f", "k")).toBe(3000);
  });

  it("record a tick that finds the queue full as refused, and store no job", async () => {
    const full: QueueBounds = { maxJobs: 0, maxBytes: 0, functionMaxJobs: 0, functionMaxBytes: 0 };
    const outcome = await db.store.schedules.claim(
      { functionName: "f", scheduleKey: "k", tickAt: 1000, node: "a", claimedAt: 1000 },
      { job: job(), bounds: full, skipWhileRunning: false },
    );
    expect(outcome).toBe("refused");
    expect(await db.store.jobs.list({ limit: 10 })).toEqual([]);
    expect((await db.store.jobs.usage()).jobs).toBe(0);
  });
});

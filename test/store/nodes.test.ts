import { describe, expect, it } from "vitest";
import { runOne, startOne, useTestStore } from "./harness.js";

// Gateways on one database: their rows, heartbeats, and what a peer does when one goes quiet.

const db = useTestStore();
const nodes = () => db.store.nodes;
const LEASE_MS = 10_000;
const LOST = "its lease ran out";

/** Moves a node's last heartbeat `ms` into the past (the database's clock decides leases). */
const silence = (id: string, ms: number) => db.sql("update nodes set heartbeat_at = heartbeat_at - ? where id = ?", ms, id);
const nodeOf = async (id: string) => (await nodes().list()).find((n) => n.id === id);

describe("nodes", () => {
  it("registers a gateway as started now, beating, with nothing in flight", async () => {
    const before = Date.now();
    await nodes().register("node-a", "1.2.3");
    const after = Date.now();
    const [node] = await nodes().list();
    expect(node).toMatchObject({ id: "node-a", version: "1.2.3", inFlight: 0, stoppedAt: null, lostAt: null });
    // The database's clock, on this machine: within the call (a millisecond's rounding either side).
    expect(node!.startedAt).toBeGreaterThanOrEqual(before - 1);
    expect(node!.startedAt).toBeLessThanOrEqual(after + 1);
    expect(node!.heartbeatAt).toBeGreaterThanOrEqual(node!.startedAt);
  });

  it("records heartbeats with the invocations in flight, and a clean stop", async () => {
    await nodes().register("node-a", "1");
    await silence("node-a", 5000);
    const quiet = (await nodeOf("node-a"))!.heartbeatAt;
    await nodes().heartbeat("node-a", 7);
    const beating = (await nodeOf("node-a"))!;
    expect(beating.inFlight).toBe(7);
    expect(beating.heartbeatAt).toBeGreaterThanOrEqual(quiet + 5000);
    await nodes().stopped("node-a");
    const stopped = (await nodeOf("node-a"))!;
    expect(stopped.inFlight).toBe(0);
    expect(stopped.stoppedAt).toBeGreaterThanOrEqual(beating.heartbeatAt);
  });

  it("starts a node seen before afresh", async () => {
    await nodes().register("node-a", "1");
    await silence("node-a", 60_000);
    await nodes().stopped("node-a");
    await nodes().register("node-a", "2");
    const node = (await nodeOf("node-a"))!;
    expect(node).toMatchObject({ version: "2", stoppedAt: null, lostAt: null, inFlight: 0 });
    expect(await nodes().reapLost(LEASE_MS, LOST)).toEqual([]);
  });

  it("lists every node, oldest start first", async () => {
    await nodes().register("node-b", "1");
    await nodes().register("node-a", "1");
    await db.sql("update nodes set started_at = started_at - 1000 where id = 'node-b'");
    await nodes().register("node-c", "1");
    expect((await nodes().list()).map((n) => n.id)).toEqual(["node-b", "node-a", "node-c"]);
  });
});

describe("reapLost", () => {
  it("ends a lost node's running rows as interrupted, once, and leaves live and cleanly stopped nodes alone", async () => {
    for (const id of ["live", "lost", "stopped"]) await nodes().register(id, "1");
    await nodes().stopped("stopped");
    await silence("lost", LEASE_MS + 1000);
    await silence("stopped", LEASE_MS + 1000);
    await silence("live", LEASE_MS - 2000);
    const running = {
      live: await startOne(db.store, { node: "live" }),
      lost: [await startOne(db.store, { node: "lost" }), await startOne(db.store, { node: "lost" })],
      stopped: await startOne(db.store, { node: "stopped" }),
    };
    const lostDone = await runOne(db.store, { node: "lost" });

    expect(await nodes().reapLost(LEASE_MS, LOST)).toEqual([{ node: "lost", interrupted: 2 }]);
    for (const { id } of running.lost) expect(await db.store.invocations.get(id)).toMatchObject({ status: "interrupted", error: LOST });
    expect((await db.store.invocations.get(lostDone.id))?.status).toBe("ok");
    expect((await db.store.invocations.get(running.live.id))?.status).toBe("running");
    expect((await db.store.invocations.get(running.stopped.id))?.status).toBe("running");
    expect((await nodeOf("lost"))?.lostAt).not.toBeNull();
    expect((await nodeOf("live"))?.lostAt).toBeNull();

    // Once: a second look finds nothing, even with a row of the lost node started since.
    const late = await startOne(db.store, { node: "lost" });
    expect(await nodes().reapLost(LEASE_MS, LOST)).toEqual([]);
    expect((await db.store.invocations.get(late.id))?.status).toBe("running");
  });

  it("reaps a node again that came back and went quiet again", async () => {
    await nodes().register("flaky", "1");
    await silence("flaky", LEASE_MS + 1000);
    expect(await nodes().reapLost(LEASE_MS, LOST)).toEqual([{ node: "flaky", interrupted: 0 }]);
    await nodes().heartbeat("flaky", 1);
    expect((await nodeOf("flaky"))?.lostAt).toBeNull();
    const { id } = await startOne(db.store, { node: "flaky" });
    expect(await nodes().reapLost(LEASE_MS, LOST)).toEqual([]);
    await silence("flaky", LEASE_MS + 1000);
    expect(await nodes().reapLost(LEASE_MS, LOST)).toEqual([{ node: "flaky", interrupted: 1 }]);
    expect((await db.store.invocations.get(id))?.status).toBe("interrupted");
  });

  it("gives reaped rows places in the finish order after what finished before", async () => {
    await nodes().register("lost", "1");
    const row = await startOne(db.store, { node: "lost" });
    const done = await runOne(db.store, { node: "live" });
    await silence("lost", LEASE_MS + 1000);
    await nodes().reapLost(LEASE_MS, LOST);
    const after = await db.store.invocations.list({ afterFinishedSeq: done.finishedSeq, limit: 10 });
    expect(after.items.map((r) => [r.id, r.status])).toEqual([[row.id, "interrupted"]]);
  });
});

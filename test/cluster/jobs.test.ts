import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { register, waitFor } from "../e2e/harness.js";
import { type Cluster, startCluster } from "./harness.js";

// Jobs and schedules on three gateways sharing one PostgreSQL database.

const LEASE_MS = 3000;
let cluster: Cluster;
let db: pg.Pool;

beforeAll(async () => {
  cluster = await startCluster(3, {
    NODE_LEASE_MS: String(LEASE_MS),
    ASYNC_LEASE_MS: String(LEASE_MS),
    MAX_CONCURRENCY: "4",
    ASYNC_MAX_CONCURRENCY: "3",
    ASYNC_POLL_MS: "100",
  });
  db = new pg.Pool({ connectionString: cluster.databaseUrl, max: 2 });
  db.on("error", () => {}); // the server is stopped by a test: its idle connections drop, the next query connects again
}, 120_000);
afterAll(async () => {
  await db?.end();
  await cluster?.stop();
}, 120_000);

const node = (k: number) => cluster.nodes[k]!;
const rows = async <T>(text: string, ...params: unknown[]) => (await db.query(text, params)).rows as T[];

describe("three gateways on one database", () => {
  it("run a schedule every second for 20 s: 20 ± 1 runs, no tick twice, each run once", async () => {
    await register(node(0).call, {
      name: "everysecond",
      runtime: "python",
      code: "def handler(request):\n    return request.headers['x-fngw-scheduled-time']\n",
      schedules: [{ cron: "* * * * * *" }],
    });
    const first = async () =>
      (await rows<{ t: string | null }>("select min(tick_at) as t from schedule_ticks where function_name = 'everysecond'"))[0]!.t;
    await waitFor(async () => (await first()) !== null, "the first tick", 10_000);
    const start = Number(await first());
    await new Promise((resolve) => setTimeout(resolve, start + 20_000 - Date.now() + 300));
    await node(1).call("/api/functions/everysecond", { method: "PUT", json: { schedules: [] } });
    await waitFor(
      async () =>
        (await rows<{ n: string }>("select count(*) as n from jobs where function_name = 'everysecond' and state <> 'succeeded'"))[0]!.n ===
        "0",
      "the scheduled runs to end",
      30_000,
    );
    const ticks = await rows<{ tick_at: string; outcome: string; node: string; job_id: string }>(
      "select tick_at, outcome, node, job_id from schedule_ticks where function_name = 'everysecond' and tick_at < $1 order by tick_at",
      start + 20_000,
    );
    expect(ticks.map((t) => Number(t.tick_at) - start)).toEqual(Array.from({ length: 20 }, (_, k) => k * 1000));
    expect(ticks.every((t) => t.outcome === "enqueued")).toBe(true);
    const all = await rows<{ n: string }>("select count(*) as n from schedule_ticks where function_name = 'everysecond'");
    expect(Number(all[0]!.n)).toBeGreaterThanOrEqual(19);
    expect(Number(all[0]!.n)).toBeLessThanOrEqual(21);
    // Each run exactly once: one log row per job, every one ok.
    const runs = await rows<{ job_id: string; n: string; ok: string }>(
      "select job_id, count(*) as n, count(*) filter (where status = 'ok') as ok from invocations where function_name = 'everysecond' group by job_id",
    );
    expect(runs.length).toBe(Number(all[0]!.n));
    expect(runs.every((r) => r.n === "1" && r.ok === "1")).toBe(true);
  }, 90_000);

  it("finish the jobs of a gateway SIGKILLed while holding them on the others", async () => {
    await register(node(0).call, {
      name: "slowjob",
      runtime: "python",
      code: "import time\n\ndef handler(request):\n    time.sleep(0.5)\n    return 'done'\n",
    });
    await waitFor(async () => (await node(2).call("/api/functions/slowjob")).status === 200, "slowjob on every node");
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) {
      const res = await node(n % 3).call("/fn/slowjob", { method: "POST", headers: { prefer: "respond-async" } });
      expect(res.status).toBe(202);
      ids.push(res.headers.get("x-invocation-id")!);
    }
    const victim = node(1);
    let held: string[] = [];
    await waitFor(
      async () => {
        held = (await rows<{ id: string }>("select id from jobs where state = 'running' and lease_node = $1", victim.id)).map((r) => r.id);
        return held.length > 0;
      },
      "the victim to hold jobs",
      30_000,
    );
    expect(await victim.server.kill()).toBe("SIGKILL");
    await waitFor(
      async () =>
        (await rows<{ n: string }>("select count(*) as n from jobs where function_name = 'slowjob' and state = 'succeeded'"))[0]!.n ===
        "60",
      "all 60 jobs to succeed",
      120_000,
    );
    for (const id of held) {
      const attempts = await rows<{ node: string; status: string }>(
        "select node, status from invocations where job_id = $1 order by attempt",
        id,
      );
      const last = attempts.at(-1)!;
      expect(last.status).toBe("ok");
      expect(last.node).not.toBe(victim.id);
      // What the victim had started ends interrupted (its node lease ran out), and is visible.
      for (const earlier of attempts.slice(0, -1)) expect(earlier).toEqual({ node: victim.id, status: "interrupted" });
    }
    const job = (await (await node(0).call(`/api/invocations/${held[0]}`)).json()) as { state: string };
    expect(job.state).toBe("succeeded");
  }, 180_000);

  it("answer an asynchronous request 503 with Retry-After while PostgreSQL is down, and 202 once it is back", async () => {
    cluster.postgres.ctl("stop", "-m", "fast");
    try {
      const refused = await node(0).call("/fn/slowjob", { method: "POST", headers: { prefer: "respond-async" } });
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("5");
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("database_unavailable");
    } finally {
      cluster.postgres.ctl("start");
    }
    await waitFor(
      async () => (await node(0).call("/fn/slowjob", { method: "POST", headers: { prefer: "respond-async" } })).status === 202,
      "an asynchronous request to be accepted again",
      30_000,
    );
  }, 60_000);
});

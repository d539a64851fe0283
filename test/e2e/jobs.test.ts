import http from "node:http";
import type { AddressInfo } from "node:net";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { verifyCallbackSignature } from "../../src/core/callbacks.js";
import { client, type Json, register, removeDataDir, type Server, startServer, tempDataDir, waitFor } from "./harness.js";

// Asynchronous invocations on the REAL gateway (sandboxed Python), over HTTP; what the gateway
// stored is read from its SQLite file.

const TOKEN = "jobs-e2e-token-0123456789abcdef";
const ASYNC = { prefer: "respond-async" };
const SECRET_LINE = /^Callback signing secret \(printed this once[^)]*\): (\S+)$/m;

const servers: Server[] = [];
afterAll(async () => {
  for (const server of servers) {
    await server.stop();
    removeDataDir(server.dataDir);
  }
}, 60_000);

async function start(env: Record<string, string>, uidIndex: number, dataDir?: string): Promise<Server> {
  const server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, ...env }, uidIndex, dataDir });
  servers.push(server);
  return server;
}

/** Reads the gateway's SQLite file (read-only, beside the running gateway). */
function query<T>(dataDir: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(`${dataDir}/gateway.db`, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

describe("1,000 asynchronous invocations while the gateway is SIGKILLed twice", () => {
  it("all end succeeded; attempts that ran twice are no more than were in flight at the kills, and each is in the log", async () => {
    const dataDir = tempDataDir();
    const env = { MAX_CONCURRENCY: "4", ASYNC_MAX_CONCURRENCY: "4", ASYNC_POLL_MS: "50" };
    let server = await start(env, 0, dataDir);
    let call = client(
      () => server.url,
      () => TOKEN,
    );
    await register(call, {
      name: "steady",
      runtime: "python",
      code: "import time\n\ndef handler(request):\n    time.sleep(0.01)\n    return {'attempt': request.headers.get('x-fngw-attempt')}\n",
    });
    const ids: string[] = [];
    const enqueueAll = async (worker: number) => {
      for (let n = worker; n < 1000; n += 16) {
        const res = await call("/fn/steady", { method: "POST", headers: ASYNC, body: String(n) });
        expect(res.status).toBe(202);
        ids.push(res.headers.get("x-invocation-id")!);
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, k) => enqueueAll(k)));
    expect(new Set(ids).size).toBe(1000);

    const done = () => query<{ n: number }>(dataDir, "select count(*) as n from jobs where state = 'succeeded'")[0]!.n;
    const inFlightAtKills: number[] = [];
    for (const atLeast of [250, 600]) {
      await waitFor(() => done() >= atLeast, `${atLeast} jobs to succeed`, 120_000);
      expect(await server.kill()).toBe("SIGKILL");
      inFlightAtKills.push(query<{ n: number }>(dataDir, "select count(*) as n from jobs where state = 'running'")[0]!.n);
      servers.splice(servers.indexOf(server), 1);
      server = await start(env, 0, dataDir);
      call = client(
        () => server.url,
        () => TOKEN,
      );
    }
    await waitFor(() => done() === 1000, "every job to succeed", 180_000);

    const states = query<{ state: string; n: number }>(dataDir, "select state, count(*) as n from jobs group by state");
    expect(states).toEqual([{ state: "succeeded", n: 1000 }]);
    // A job leased when a kill came counts that attempt even if its run had not started (no row then); one that
    // ran twice has two rows: the first cut short by the kill (interrupted), the second ok.
    const ranTwice = query<{ job_id: string; n: number }>(
      dataDir,
      "select job_id, count(*) as n from invocations where job_id is not null group by job_id having count(*) > 1",
    );
    expect(ranTwice.length).toBeLessThanOrEqual(inFlightAtKills.reduce((a, b) => a + b, 0));
    for (const { job_id } of ranTwice) {
      const rows = query<{ attempt: number; status: string }>(
        dataDir,
        "select attempt, status from invocations where job_id = ? order by attempt",
        job_id,
      );
      expect(rows.at(-1)!.status).toBe("ok");
      expect(rows.slice(0, -1).every((row) => row.status === "interrupted")).toBe(true);
    }
    const okRows = query<{ n: number }>(
      dataDir,
      "select count(distinct job_id) as n from invocations where status = 'ok' and job_id is not null",
    )[0]!.n;
    expect(okRows).toBe(1000);
    console.log(`in flight at the kills: ${inFlightAtKills.join(", ")}; jobs that ran twice: ${ranTwice.length}`);
    const shown = (await (await call(`/api/invocations/${ids[0]}`)).json()) as Json;
    expect(shown).toMatchObject({ state: "succeeded", result: { status: 200 } });
  }, 400_000);
});

describe("retries, callbacks and schedules on a real gateway", () => {
  let server: Server;
  const call = client(
    () => server.url,
    () => TOKEN,
  );

  it("retries a failing function at 1 s and 2 s (attempt start times), passing X-Fngw-Attempt", async () => {
    server = await start({ CALLBACK_ALLOW_PRIVATE: "1", ASYNC_POLL_MS: "50" }, 1);
    await register(call, {
      name: "flaky",
      runtime: "python",
      code: "def handler(request):\n    if int(request.headers['x-fngw-attempt']) < 3:\n        raise RuntimeError('not yet')\n    return 'third time'\n",
    });
    const res = await call("/fn/flaky", { method: "POST", headers: ASYNC });
    const id = res.headers.get("x-invocation-id")!;
    let job: Json = {};
    await waitFor(
      async () => {
        job = (await (await call(`/api/invocations/${id}`)).json()) as Json;
        return job.state === "succeeded";
      },
      "the flaky job to succeed",
      30_000,
    );
    expect(job.attempts.map((a: Json) => [a.attempt, a.status])).toEqual([
      [1, "error"],
      [2, "error"],
      [3, "ok"],
    ]);
    const starts = job.attempts.map((a: Json) => Date.parse(a.started_at));
    const ends = job.attempts.map((a: Json) => Date.parse(a.started_at) + a.duration_ms);
    // Each wait is its backoff ±20% (1 s, then 2 s), measured from the end of the attempt before.
    expect(starts[1] - ends[0]).toBeGreaterThanOrEqual(800 - 5);
    expect(starts[1] - ends[0]).toBeLessThan(1200 + 3000);
    expect(starts[2] - ends[1]).toBeGreaterThanOrEqual(1600 - 5);
    expect(starts[2] - ends[1]).toBeLessThan(2400 + 3000);
    expect(job.result).toMatchObject({ status: 200, body: "third time" });
  }, 60_000);

  it("delivers a signed callback to a receiver that answers 500 twice, which sees the third delivery", async () => {
    // Started with GATEWAY_TOKEN: no secret was printed; an admin makes one, shown this once.
    expect(server.stdout()).not.toMatch(SECRET_LINE);
    const secret = ((await (await call("/api/jobs/callback-secret", { method: "POST" })).json()) as Json).secret as string;
    expect(secret).toMatch(/^whsec_/);
    const seen: { status: number; valid: boolean; body: string; attempts: string | undefined }[] = [];
    const receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const valid = verifyCallbackSignature(secret!, req.headers["x-fngw-signature"] as string, body, Math.floor(Date.now() / 1000));
        const status = seen.length < 2 ? 500 : 200;
        seen.push({ status, valid, body: body.toString(), attempts: req.headers["x-attempts"] as string });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      await register(call, { name: "answering", runtime: "python", code: "def handler(request):\n    return {'sum': 42}\n" });
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/done`;
      const res = await call("/fn/answering", { method: "POST", headers: { ...ASYNC, "x-callback-url": url } });
      expect(res.status).toBe(202);
      const id = res.headers.get("x-invocation-id")!;
      await waitFor(() => seen.length === 3, "three deliveries", 30_000);
      expect(seen).toEqual([
        { status: 500, valid: true, body: '{"sum": 42}', attempts: "1" },
        { status: 500, valid: true, body: '{"sum": 42}', attempts: "1" },
        { status: 200, valid: true, body: '{"sum": 42}', attempts: "1" },
      ]);
      await waitFor(
        async () => ((await (await call(`/api/invocations/${id}`)).json()) as Json).callback.state === "delivered",
        "the delivery to be recorded",
      );
      const job = (await (await call(`/api/invocations/${id}`)).json()) as Json;
      expect(job.callback.deliveries.map((d: Json) => d.status)).toEqual([500, 500, 200]);
    } finally {
      receiver.close();
    }
  }, 60_000);

  it("records overlapping ticks of a 2.5 s function as skipped, and no tick twice", async () => {
    await register(call, {
      name: "slowtick",
      runtime: "python",
      timeout_ms: 10_000,
      code: "import time\n\ndef handler(request):\n    time.sleep(2.5)\n    return request.headers['x-fngw-scheduled-time']\n",
      schedules: [{ cron: "* * * * * *" }],
    });
    await new Promise((resolve) => setTimeout(resolve, 7000));
    await call("/api/functions/slowtick", { method: "PUT", json: { schedules: [] } });
    const ticks = query<{ tick_at: number; outcome: string; job_id: string | null }>(
      server.dataDir,
      "select tick_at, outcome, job_id from schedule_ticks where function_name = 'slowtick' order by tick_at",
    );
    expect(ticks.length).toBeGreaterThanOrEqual(5);
    expect(new Set(ticks.map((t) => t.tick_at)).size).toBe(ticks.length);
    for (let k = 1; k < ticks.length; k++) expect(ticks[k]!.tick_at - ticks[k - 1]!.tick_at).toBe(1000);
    const enqueued = ticks.filter((t) => t.outcome === "enqueued");
    const skipped = ticks.filter((t) => t.outcome === "skipped");
    expect(enqueued.length).toBeGreaterThanOrEqual(2);
    expect(skipped.length).toBeGreaterThanOrEqual(2 * (enqueued.length - 1));
    const shown = (await (await call("/api/functions/slowtick/schedules")).json()) as Json;
    expect(shown.items).toEqual([]); // the current version has none now
  }, 60_000);
});

describe("the callback secret", () => {
  it("is printed once at a first start that generates the admin token, and not again at the next", async () => {
    const dataDir = tempDataDir();
    const first = await startServer({ dataDir, uidIndex: 3 });
    const printed = SECRET_LINE.exec(first.stdout())?.[1];
    expect(printed).toMatch(/^whsec_[A-Za-z0-9_-]{32}$/);
    expect(first.stdout().split(printed!)).toHaveLength(2);
    expect(await first.stop()).toBe(0);
    const second = await start({}, 3, dataDir);
    expect(second.stdout()).not.toMatch(SECRET_LINE);
  }, 60_000);
});

describe("a flooded public function", () => {
  it("fills its share of the queue and gets 429 while another function's requests are accepted; the queue's bytes stay bounded", async () => {
    const server = await start({ ASYNC_MAX_CONCURRENCY: "0", ASYNC_QUEUE_MAX_MB: "1", ASYNC_QUEUE_FUNCTION_SHARE: "25" }, 2);
    const call = client(
      () => server.url,
      () => TOKEN,
    );
    await register(call, { name: "open", runtime: "python", public: true, code: "def handler(r):\n    return 1\n" });
    await register(call, { name: "private", runtime: "python", code: "def handler(r):\n    return 1\n" });
    const body = "x".repeat(16 * 1024);
    const flood = await Promise.all(
      Array.from({ length: 64 }, () => call("/fn/open", { method: "POST", headers: ASYNC, body, token: null }).then((r) => r.status)),
    );
    const accepted = flood.filter((s) => s === 202).length;
    expect(flood.filter((s) => s !== 202).every((s) => s === 429)).toBe(true);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(64);
    for (let n = 0; n < 5; n++) expect((await call("/fn/private", { method: "POST", headers: ASYNC, body })).status).toBe(202);
    const [{ bytes }] = query<{ bytes: number }>(
      server.dataDir,
      "select sum(request_bytes) as bytes from jobs where function_name = 'open'",
    ) as [{ bytes: number }];
    expect(bytes).toBeLessThanOrEqual(1024 * 1024 * 0.25);
    // Callback URLs on loopback are refused by a gateway that does not allow them.
    const refused = await call("/fn/private", { method: "POST", headers: { ...ASYNC, "x-callback-url": "http://0x7f000001:9/" } });
    expect(refused.status).toBe(400);
  }, 60_000);
});

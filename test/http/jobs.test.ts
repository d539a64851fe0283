import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { verifyCallbackSignature } from "../../src/core/callbacks.js";
import { queueBounds } from "../../src/jobs/index.js";
import { Scheduler } from "../../src/jobs/scheduler.js";
import { expectError, type Gateway, type Json, makeGateway, okResult, parseMetrics, register, result } from "./harness.js";

// Asynchronous invocations over the real store (SQLite; the postgres project runs the same on
// PostgreSQL) with a scripted runner and the harness's clock: retries, expiry and schedules are
// driven by moving the clock, not by waiting.

const ASYNC = { prefer: "respond-async" };

/** Polls GET /api/invocations/:id until the job is in one of `states` (after `attempts` attempts, when given). */
async function jobIn(gw: Gateway, id: string, states: string[], attempts?: number): Promise<Json> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    gw.jobs.worker.wake();
    gw.jobs.callbacks.wake();
    const job = (await (await gw.call(`/api/invocations/${id}`)).json()) as Json;
    if (states.includes(job.state) && (attempts === undefined || job.attempts.length === attempts)) return job;
    if (Date.now() > deadline)
      throw new Error(`job ${id} stayed ${job.state} after ${job.attempts?.length} attempt(s) (waited for ${states.join(", ")})`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function enqueue(gw: Gateway, path: string, init: RequestInit & { json?: unknown } = {}): Promise<string> {
  const res = await gw.call(path, { method: "POST", ...init, headers: { ...ASYNC, ...(init.headers as Record<string, string>) } });
  if (res.status !== 202) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.headers.get("x-invocation-id")!;
}

describe("Prefer: respond-async", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await makeGateway({ ASYNC_MAX_BODY_BYTES: "1024" });
    await register(gw, { name: "work", retries: 2, max_event_age_s: 60 });
    await register(gw, { name: "other" });
  });
  afterAll(() => gw.close());
  beforeEach(() => {
    gw.runner.script = (spec) => okResult({ body: Buffer.from(JSON.stringify({ path: spec.request.path })) });
  });

  it("answers 202 once the job is stored, with Location, Preference-Applied and X-Invocation-Id; the job runs and keeps the answer", async () => {
    const res = await gw.call("/fn/work/orders?x=1", {
      method: "POST",
      headers: { ...ASYNC, "content-type": "text/plain", cookie: "session=abc", "x-custom": "yes" },
      body: "hello",
    });
    expect(res.status).toBe(202);
    const id = res.headers.get("x-invocation-id")!;
    expect(res.headers.get("location")).toBe(`/api/invocations/${id}`);
    expect(res.headers.get("preference-applied")).toBe("respond-async");
    expect(await res.json()).toEqual({ id, state: "queued", location: `/api/invocations/${id}` });

    const job = await jobIn(gw, id, ["succeeded"]);
    expect(job).toMatchObject({ kind: "job", function: "work", trigger: "async", attempt_count: 1, max_attempts: 3, version: null });
    expect(job.result).toMatchObject({ status: 200, body: '{"path":"/orders"}', body_encoding: "utf8", truncated: false });
    expect(job.attempts).toHaveLength(1);
    expect(job.attempts[0]).toMatchObject({ trigger: "async", attempt: 1, status: "ok", method: "POST", path: "/orders" });
    // The function saw the request as sent, less the credentials, with the job's id and the attempt number.
    const { request } = gw.runner.last;
    expect(Buffer.from(request.body).toString()).toBe("hello");
    expect(request.query).toEqual([["x", "1"]]);
    expect(request.headers).toContainEqual(["x-custom", "yes"]);
    expect(request.headers).toContainEqual(["x-invocation-id", id]);
    expect(request.headers).toContainEqual(["x-fngw-attempt", "1"]);
    expect(request.headers.map(([name]) => name)).not.toContain("authorization");
    expect(request.headers.map(([name]) => name)).not.toContain("cookie");
    const row = await gw.logRow(job.attempts[0].id);
    expect(row).toMatchObject({ job_id: id, trigger: "async", attempt: 1 });
  });

  it("retries at 1 s then 2 s (the attempts' start times, on the gateway's clock) and keeps each attempt's row", async () => {
    let calls = 0;
    gw.runner.script = () => {
      calls++;
      return calls < 3 ? result({ status: "error", exitCode: 1, errorMessage: "boom" }) : okResult({ body: Buffer.from("ok") });
    };
    const t0 = gw.clock.now;
    const id = await enqueue(gw, "/fn/work");
    let job = await jobIn(gw, id, ["retrying"], 1);
    expect(job.next_attempt_at).toBe(new Date(t0 + 1000).toISOString());
    gw.clock.now = t0 + 999;
    gw.jobs.worker.wake();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toBe(1); // not due yet
    gw.clock.now = t0 + 1000;
    job = await jobIn(gw, id, ["retrying"], 2);
    expect(job.attempt_count).toBe(2);
    expect(job.next_attempt_at).toBe(new Date(t0 + 3000).toISOString());
    gw.clock.now = t0 + 3000;
    job = await jobIn(gw, id, ["succeeded"]);
    expect(job.attempts.map((a: Json) => [a.attempt, a.status, Date.parse(a.started_at) - t0])).toEqual([
      [1, "error", 0],
      [2, "error", 1000],
      [3, "ok", 3000],
    ]);
    expect(gw.runner.last.request.headers).toContainEqual(["x-fngw-attempt", "3"]);
  });

  it("does not retry a 4xx answer or a forbidden call: the job fails and is listed with the dead letters", async () => {
    gw.runner.script = () => okResult({ status: 422, body: Buffer.from('{"bad":"input"}') });
    const id = await enqueue(gw, "/fn/work");
    const job = await jobIn(gw, id, ["failed"]);
    expect(job.attempt_count).toBe(1);
    expect(job.result).toMatchObject({ status: 422, body: '{"bad":"input"}' });
    const failed = (await (await gw.call("/api/jobs?state=failed")).json()) as Json;
    expect(failed.items.map((j: Json) => j.id)).toContain(id);
  });

  it("expires a job past max_event_age_s instead of running it again", async () => {
    gw.runner.script = () => result({ status: "timeout", exitCode: null, signal: "SIGKILL", errorMessage: "took too long" });
    const t0 = gw.clock.now;
    const id = await enqueue(gw, "/fn/work");
    await jobIn(gw, id, ["retrying"], 1);
    gw.clock.now = t0 + 61_000;
    const job = await jobIn(gw, id, ["expired"]);
    expect(job.attempt_count).toBe(2); // the lease counted it; it did not run
    expect(job.attempts).toHaveLength(1);
    expect(job.last_error).toMatch(/max_event_age_s/);
    const expired = (await (await gw.call("/api/jobs?state=expired")).json()) as Json;
    expect(expired.items.map((j: Json) => j.id)).toContain(id);
  });

  it("runs a dead letter again as a new job (POST /api/invocations/:id/retry)", async () => {
    gw.runner.script = () => okResult({ status: 400, body: Buffer.from("no") });
    const id = await enqueue(gw, "/fn/work/again", { body: "payload" });
    await jobIn(gw, id, ["failed"]);
    gw.runner.script = () => okResult({ body: Buffer.from("yes") });
    const res = await gw.call(`/api/invocations/${id}/retry`, { method: "POST" });
    expect(res.status).toBe(202);
    const second = res.headers.get("x-invocation-id")!;
    expect(second).not.toBe(id);
    const job = await jobIn(gw, second, ["succeeded"]);
    expect(job).toMatchObject({ redrive_of: id, result: { status: 200, body: "yes" } });
    expect(Buffer.from(gw.runner.last.request.body).toString()).toBe("payload");
    expect(gw.runner.last.request.path).toBe("/again");
    // A succeeded job keeps no request: it is not run again.
    await expectError(await gw.call(`/api/invocations/${second}/retry`, { method: "POST" }), 409, "conflict", /not kept/);
  });

  it("answers the first 202 again for the same Idempotency-Key and function, and stores nothing", async () => {
    const first = await gw.call("/fn/work", { method: "POST", headers: { ...ASYNC, "idempotency-key": "order-17" } });
    const again = await gw.call("/fn/work", { method: "POST", headers: { ...ASYNC, "idempotency-key": "order-17" } });
    expect(again.status).toBe(202);
    expect(again.headers.get("x-invocation-id")).toBe(first.headers.get("x-invocation-id"));
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const other = await gw.call("/fn/other", { method: "POST", headers: { ...ASYNC, "idempotency-key": "order-17" } });
    expect(other.headers.get("x-invocation-id")).not.toBe(first.headers.get("x-invocation-id"));
    const listed = (await (await gw.call("/api/jobs?function=work&limit=500")).json()) as Json;
    expect(listed.items.filter((j: Json) => j.id === first.headers.get("x-invocation-id"))).toHaveLength(1);
    // After 24 h the key names nothing.
    gw.clock.now += 24 * 3600_000 + 1;
    const later = await gw.call("/fn/work", { method: "POST", headers: { ...ASYNC, "idempotency-key": "order-17" } });
    expect(later.headers.get("x-invocation-id")).not.toBe(first.headers.get("x-invocation-id"));
  });

  it("refuses a body over ASYNC_MAX_BODY_BYTES with 413 (logged as rejected), storing no job", async () => {
    const count = async () => Number((await gw.sql("select count(*) as n from jobs"))[0]!.n);
    const before = await count();
    const res = await gw.call("/fn/work", { method: "POST", headers: ASYNC, body: "x".repeat(1025) });
    const body = await expectError(res, 413, "payload_too_large", /ASYNC_MAX_BODY_BYTES/);
    expect(await gw.logRow(body.error.invocation_id)).toMatchObject({ status: "rejected", http_status: 413, trigger: "async" });
    expect(await count()).toBe(before);
  });

  it("refuses an invalid Idempotency-Key", async () => {
    await expectError(
      await gw.call("/fn/work", { method: "POST", headers: { ...ASYNC, "idempotency-key": "a b" } }),
      400,
      "invalid_request",
    );
  });

  it("shows a log row's view for an id that is not a job's, and 404 for neither", async () => {
    const res = await gw.call("/fn/work");
    const row = (await (await gw.call(`/api/invocations/${res.headers.get("x-invocation-id")}`)).json()) as Json;
    expect(row.kind).toBeUndefined();
    expect(row.trigger).toBe("http");
    await expectError(await gw.call("/api/invocations/nope"), 404, "not_found");
    await expectError(await gw.call("/api/invocations/nope", { method: "DELETE" }), 404, "not_found");
  });
});

describe("cancelling, and the queue's bounds", () => {
  let gw: Gateway;
  beforeAll(async () => {
    // No worker here (ASYNC_MAX_CONCURRENCY=0): jobs stay queued.
    gw = await makeGateway({ ASYNC_MAX_CONCURRENCY: "0", ASYNC_QUEUE_MAX_JOBS: "8", ASYNC_QUEUE_FUNCTION_SHARE: "50" });
    await register(gw, { name: "flooded", public: true });
    await register(gw, { name: "quiet" });
  });
  afterAll(() => gw.close());

  it("cancels a queued job once; a cancelled job is not cancelled again", async () => {
    const id = await enqueue(gw, "/fn/quiet");
    const res = await gw.call(`/api/invocations/${id}`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id, state: "cancelled" });
    await expectError(await gw.call(`/api/invocations/${id}`, { method: "DELETE" }), 409, "conflict", /cancelled/);
    expect((await gw.store.jobs.usage()).jobs).toBe(0);
  });

  it("gives a flooded public function its share, then 429 with Retry-After, while another function's requests are accepted", async () => {
    const answers = [];
    for (let n = 0; n < 6; n++) answers.push(await gw.call("/fn/flooded", { method: "POST", headers: ASYNC, token: null, body: "x" }));
    expect(answers.map((r) => r.status)).toEqual([202, 202, 202, 202, 429, 429]);
    const refused = await expectError(answers[4]!, 429, "queue_full", /share/);
    expect(answers[4]!.headers.get("retry-after")).toBe("5");
    expect(await gw.logRow(refused.error.invocation_id)).toMatchObject({ status: "rejected", http_status: 429 });
    for (let n = 0; n < 4; n++) expect((await gw.call("/fn/quiet", { method: "POST", headers: ASYNC })).status).toBe(202);
    // The queue is full in all now: 8 jobs.
    await expectError(await gw.call("/fn/quiet", { method: "POST", headers: ASYNC }), 429, "queue_full", /job queue is full/);
    const usage = await gw.store.jobs.usage();
    expect({ jobs: usage.jobs, flooded: usage.byFunction.get("flooded")?.jobs }).toEqual({ jobs: 8, flooded: 4 });
    const [row] = await gw.sql("select count(*) as n from jobs where state = 'queued'");
    expect(Number(row!.n)).toBe(8);
    const metrics = parseMetrics(await (await gw.call("/metrics")).text());
    expect(metrics.value("fngw_job_queue", { kind: "jobs" })).toBe(8);
    expect(metrics.value("fngw_job_queue", { kind: "bytes" })).toBe(usage.bytes);
    expect(metrics.value("fngw_jobs_running")).toBe(0);
  });
});

describe("jobs share the gateway's slots", () => {
  let gw: Gateway;
  beforeAll(async () => {
    // Two slots, no waiting room: jobs may take one of them.
    gw = await makeGateway({ MAX_CONCURRENCY: "2", QUEUE_LIMIT: "0", ASYNC_MAX_CONCURRENCY: "1" });
    await register(gw, { name: "backlog" });
    await register(gw, { name: "single", max_concurrency: 1 });
  });
  afterAll(() => gw.close());

  it("leave a caller who waits a slot however long the backlog, and hold a function's max_concurrency across both", async () => {
    const held: (() => void)[] = [];
    gw.runner.script = (spec) => new Promise((resolve) => held.push(() => resolve(okResult({ body: Buffer.from(spec.request.method) }))));
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) ids.push(await enqueue(gw, "/fn/backlog"));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(gw.admission.size).toBe(1); // one job runs; four wait in the queue, not in the gateway
    // A caller who waits gets the other slot.
    const call = gw.call("/fn/backlog");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(gw.admission.size).toBe(2);
    // The gateway is full now: one more caller is refused at once, the backlog notwithstanding.
    expect((await gw.call("/fn/backlog")).status).toBe(429);
    held.splice(0).forEach((release) => void release());
    expect((await call).status).toBe(200);
    // The rest of the backlog drains, one at a time.
    for (let n = 0; n < 10 && held.length < 5; n++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      held.splice(0).forEach((release) => void release());
    }
    for (const id of ids) {
      const deadline = Date.now() + 5000;
      while ((await gw.store.jobs.get(id))?.state !== "succeeded" && Date.now() < deadline) {
        held.splice(0).forEach((release) => void release());
        gw.jobs.worker.wake();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect((await gw.store.jobs.get(id))?.state).toBe("succeeded");
    }

    // max_concurrency 1: while a job of `single` runs, a call of it is refused, and no second job of it starts.
    const first = await enqueue(gw, "/fn/single");
    await enqueue(gw, "/fn/single");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(held).toHaveLength(1);
    expect((await gw.call("/fn/single")).status).toBe(429);
    held.splice(0).forEach((release) => void release());
    expect((await gw.store.jobs.get(first))?.state).not.toBe("queued");
    for (let n = 0; n < 100 && held.length === 0; n++) {
      gw.jobs.worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(held).toHaveLength(1);
    held.splice(0).forEach((release) => void release());
  });
});

describe("callbacks", () => {
  let gw: Gateway;
  let receiver: http.Server;
  let receiverUrl = "";
  const deliveries: { headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
  let answers: number[] = [];

  beforeAll(async () => {
    gw = await makeGateway({ CALLBACK_ALLOW_PRIVATE: "1" });
    await register(gw, { name: "cb" });
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        deliveries.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(answers.shift() ?? 200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await gw.close();
    receiver.close();
  });
  afterEach(() => {
    deliveries.length = 0;
  });

  it("signs each delivery, retries a 500 at its backoff, and records every delivery on the job", async () => {
    const secret = ((await (await gw.call("/api/jobs/callback-secret", { method: "POST" })).json()) as Json).secret as string;
    expect(secret).toMatch(/^whsec_/);
    answers = [500, 500, 200];
    gw.runner.script = () => okResult({ status: 201, headers: [["content-type", "application/json"]], body: Buffer.from('{"done":1}') });
    const t0 = gw.clock.now;
    const id = await enqueue(gw, "/fn/cb", { headers: { "x-callback-url": receiverUrl } });
    await jobIn(gw, id, ["succeeded"]);
    /** Until the receiver saw `n` deliveries and the job records them (the next one's time is set then). */
    const waitDeliveries = async (n: number) => {
      const deadline = Date.now() + 10_000;
      const recorded = async () => ((await (await gw.call(`/api/invocations/${id}`)).json()) as Json).callback.deliveries.length;
      while ((deliveries.length < n || (await recorded()) < n) && Date.now() < deadline) {
        gw.jobs.callbacks.wake();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(deliveries).toHaveLength(n);
    };
    await waitDeliveries(1);
    gw.clock.now = t0 + 1000;
    await waitDeliveries(2);
    gw.clock.now = t0 + 3000;
    await waitDeliveries(3);
    for (const { headers, body } of deliveries) {
      expect(body.toString()).toBe('{"done":1}');
      expect(headers).toMatchObject({
        "x-invocation-id": id,
        "x-function-status": "201",
        "x-attempts": "1",
        "content-type": "application/json",
      });
      expect(verifyCallbackSignature(secret, headers["x-fngw-signature"] as string, body, Math.floor(gw.clock.now / 1000))).toBe(true);
    }
    const job = await jobIn(gw, id, ["succeeded"]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const shown = (await (await gw.call(`/api/invocations/${id}`)).json()) as Json;
    expect(shown.callback.state).toBe("delivered");
    expect(shown.callback.deliveries.map((d: Json) => [d.attempt, d.status, Date.parse(d.at) - t0])).toEqual([
      [1, 500, 0],
      [2, 500, 1000],
      [3, 200, 3000],
    ]);
    expect(job.callback.url).toBe(receiverUrl);
  });
});

describe("callback URLs", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await makeGateway();
    await register(gw, { name: "hooked" });
  });
  afterAll(() => gw.close());

  const refused = [
    "http://127.0.0.1:9/",
    "http://localhost:9/",
    "http://[::1]:9/",
    "http://0x7f000001:9/",
    "http://2130706433:9/",
    "http://0177.0.0.1:9/",
    "http://127.1:9/",
    "http://[::ffff:127.0.0.1]:9/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "ftp://example.com/",
    "not a url",
  ];
  for (const url of refused) {
    it(`refuses ${url} with 400 and stores nothing`, async () => {
      const res = await gw.call("/fn/hooked", { method: "POST", headers: { ...ASYNC, "x-callback-url": url } });
      await expectError(res, 400, "invalid_callback_url");
      expect(res.headers.get("x-invocation-id")).toBeNull();
      expect((await gw.store.jobs.usage()).jobs).toBe(0);
    });
  }
});

describe("schedules", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await makeGateway({ ASYNC_MAX_CONCURRENCY: "0" });
  });
  afterAll(() => gw.close());

  it("refuses a bad cron expression with 400 naming it", async () => {
    const res = await gw.call("/api/functions", {
      method: "POST",
      json: { name: "badcron", runtime: "python", code: "def handler(r):\n    return 1\n", schedules: [{ cron: "61 * * * *" }] },
    });
    await expectError(res, 400, "invalid_request", /schedules\.0\.cron: '61 \* \* \* \*' is not a valid cron expression/);
  });

  it("stores schedules with their defaults, versioned, and shows the next five times", async () => {
    const fn = await register(gw, {
      name: "nightly",
      schedules: [{ cron: "0 3 * * *", timezone: "Europe/Berlin", body: { report: true } }],
    });
    expect(fn.schedules).toEqual([
      { cron: "0 3 * * *", timezone: "Europe/Berlin", body: { report: true }, enabled: true, overlap: "skip" },
    ]);
    const shown = (await (await gw.call("/api/functions/nightly/schedules")).json()) as Json;
    expect(shown.items[0].next).toHaveLength(5);
    expect(shown.items[0].next[0]).toBe("2030-01-01T02:00:00.000Z"); // 03:00 in Berlin (CET) on the harness's clock
    expect(shown.items[0].recent).toEqual([]);
  });

  it("claims each tick once across gateways, skips a tick while the previous run still runs, and catches up once", async () => {
    const t0 = gw.clock.now;
    await register(gw, { name: "ticking", schedules: [{ cron: "* * * * * *", body: "tick" }] });
    const created = gw.cluster.functions.get("ticking")!.createdAt;
    const other = new Scheduler(gw.store, gw.cluster.functions, {
      node: "another-node",
      bounds: queueBounds(gw.config),
      now: () => gw.clock.now,
    });
    const mine = gw.jobs.scheduler;
    gw.clock.now = created + 1000;
    await Promise.all([mine.runOnce(), other.runOnce(), other.runOnce()]);
    let ticks = ((await (await gw.call("/api/functions/ticking/schedules")).json()) as Json).items[0].recent as Json[];
    expect(ticks).toHaveLength(1);
    expect(ticks[0]).toMatchObject({ outcome: "enqueued", job_state: "queued" });
    // The first run has not run (no worker): the next tick is skipped.
    gw.clock.now += 1000;
    await Promise.all([mine.runOnce(), other.runOnce()]);
    ticks = ((await (await gw.call("/api/functions/ticking/schedules")).json()) as Json).items[0].recent as Json[];
    expect(ticks.map((t) => t.outcome)).toEqual(["skipped", "enqueued"]);
    const job = (await (await gw.call(`/api/invocations/${ticks[1]!.job_id}`)).json()) as Json;
    expect(job).toMatchObject({ trigger: "schedule", scheduled_at: new Date(Math.ceil((created + 1) / 1000) * 1000).toISOString() });
    void t0;
  });

  it("after every gateway was down, runs the newest missed tick once and records the others as missed", async () => {
    await register(gw, { name: "minutely", schedules: [{ cron: "* * * * *", overlap: "allow" }], max_event_age_s: 3600 });
    // The version's time is the database's (the real clock): ten minute boundaries after it, and 30 s.
    const created = gw.cluster.functions.get("minutely")!.createdAt;
    gw.clock.now = Math.floor(created / 60_000) * 60_000 + 10 * 60_000 + 30_000;
    await gw.jobs.scheduler.runOnce();
    const ticks = ((await (await gw.call("/api/functions/minutely/schedules")).json()) as Json).items[0].recent as Json[];
    expect(ticks.map((t) => t.outcome)).toEqual(["enqueued", ...Array(9).fill("missed")]);
  });
});

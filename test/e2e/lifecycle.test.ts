// End to end: how the real gateway behaves as a process: admission under load, a crash and the
// restart after it, a graceful stop, and the API token it generates. Each describe runs its own
// server(s), each with a uid block of its own (see uidBase).
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  generatedToken,
  invocation,
  type Json,
  register,
  removeDataDir,
  type Server,
  startServer,
  tempDataDir,
  uidBase,
  waitFor,
} from "./harness.js";

const TOKEN = "e2e-lifecycle-token-7c0b5e91";

/** Stops a server that may still run and fails unless it exits 0. */
async function stopCleanly(server: Server | undefined): Promise<void> {
  if (!server) return;
  const code = await server.stop();
  expect(code, `exit of the gateway; stderr:\n${server.stderr()}`).toBe(0);
}

describe("admission: MAX_CONCURRENCY=1 and QUEUE_LIMIT=0", () => {
  let server: Server;
  const call = client(
    () => server.url,
    () => TOKEN,
  );

  beforeAll(async () => {
    server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, MAX_CONCURRENCY: "1", QUEUE_LIMIT: "0" }, uidIndex: 1 });
    await register(call, {
      name: "slow",
      runtime: "python",
      code: `import time\ndef handler(request):\n    time.sleep(0.6)\n    return "done"\n`,
    });
  });
  afterAll(async () => {
    await stopCleanly(server);
    if (server) removeDataDir(server.dataDir);
  });

  it("answers concurrent invocations past the one slot with 429 and Retry-After, and logs each as `rejected`", async () => {
    const responses = await Promise.all(Array.from({ length: 4 }, () => call("/fn/slow")));
    const statuses = responses.map((res) => res.status).sort();
    expect(
      statuses.every((s) => s === 200 || s === 429),
      String(statuses),
    ).toBe(true);
    const ok = responses.filter((res) => res.status === 200);
    const rejected = responses.filter((res) => res.status === 429);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(rejected.length).toBeGreaterThanOrEqual(1);
    for (const res of ok) expect(await res.text()).toBe("done");

    for (const res of rejected) {
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const id = res.headers.get("x-invocation-id");
      const body = (await res.json()) as Json;
      expect(body.error).toMatchObject({ code: "rejected", invocation_id: id });
      expect(await invocation(call, id)).toMatchObject({ id, function: "slow", status: "rejected", http_status: 429, exit_code: null });
    }
    const logged = ((await (await call("/api/invocations?function=slow&status=rejected")).json()) as Json).items;
    expect(logged.map((row: Json) => row.id).sort()).toEqual(rejected.map((res) => res.headers.get("x-invocation-id")).sort());
  });

  it("runs the next invocation once the slot is free again", async () => {
    const res = await call("/fn/slow");
    expect(res.status).toBe(200);
    expect((await (await call("/healthz")).json()) as Json).toMatchObject({ sandbox: { slots: 1, busy: 0 } });
  });
});

describe("a crash, the restart after it, and a graceful stop", () => {
  let dataDir: string;
  let first: Server;
  let second: Server | undefined;
  const call = client(
    () => (second ?? first).url,
    () => TOKEN,
  );
  const start = () => startServer({ env: { GATEWAY_TOKEN: TOKEN }, dataDir, uidIndex: 2 });

  beforeAll(async () => {
    dataDir = tempDataDir();
    first = await start();
    const sleeper = `import time\ndef handler(request):\n    time.sleep(30)\n    return "woke"\n`;
    await register(call, { name: "sleeper", runtime: "python", code: sleeper, timeout_ms: 60_000 });
    await register(call, {
      name: "one-second",
      runtime: "python",
      code: `import time\ndef handler(request):\n    time.sleep(1)\n    return "finished"\n`,
    });
  });
  afterAll(async () => {
    if (first) await first.kill();
    await stopCleanly(second);
    if (dataDir) removeDataDir(dataDir);
  });

  it("marks an invocation the killed gateway was running as `interrupted` when a new one starts on the same DATA_DIR", async () => {
    const inFlight = call("/fn/sleeper").then(
      (res) => `answered ${res.status}`,
      (error: Error) => `failed: ${(error.cause as Error | undefined)?.message ?? error.message}`,
    );
    let row: Json | undefined;
    await waitFor(async () => {
      const page = (await (await call("/api/invocations?function=sleeper")).json()) as Json;
      row = page.items[0];
      return row?.status === "running" && ((await (await call("/healthz")).json()) as Json).sandbox.busy === 1;
    }, "the sleeper to be running");

    expect(await first.kill()).toBe("SIGKILL");
    expect(await inFlight).toMatch(/^failed: /); // the client lost its connection, no answer

    second = await start();
    expect(second.stdout()).toContain("marked 1 invocation(s) left running by the last process as interrupted");
    const after = await invocation(call, row!.id);
    expect(after).toMatchObject({ id: row!.id, function: "sleeper", status: "interrupted", http_status: null });
    expect(after.error).toBeTruthy();
    const interrupted = ((await (await call("/api/invocations?status=interrupted")).json()) as Json).items;
    expect(interrupted.map((r: Json) => r.id)).toEqual([row!.id]);
  });

  it("leaves no process of the killed gateway's sandboxes running after the restart", async () => {
    // The sleeper would sleep on for half a minute; the restart kills what the dead gateway left in its
    // cgroups. A process that got SIGKILL may take a moment to go, hence the short wait.
    const leftovers = () => sandboxProcesses(uidBase(2), 100);
    await waitFor(
      () => leftovers().length === 0,
      () => `the old sandboxes' processes to end: ${leftovers().join(", ")}`,
      1000,
    );
  });

  it("runs functions as before after the restart", async () => {
    await register(call, { name: "after-restart", runtime: "node", code: `module.exports = () => ({ alive: true });` });
    const res = await call("/fn/after-restart");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ alive: true });
  });

  it("on SIGTERM during a 1 s invocation, stops taking connections, still answers that client 200 and exits 0", async () => {
    const server = second!;
    const inFlight = call("/fn/one-second");
    await waitFor(async () => ((await (await call("/healthz")).json()) as Json).sandbox.busy === 1, "the invocation to be running");
    server.child.kill("SIGTERM");
    // New connections are refused while the invocation finishes.
    await waitFor(
      () =>
        fetch(`${server.url}/healthz`).then(
          () => false,
          () => true,
        ),
      "the gateway to refuse new connections",
      5000,
    );
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("finished");
    const id = res.headers.get("x-invocation-id");
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toMatch(/SIGTERM: no new connections; waiting up to \d+ ms for 1 invocation\(s\)/);

    // Its row ended `ok`, as the next start shows.
    second = await start();
    expect(await invocation(call, id)).toMatchObject({ status: "ok", http_status: 200, exit_code: 0 });
  });
});

/** Live (not zombie) processes whose uid lies in [base, base + count), as "pid (uid, state)". */
function sandboxProcesses(base: number, count: number): string[] {
  return fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((pid) => {
      try {
        const status = fs.readFileSync(path.join("/proc", pid, "status"), "utf8");
        const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
        const state = /^State:\s+(\S+)/m.exec(status)?.[1] ?? "?";
        return uid >= base && uid < base + count && state !== "Z" && state !== "X" ? [`${pid} (uid ${uid}, state ${state})`] : [];
      } catch {
        return []; // ended while we looked
      }
    });
}

describe("the generated API token", () => {
  let dataDir: string;
  let server: Server | undefined;
  let token: string | null = null;
  const call = client(
    () => server!.url,
    () => token,
  );
  const start = () => startServer({ dataDir, uidIndex: 3 }); // no GATEWAY_TOKEN

  beforeAll(() => {
    dataDir = tempDataDir();
  });
  afterAll(async () => {
    await stopCleanly(server);
    if (dataDir) removeDataDir(dataDir);
  });

  it("is printed once on stdout at the first start without GATEWAY_TOKEN, and it works", async () => {
    server = await start();
    token = generatedToken(server.stdout());
    expect(token, `stdout:\n${server.stdout()}`).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(server.stdout().split(token!)).toHaveLength(2); // printed exactly once
    expect((await call("/api/functions")).status).toBe(200);
    expect((await call("/api/functions", { token: null })).status).toBe(401);
    expect((await call("/api/functions", { token: `${token}x` })).status).toBe(401);
  });

  it("is not stored in DATA_DIR, only its hash", async () => {
    for (const file of fs.readdirSync(dataDir).filter((f) => f.startsWith("gateway.db"))) {
      expect(fs.readFileSync(path.join(dataDir, file)).includes(token!), file).toBe(false);
    }
  });

  it("is not printed again by a restart on the same DATA_DIR, and still works", async () => {
    await stopCleanly(server);
    server = undefined;
    server = await start();
    expect(server.stdout()).not.toMatch(/API token/);
    expect(server.stdout()).not.toContain(token);
    expect((await call("/api/functions")).status).toBe(200);
    expect((await call("/api/functions", { token: null })).status).toBe(401);
  });
});

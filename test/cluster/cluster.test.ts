import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_LOST_MESSAGE } from "../../src/core/invocations.js";
import { register, waitFor } from "../e2e/harness.js";
import { type Answer, type Cluster, type Json, load, logOf, spoolDrained, startCluster, TOKEN } from "./harness.js";

// Three gateways (three data dirs, three ports, three uid blocks) on one PostgreSQL database.

const LEASE_MS = 3000;
let cluster: Cluster;

beforeAll(async () => {
  // Started together on a fresh database: one migrates, the others wait for its lock.
  cluster = await startCluster(3, { NODE_LEASE_MS: String(LEASE_MS), MAX_CONCURRENCY: "4", QUEUE_LIMIT: "32" });
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
}, 120_000);

const node = (k: number) => cluster.nodes[k]!;
const PY_HELLO = 'def handler(request):\n    return {"hello": "world"}\n';

/** Waits until every node answers 200 for /fn/<name>. */
async function answeredEverywhere(name: string, within = 1000): Promise<void> {
  await waitFor(
    async () => (await Promise.all(cluster.nodes.map(async (n) => (await n.call(`/fn/${name}`)).status))).every((s) => s === 200),
    `/fn/${name} to answer on every node`,
    within,
  );
}

describe("three gateways on one database", () => {
  it("list each other in /api/nodes, live", async () => {
    const listed = ((await (await node(1).call("/api/nodes")).json()) as { items: Json[] }).items;
    expect(listed.map((n) => n.id).sort()).toEqual(cluster.nodes.map((n) => n.id).sort());
    for (const n of listed) expect(n).toMatchObject({ state: "live", version: expect.any(String), in_flight: expect.any(Number) });
    expect(listed.filter((n) => n.self)).toEqual([expect.objectContaining({ id: node(1).id })]);
  });

  it("a function registered on A answers on B and C at once (within 1 s)", async () => {
    await register(node(0).call, { name: "everywhere", runtime: "python", code: PY_HELLO });
    await answeredEverywhere("everywhere", 1000);
  });

  it("3,000 invocations spread round-robin at concurrency 8 each have exactly one log row each, visible from every node", async () => {
    await register(node(0).call, { name: "counted", runtime: "python", code: PY_HELLO, isolation: "function" });
    await answeredEverywhere("counted", 1000);
    const before = (await logOf(node(0).call, "counted")).length;
    const answers = await load(cluster, { name: "counted", total: 3000, perNode: 8, nodes: [0, 1, 2] });
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    const ids = answers.map((a) => a.id);
    expect(new Set(ids).size).toBe(3000);
    for (const n of cluster.nodes) {
      const rows = await logOf(n.call, "counted");
      expect(rows.length - before).toBe(3000);
      const logged = new Set(rows.map((r) => r.id));
      expect(ids.every((id) => logged.has(id))).toBe(true);
      // Each row names the node that ran it: a third of them each.
      const byNode = new Map<string, number>();
      for (const row of rows) byNode.set(row.node, (byNode.get(row.node) ?? 0) + 1);
      for (const k of [0, 1, 2]) expect(byNode.get(node(k).id)).toBeGreaterThanOrEqual(1000);
    }
  }, 300_000);

  it("a live tail opened on A shows invocations that ran on B", async () => {
    await register(node(0).call, { name: "tailed", runtime: "python", code: PY_HELLO });
    await answeredEverywhere("tailed");
    const abort = new AbortController();
    const res = await node(0).call("/api/invocations/stream?function=tailed", { signal: abort.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(": connected")) text += (await reader.read()).value ?? "";
    const invoked = await node(1).call("/fn/tailed");
    const id = invoked.headers.get("x-invocation-id")!;
    while (!text.includes(id)) text += (await reader.read()).value ?? "";
    abort.abort();
    const event = text.split("\n\n").find((e) => e.includes(id))!;
    expect(
      JSON.parse(
        event
          .split("\n")
          .find((l) => l.startsWith("data: "))!
          .slice(6),
      ),
    ).toMatchObject({ id, node: node(1).id });
  });

  it("two nodes updating one function at the same moment store versions 2 and 3, never two 2s", async () => {
    await register(node(0).call, { name: "raced", runtime: "python", code: PY_HELLO });
    await answeredEverywhere("raced");
    const [a, b] = await Promise.all(
      [0, 1].map((k) => node(k).call("/api/functions/raced", { method: "PUT", json: { code: `# from node ${k}\n${PY_HELLO}` } })),
    );
    expect([a!.status, b!.status]).toEqual([200, 200]);
    const versions = ((await (await node(2).call("/api/functions/raced/versions")).json()) as { items: Json[] }).items;
    expect(versions.map((v) => v.version)).toEqual([3, 2, 1]);
    expect(new Set(versions.map((v) => v.code)).size).toBe(3);
  });

  it("a token revoked on A is refused on C within 1 s", async () => {
    const made = (await (await node(0).call("/api/tokens", { method: "POST", json: { name: "short", scopes: ["admin"] } })).json()) as Json;
    await waitFor(async () => (await node(2).call("/api/functions", { token: made.token })).status === 200, "the new token on C", 1000);
    expect((await node(0).call(`/api/tokens/${made.id}`, { method: "DELETE" })).status).toBe(204);
    await waitFor(async () => (await node(2).call("/api/functions", { token: made.token })).status === 401, "C to refuse the token", 1000);
  });

  it("a deploy and a delete on one node are in force on the others within 1 s", async () => {
    await register(node(1).call, { name: "changing", runtime: "python", code: 'def handler(r):\n    return "v1"\n' });
    await answeredEverywhere("changing");
    await node(1).call("/api/functions/changing", { method: "PUT", json: { code: 'def handler(r):\n    return "v2"\n' } });
    await waitFor(async () => (await (await node(2).call("/fn/changing")).text()) === "v2", "C to serve version 2", 1000);
    await node(1).call("/api/functions/changing", { method: "DELETE" });
    await waitFor(async () => (await node(0).call("/fn/changing")).status === 404, "A to forget the function", 1000);
  });
});

describe("a gateway dies mid-load", () => {
  it("its in-flight rows become interrupted within the lease, exactly once, and the others keep answering", async () => {
    await register(node(0).call, {
      name: "slowish",
      runtime: "python",
      code: "import time\n\ndef handler(request):\n    time.sleep(0.3)\n    return 'done'\n",
    });
    await answeredEverywhere("slowish", 5000);
    const victim = node(1);
    const answers = await load(cluster, {
      name: "slowish",
      total: 120,
      perNode: 4,
      nodes: [0, 1, 2],
      before: async (n) => {
        if (n === 40) await victim.server.kill();
      },
    });
    const others = answers.filter((a) => a.node !== 1);
    expect(others.filter((a) => a.status !== 200)).toEqual([]);
    // B's rows: none stays running once the lease has run out; those cut short say why.
    await waitFor(
      async () => (await logOf(node(0).call, "slowish")).filter((r) => r.node === victim.id && r.status === "running").length === 0,
      "B's running rows to be ended",
      LEASE_MS * 3,
    );
    const cut = (await logOf(node(2).call, "slowish")).filter((r) => r.node === victim.id && r.status === "interrupted");
    expect(cut.length).toBeGreaterThan(0);
    for (const row of cut) expect(row.error).toBe(NODE_LOST_MESSAGE);
    const listed = ((await (await node(0).call("/api/nodes")).json()) as { items: Json[] }).items;
    expect(listed.find((n) => n.id === victim.id)).toMatchObject({ state: "lost" });
    // Restarted on its data dir, it is the same node again, and live.
    cluster.nodes[1] = await cluster.start(1, victim.server.dataDir);
    expect(node(1).id).toBe(victim.id);
    const again = ((await (await node(0).call("/api/nodes")).json()) as { items: Json[] }).items;
    expect(again.find((n) => n.id === victim.id)).toMatchObject({ state: "live" });
  }, 120_000);
});

describe("the database restarts mid-load", () => {
  it("known functions keep answering without a 5xx, and afterwards every answered invocation has exactly one row", async () => {
    await register(node(0).call, { name: "steady", runtime: "python", code: PY_HELLO, public: true });
    await answeredEverywhere("steady", 5000);
    const before = (await logOf(node(0).call, "steady")).length;
    const answers: Answer[] = await load(cluster, {
      name: "steady",
      total: 600,
      perNode: 4,
      nodes: [0, 1, 2],
      token: null,
      before: (n) => {
        if (n === 150) cluster.postgres.ctl("restart", "-m", "fast");
      },
    });
    expect(answers.filter((a) => a.status === null || a.status >= 500)).toEqual([]);
    for (const n of cluster.nodes) await spoolDrained(n);
    const rows = await logOf(node(2).call, "steady");
    expect(rows.length - before).toBe(answers.length);
    const logged = new Map<string, number>();
    for (const row of rows) logged.set(row.id, (logged.get(row.id) ?? 0) + 1);
    for (const answer of answers) expect(logged.get(answer.id!)).toBe(1);
    expect(rows.filter((r) => r.status === "running")).toEqual([]);
  }, 180_000);
});

describe("the database is away", () => {
  it("known functions are served, API writes answer 503 with Retry-After, /healthz says so and stays ready; rows arrive once it is back", async () => {
    await register(node(0).call, { name: "offline", runtime: "python", code: PY_HELLO, public: true });
    await answeredEverywhere("offline", 5000);
    cluster.postgres.ctl("stop", "-m", "fast");
    let down = true;
    try {
      const served = await node(2).call("/fn/offline", { token: null });
      expect(served.status).toBe(200);
      const id = served.headers.get("x-invocation-id");
      const write = await node(0).call("/api/functions/offline", { method: "PUT", json: { code: `# later\n${PY_HELLO}` } });
      expect(write.status).toBe(503);
      expect(write.headers.get("retry-after")).toBe("5");
      expect(((await write.json()) as Json).error.code).toBe("database_unavailable");
      const health = await fetch(`${node(2).server.url}/healthz`);
      expect(health.status).toBe(200);
      expect(((await health.json()) as Json).database).toMatchObject({ ready: true, database: "unreachable", spooled_writes: 2 });
      cluster.postgres.ctl("start");
      down = false;
      await spoolDrained(node(2));
      expect(((await (await node(1).call(`/api/invocations/${id}`)).json()) as Json).status).toBe("ok");
    } finally {
      if (down) cluster.postgres.ctl("start");
    }
  }, 120_000);
});

describe("console sessions", () => {
  it("are valid on every gateway, and signing out on one ends them on all", async () => {
    const headers = { "x-fngw-console": "1" };
    const signIn = await node(0).call("/api/session", { method: "POST", token: null, headers, json: { token: TOKEN } });
    expect(signIn.status).toBe(204);
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0]!;
    for (const k of [1, 2])
      expect((await node(k).call("/api/functions", { token: null, headers: { ...headers, cookie } })).status).toBe(200);
    expect((await node(2).call("/api/session", { method: "DELETE", token: null, headers: { ...headers, cookie } })).status).toBe(204);
    for (const k of [0, 1])
      expect((await node(k).call("/api/functions", { token: null, headers: { ...headers, cookie } })).status).toBe(401);
  });
});

// The HTTP edge under hostile clients, against the real gateway: bodies in 1-byte chunks, bodies
// that stall, and function answers Node cannot write. README "Reading request bodies" is the spec.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  invocation,
  type Json,
  rawRequest,
  register,
  removeDataDir,
  rssBytes,
  type Server,
  sendOneByteChunks,
  startServer,
  writeAll,
} from "./harness.js";

const TOKEN = "e2e-edges-token-7c2a91d04b";
const MiB = 1024 * 1024;
const SIZE_CODE = 'def handler(request):\n    return {"bytes": len(request.body)}\n';

async function stopAndClean(server: Server | undefined): Promise<void> {
  if (!server) return;
  const code = await server.stop();
  removeDataDir(server.dataDir);
  expect(code, `stderr:\n${server.stderr()}`).toBe(0);
}

describe("a body in 1-byte chunks", () => {
  let server: Server;
  const call = client(
    () => server.url,
    () => TOKEN,
  );
  beforeAll(async () => {
    // Node parses some 100k chunks a second at best: 3 Mi of them need more than the default read deadline.
    server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, BODY_READ_TIMEOUT_MS: "150000" }, uidIndex: 0 });
    await register(call, { name: "size", runtime: "python", code: SIZE_CODE, public: true });
  });
  afterAll(() => stopAndClean(server));

  it("costs the gateway memory within a small constant of its size, and others are answered meanwhile", async () => {
    const pid = server.child.pid!;
    await call("/fn/size", { method: "POST", body: "warm" }); // the first invocation's one-time allocations are not the body's
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
    const bodyBytes = 3 * MiB;
    const upload = rawRequest(server.port, "POST /fn/size HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked", (socket) =>
      sendOneByteChunks(socket, bodyBytes),
    );
    let uploaded = false;
    void upload.then(() => (uploaded = true));
    // While the upload is under way, a small request goes through: it is answered before the upload ends.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const smallStarted = performance.now();
    const small = await call("/fn/size", { method: "POST", body: "tiny" });
    const smallMs = performance.now() - smallStarted;
    const answeredDuringUpload = !uploaded;
    const answer = await upload;
    clearInterval(sampler);

    expect(small.status).toBe(200);
    expect(await small.json()).toEqual({ bytes: 4 });
    expect(answeredDuringUpload, "the small request was answered while the upload went on").toBe(true);
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ bytes: bodyBytes });
    // Before: 160-270 bytes of memory per body byte (one Web-stream chunk and promise each). The bound
    // is the body's buffer, its copies on the way to the sandbox (base64, the envelope) and GC slack.
    const growth = peak - before;
    console.log(
      `3 MiB in 1-byte chunks: ${(answer.elapsedMs / 1000).toFixed(1)} s, RSS +${(growth / MiB).toFixed(1)} MiB, a small request meanwhile ${smallMs.toFixed(0)} ms`,
    );
    expect(growth, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`).toBeLessThan(20 * bodyBytes);
  }, 180_000);
});

describe("slow senders", () => {
  const READ_TIMEOUT_MS = 2000;
  let server: Server;
  const call = client(
    () => server.url,
    () => TOKEN,
  );
  beforeAll(async () => {
    // Admission: 2 running + 1 queued. Reading is bounded on its own: 16 bodies at once, 2 s each.
    const env = {
      GATEWAY_TOKEN: TOKEN,
      MAX_CONCURRENCY: "2",
      QUEUE_LIMIT: "1",
      BODY_READ_TIMEOUT_MS: String(READ_TIMEOUT_MS),
      MAX_READING_REQUESTS: "16",
    };
    server = await startServer({ env, uidIndex: 1 });
    await register(call, { name: "size", runtime: "python", code: SIZE_CODE, public: true });
    await register(call, { name: "private", runtime: "python", code: SIZE_CODE });
  });
  afterAll(() => stopAndClean(server));

  it("cannot lock the others out: more stalled bodies than admission places, the token holder's calls answer 200", async () => {
    const slowCount = 8;
    const slow = Array.from({ length: slowCount }, () =>
      rawRequest(server.port, "POST /fn/size HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000000", (socket) => writeAll(socket, "x")),
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // every slow sender is connected and stalled
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call("/fn/private", { method: "POST", body: `call ${i}` });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);

    const answers = await Promise.all(slow);
    for (const answer of answers) {
      // Cut at the read deadline: a 408 when the answer reaches the client, at worst a closed connection.
      expect(answer.elapsedMs).toBeLessThan(READ_TIMEOUT_MS + 1500);
      expect(answer.elapsedMs).toBeGreaterThanOrEqual(READ_TIMEOUT_MS - 100);
      if (answer.reset && answer.status === null) continue;
      expect(answer.status).toBe(408);
      expect(JSON.parse(answer.body).error.code).toBe("request_timeout");
      const row: Json = await invocation(call, answer.headers["x-invocation-id"] ?? null);
      expect(row).toMatchObject({ function: "size", status: "rejected", http_status: 408 });
    }
    expect(answers.filter((a) => a.status === 408).length).toBeGreaterThan(0);
  }, 30_000);
});

describe("response headers Node refuses to write", () => {
  let server: Server;
  const call = client(
    () => server.url,
    () => TOKEN,
  );
  beforeAll(async () => {
    server = await startServer({ env: { GATEWAY_TOKEN: TOKEN }, uidIndex: 2 });
  });
  afterAll(() => stopAndClean(server));

  it("are dropped, the answer goes out with its id, and the log's stderr says what was dropped", async () => {
    const code = `def handler(request):
    return ("fine", 201, {"x-ctl": "a\\x01b", "x-del": "\\x7f", "x-good": "yes"})
`;
    await register(call, { name: "ctl", runtime: "python", code });
    const res = await call("/fn/ctl");
    expect(res.status).toBe(201);
    expect(await res.text()).toBe("fine");
    expect(res.headers.get("x-good")).toBe("yes");
    expect(res.headers.has("x-ctl")).toBe(false);
    expect(res.headers.has("x-del")).toBe(false);
    const row = await invocation(call, res.headers.get("x-invocation-id"));
    expect(row).toMatchObject({ status: "ok", http_status: 201 });
    expect(row.stderr).toContain("dropped response header x-ctl");
    expect(row.stderr).toContain("dropped response header x-del");
  });
});

// `npm run soak [-- --quick] [-- --requests N]` (as root): a real gateway of its own, thousands of
// invocations above its admission limit from a mix of clients, then the checks of README "Speed".
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { Pool } from "undici";
import { client, rawRequest, register, removeDataDir, startServer, tempDataDir, writeAll } from "../test/e2e/harness.js";
import {
  type Check,
  cgroupDirOf,
  databaseBytes,
  leftoverCgroups,
  mountsBelow,
  printChecks,
  processesOfUids,
  processFootprint,
  tempEntries,
} from "./soak-checks.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const total = Number(args[args.indexOf("--requests") + 1] ?? "") || (quick ? 500 : 3000);
const TOKEN = "soak-token-5d0e7a9c31f2";
const UID_BASE = 700_000;
const MAX_CONCURRENCY = 4;
const QUEUE_LIMIT = 8;
const CONCURRENCY = 24; // clients at once: twice the admission limit
const BODY_READ_TIMEOUT_MS = 2000;

/** A client kind: what it calls, and the answers (status and error code) the README specifies for it. */
interface Kind {
  name: string;
  weight: number;
  expected: Record<number, string | null>;
}
const SATURATED = { 429: "rejected" };
const KINDS: Kind[] = [
  { name: "good", weight: 30, expected: { 200: null, ...SATURATED } },
  { name: "good-js", weight: 20, expected: { 200: null, ...SATURATED } },
  { name: "failing", weight: 10, expected: { 500: "error", ...SATURATED } },
  { name: "slow", weight: 10, expected: { 200: null, ...SATURATED } },
  { name: "hungry", weight: 5, expected: { 500: "oom", ...SATURATED } },
  { name: "flood", weight: 5, expected: { 200: null, ...SATURATED } },
  { name: "forbidden", weight: 10, expected: { 500: "forbidden", ...SATURATED } },
  { name: "slow-body", weight: 5, expected: { 408: "request_timeout", ...SATURATED } },
];
const FUNCTIONS: Record<string, { runtime: string; code: string; memory_mb?: number }> = {
  good: { runtime: "python", code: 'def handler(request):\n    return {"ok": True}\n' },
  "good-js": { runtime: "node", code: "export default () => Response.json({ ok: true });\n" },
  failing: { runtime: "python", code: 'def handler(request):\n    raise ValueError("soak")\n' },
  slow: { runtime: "python", code: 'import time\n\ndef handler(request):\n    time.sleep(0.5)\n    return "slept"\n' },
  hungry: {
    runtime: "python",
    code: "def handler(request):\n    hog = []\n    while True:\n        hog.append(bytearray(8 << 20))\n",
    memory_mb: 64,
  },
  flood: { runtime: "python", code: 'import sys\n\ndef handler(request):\n    sys.stdout.write("y" * (4 << 20))\n    return "flooded"\n' },
  forbidden: {
    runtime: "python",
    code: 'import ctypes, os\n\ndef handler(request):\n    nr = {"x86_64": 103, "aarch64": 116}[os.uname().machine]\n    ctypes.CDLL(None).syscall(nr, 3, None, 0)\n    return "survived"\n',
  },
};
FUNCTIONS["slow-body"] = FUNCTIONS.good!;

interface Answer {
  kind: string;
  status: number | null;
  code: string | null;
  id: string | null;
}

const kindOf = (i: number): Kind => {
  const sum = KINDS.reduce((n, k) => n + k.weight, 0);
  let at = (i * 7919) % sum; // spread deterministically
  for (const kind of KINDS) {
    at -= kind.weight;
    if (at < 0) return kind;
  }
  return KINDS[0]!;
};

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the soak run starts a gateway: run it as root");
  const dataDir = tempDataDir();
  // A temp directory of the gateway's own: the system's is shared with whatever else runs.
  const gatewayTmp = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-soak-tmp-"));
  const env = {
    GATEWAY_TOKEN: TOKEN,
    MAX_CONCURRENCY: String(MAX_CONCURRENCY),
    QUEUE_LIMIT: String(QUEUE_LIMIT),
    BODY_READ_TIMEOUT_MS: String(BODY_READ_TIMEOUT_MS),
    SANDBOX_UID_BASE: String(UID_BASE),
    PACKAGES_UID: String(UID_BASE + 999),
    LOG_RETENTION_DAYS: "0",
    TMPDIR: gatewayTmp,
  };
  const server = await startServer({ env, dataDir });
  const pid = server.child.pid!;
  const cgroupDir = cgroupDirOf(pid);
  const call = client(
    () => server.url,
    () => TOKEN,
  );
  for (const [name, fn] of Object.entries(FUNCTIONS)) await register(call, { name, public: true, ...fn });
  console.log(`soak: ${total} requests, ${CONCURRENCY} at once, admission ${MAX_CONCURRENCY}+${QUEUE_LIMIT}, gateway pid ${pid}`);

  const pool = new Pool(server.url, { connections: CONCURRENCY });
  const answers: Answer[] = [];
  const footprints: { done: number; rss: number; fds: number }[] = [];
  const sampleEvery = Math.max(10, Math.floor(total / 60));
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      const kind = kindOf(next++);
      answers.push(await send(kind, pool, server.port));
      if (answers.length % sampleEvery === 0) footprints.push({ done: answers.length, ...processFootprint(pid) });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  const code = await server.stop(30_000);

  const checks: Check[] = [];
  // Every answer as specified for its kind.
  const byStatus = new Map<string, number>();
  const wrong: string[] = [];
  for (const a of answers) {
    byStatus.set(`${a.kind} ${a.status ?? "cut"}`, (byStatus.get(`${a.kind} ${a.status ?? "cut"}`) ?? 0) + 1);
    const kind = KINDS.find((k) => k.name === a.kind)!;
    const cutSlowBody = a.kind === "slow-body" && a.status === null;
    if (!cutSlowBody && (a.status === null || !(a.status in kind.expected) || kind.expected[a.status] !== a.code))
      wrong.push(`${a.kind}: ${a.status} ${a.code}`);
  }
  console.log(
    [...byStatus]
      .sort()
      .map(([k, n]) => `  ${k}: ${n}`)
      .join("\n"),
  );
  checks.push({
    name: "answers as specified",
    ok: wrong.length === 0,
    detail: wrong.length ? `${wrong.length} not: ${wrong.slice(0, 5).join("; ")}` : `${answers.length} of ${total}`,
  });

  // One log row per answer, with the status the client saw.
  const db = new Database(path.join(dataDir, "gateway.db"), { readonly: true });
  const rows = new Map(
    (db.prepare("select id, http_status as status from invocations").all() as { id: string; status: number }[]).map((r) => [
      r.id,
      r.status,
    ]),
  );
  const dbBytes = databaseBytes(path.join(dataDir, "gateway.db"));
  db.close();
  const withId = answers.filter((a) => a.id !== null);
  const mismatched = withId.filter((a) => rows.get(a.id!) !== a.status);
  const cut = answers.filter((a) => a.id === null).length;
  const extraRows = rows.size - withId.length;
  checks.push({
    name: "one log row per answer",
    ok: mismatched.length === 0 && extraRows >= 0 && extraRows <= cut,
    detail: `${withId.length} answers with an id, ${rows.size} rows, ${mismatched.length} mismatched, ${cut} cut slow bodies (rows without an answer: ${extraRows})`,
  });

  // Nothing left behind.
  checks.push({ name: "gateway exit", ok: code === 0, detail: `exit ${code}` });
  const procs = processesOfUids(UID_BASE, MAX_CONCURRENCY);
  checks.push({
    name: "no leftover sandbox processes",
    ok: procs.length === 0,
    detail: procs.length ? `pids ${procs.join(", ")}` : "none",
  });
  const groups = leftoverCgroups(cgroupDir, pid);
  checks.push({ name: "no leftover cgroups", ok: groups.length === 0, detail: groups.length ? groups.join(", ") : `none in ${cgroupDir}` });
  const mounts = mountsBelow(dataDir);
  checks.push({ name: "no leftover mounts", ok: mounts.length === 0, detail: mounts.length ? mounts.join(", ") : "none" });
  const leftTemp = [...tempEntries(gatewayTmp)].filter((e) => !e.startsWith("tsx-")); // tsx's compile cache, the loader's
  const leftData = [...tempEntries(dataDir)].filter((e) => !/^gateway\.db(-wal|-shm)?$/.test(e) && e !== "jail");
  const jailLeft = fs.existsSync(path.join(dataDir, "jail")) ? fs.readdirSync(path.join(dataDir, "jail")) : [];
  const left = [
    ...leftTemp.map((e) => `TMPDIR/${e}`),
    ...leftData.map((e) => `DATA_DIR/${e}`),
    ...jailLeft.map((e) => `DATA_DIR/jail/${e}`),
  ];
  checks.push({
    name: "no leftover temp directories",
    ok: left.length === 0,
    detail: left.length ? left.join(", ") : "none in TMPDIR, DATA_DIR or its jail",
  });

  // Flat memory and descriptors: the middle and the last third compared. The first third is warm-up:
  // the heap, SQLite's cache and the standbys grow over the first ~2000 invocations, then level off.
  const third = Math.max(1, Math.floor(footprints.length / 3));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const [first, last] = [footprints.slice(third, 2 * third), footprints.slice(-third)];
  const rssFirst = mean(first.map((f) => f.rss));
  const rssLast = mean(last.map((f) => f.rss));
  const fdsFirst = Math.max(...first.map((f) => f.fds));
  const fdsLast = Math.max(...last.map((f) => f.fds));
  const MiB = 1024 * 1024;
  checks.push({
    name: "gateway RSS flat",
    ok: rssLast <= rssFirst * 1.25 + 16 * MiB,
    detail: `${(rssFirst / MiB).toFixed(0)} MiB → ${(rssLast / MiB).toFixed(0)} MiB (middle and last third; ${(footprints[0]!.rss / MiB).toFixed(0)} MiB at the start)`,
  });
  checks.push({ name: "open descriptors flat", ok: fdsLast <= fdsFirst + 8, detail: `max ${fdsFirst} → ${fdsLast}` });
  const step = Math.max(1, Math.floor(footprints.length / 10));
  console.log(
    `gateway RSS (MiB) / fds along the run: ${footprints
      .filter((_, i) => i % step === 0)
      .map((f) => `${f.done}:${(f.rss / MiB).toFixed(0)}/${f.fds}`)
      .join(" ")}`,
  );
  console.log(
    `database: ${(dbBytes / 1024).toFixed(0)} KiB for ${rows.size} rows; ${(answers.length / seconds).toFixed(1)} requests/s over ${seconds.toFixed(0)} s`,
  );

  const passed = printChecks(checks);
  if (passed) {
    removeDataDir(dataDir);
    fs.rmSync(gatewayTmp, { recursive: true, force: true });
  } else console.log(`data kept in ${dataDir}`);
  process.exit(passed ? 0 : 1);
}

/** One client of `kind`: an HTTP call through the pool, or for a slow body a raw socket that stalls mid-body. */
async function send(kind: Kind, pool: Pool, port: number): Promise<Answer> {
  if (kind.name === "slow-body") {
    const answer = await rawRequest(port, "POST /fn/slow-body HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000", (socket) =>
      writeAll(socket, "0123456789"),
    );
    const code = answer.status === null ? null : ((JSON.parse(answer.body || "{}") as { error?: { code?: string } }).error?.code ?? null);
    return { kind: kind.name, status: answer.status, code, id: answer.headers["x-invocation-id"] ?? null };
  }
  const res = await pool.request({
    path: `/fn/${kind.name}`,
    method: kind.name === "good-js" ? "POST" : "GET",
    body: kind.name === "good-js" ? "{}" : undefined,
  });
  const text = await res.body.text();
  const code = res.statusCode >= 400 ? ((JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null) : null;
  const id = res.headers["x-invocation-id"];
  return { kind: kind.name, status: res.statusCode, code, id: typeof id === "string" ? id : null };
}

main().catch((err: unknown) => {
  console.error("soak failed:", err);
  process.exit(1);
});

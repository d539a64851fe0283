/**
 * The gateway end to end, beside the bare interpreters, in one run.
 *   npm run bench [-- --quick] [-- --requests 300] [-- --cpu-prof DIR] [-- --store postgres]
 *
 * Starts the gateway (src/main.ts) as a child process on a free loopback port with a fresh
 * DATA_DIR and token, registers a hello world and a JSON transform in each runtime for every
 * isolation mode it accepts, and drives each over HTTP (autocannon) at concurrency 1, 4 and 8,
 * plus one at a time with 400 ms between calls (idle: a standby always ready). The bare
 * interpreters (`python3 -I -S -c pass`, `node -e 0`, the real binaries the gateway resolves,
 * and `node -e 'new Response("")'`, the floor of a fresh Node per invocation, which Node's
 * throughput ratios are taken against) are spawned the same way. Beside latency and throughput,
 * each case's CPU per invocation by process, from /proc (bench/lib/cpu.ts): the gateway's own and
 * the sandbox's. Prints a table, writes every figure to bench/results/<time>.json, then checks
 * the log lost nothing: one row per request sent, and no 5xx. Last, the `stream` case
 * (bench/lib/stream.ts): a body streamed in 64 KiB chunks to a client reading at full speed and
 * to one reading 1 MB/s, with the gateway's resident memory sampled meanwhile. With
 * `--store postgres` the gateway's database is a throwaway PostgreSQL server started for the run
 * (bench/compare.ts sets two runs' figures side by side).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { startPostgres } from "../scripts/postgres.js";
import { loadConfig } from "../src/core/config.js";
import { INTERPRETERS, type InterpreterKind } from "../src/core/runtimes.js";
import { resolveInterpreters } from "../src/sandbox/binaries.js";
import { type AsyncFigures, measureAsync } from "./lib/async.js";
import { type CpuByProcess, cpuBetween, reapedBetween, sampleCpu } from "./lib/cpu.js";
import { BENCH_FUNCTIONS, type BenchFunction } from "./lib/functions.js";
import { Gateway } from "./lib/gateway.js";
import { bareCommand, drive, driveIdle, spawnLoad, type Target } from "./lib/load.js";
import { type Figures, table } from "./lib/stats.js";
import { readStream, STREAM_FUNCTIONS, type StreamFigures } from "./lib/stream.js";

/** Isolation modes to try; "default" registers without the field. A mode the gateway refuses (400) is skipped. */
const ISOLATION_MODES = ["default", "invocation", "function"] as const;
type IsolationMode = (typeof ISOLATION_MODES)[number];
const CONCURRENCIES = [1, 4, 8] as const;
const IDLE_GAP_MS = 400;
/**
 * Requests per connection sent right before each measured run, at its concurrency: the run then
 * finds the interpreters (standbys, warm instances) it will use started. Warm instances of the
 * bench's two functions of a runtime share the gateway's slots, so each run warms its own again.
 */
const WARMUP_PER_CONNECTION = 3;
const RESULTS_DIR = fileURLToPath(new URL("./results", import.meta.url));

const oneOf =
  <T extends string>(allowed: readonly T[]) =>
  (text: string): T[] => {
    const chosen = text.split(",");
    const unknown = chosen.filter((value) => !allowed.includes(value as T));
    if (unknown.length > 0) throw new InvalidArgumentError(`not one of ${allowed.join(", ")}: ${unknown.join(", ")}`);
    return chosen as T[];
  };

const positiveInt = (text: string) => {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError("a positive integer");
  return value;
};

const options = new Command()
  .name("bench")
  .description("Latency and throughput of the gateway against the bare interpreters")
  .option("--quick", 'a short run (about a minute): fewer requests per case, and "default" left out (it is "invocation")')
  .option("--requests <n>", "requests per case at each concurrency (default 300, quick 16)", positiveInt)
  .option("--idle-requests <n>", "requests of the idle case, 400 ms apart (default 40, quick 4)", positiveInt)
  .option("--isolation <modes>", `only these isolation modes, comma-separated (${ISOLATION_MODES.join(", ")})`, oneOf(ISOLATION_MODES))
  .option("--runtime <runtimes>", `only these runtimes, comma-separated (${INTERPRETERS.join(", ")})`, oneOf(INTERPRETERS))
  .option("--async-jobs <n>", "jobs of the asynchronous case (default 4000, quick 400)", positiveInt)
  .option("--no-async", "leave the asynchronous case out")
  .option("--cpu-prof <dir>", "start the gateway with --cpu-prof, profiles written to <dir>")
  .option(
    "--store <engine>",
    "the gateway's database: sqlite (DATA_DIR) or postgres (a throwaway server)",
    oneOf(["sqlite", "postgres"] as const),
    ["sqlite"] as const,
  )
  .option("--stream-mb <n>", "MB streamed to the full-speed reader (default 200, quick 50)", positiveInt)
  .option("--slow-mb <n>", "MB streamed to the 1 MB/s reader (default 10, quick 8: more than the kernel's send buffer)", positiveInt)
  .option("--only-stream", "only the stream case")
  .option("--out <dir>", "where the JSON results go", RESULTS_DIR)
  .parse()
  .opts<{
    quick?: boolean;
    requests?: number;
    idleRequests?: number;
    isolation?: IsolationMode[];
    runtime?: InterpreterKind[];
    asyncJobs?: number;
    async: boolean;
    cpuProf?: string;
    store: readonly ("sqlite" | "postgres")[];
    streamMb?: number;
    slowMb?: number;
    onlyStream?: boolean;
    out: string;
  }>();
const store = options.store[0] ?? "sqlite";

const perCase = options.requests ?? (options.quick ? 16 : 300);
const idleRequests = options.idleRequests ?? (options.quick ? 4 : 40);
const modes = options.onlyStream
  ? []
  : (options.isolation ?? (options.quick ? ISOLATION_MODES.filter((mode) => mode !== "default") : ISOLATION_MODES));
const streamMb = options.streamMb ?? (options.quick ? 50 : 200);
const slowMb = options.slowMb ?? (options.quick ? 8 : 10);
/** Room for the stream case's body (the default cap, 6 MiB, is far below it). */
const STREAM_CAP_BYTES = (Math.max(streamMb, slowMb) + 1) * 1024 * 1024;

interface CaseResult {
  /** For bare spawns: the mode whose rows they were measured beside. */
  mode: IsolationMode;
  runtime: InterpreterKind;
  /** "spawn": the bare interpreter; "spawn-response": bare Node building one Web Response, the floor of a fresh Node per invocation. */
  kind: BenchFunction["kind"] | "spawn" | "spawn-response";
  /** "idle" = one at a time, 400 ms apart. */
  concurrency: number | "idle";
  figures: Figures;
  /** CPU per completed invocation (ms) of each process involved (bench/lib/cpu.ts); a bare spawn's is all `interpreters`. */
  cpu: CpuByProcess;
  p50Ratio: number | null;
  throughputRatio: number | null;
}

const startedAt = new Date();
// Other work on the host skews every figure; the load average says how much there was.
const loadBefore = os.loadavg();
const results: CaseResult[] = [];
const skippedModes: { mode: IsolationMode; reason: string }[] = [];

const config = loadConfig({ DATA_DIR: os.tmpdir() });
const interpreters = resolveInterpreters(config.PYTHON_BIN, config.NODE_BIN);
const binaries: Record<InterpreterKind, string> = { python: interpreters.python.binary, node: interpreters.node.binary };
for (const runtime of INTERPRETERS) await spawnLoad(...bareCommand(runtime, binaries), 1, 3); // warm the page cache

const nodeArgs = options.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(options.cpuProf)}`] : [];
const postgres = store === "postgres" ? await startPostgres() : null;
const gateway = await Gateway.start(
  { MAX_RESPONSE_BYTES: String(STREAM_CAP_BYTES), ...(postgres ? { DATABASE_URL: postgres.url } : {}) },
  nodeArgs,
);
const streams: StreamFigures[] = [];
let health: unknown = null;
const expectedRows = new Map<string, number>();
try {
  health = await (await fetch(`${gateway.url}/healthz`)).json();
  for (const mode of modes) {
    const registered = await registerAll(mode);
    if (registered === null) continue;
    for (const runtime of options.runtime ?? INTERPRETERS)
      await measureRuntime(
        runtime,
        [...registered].filter(([, fn]) => fn.runtime === runtime),
        mode,
      );
  }
  for (const runtime of options.runtime ?? INTERPRETERS) await measureStream(runtime);
} catch (error) {
  console.error(gateway.log);
  await gateway.stop();
  postgres?.stop();
  throw error;
}
const logCheck = await checkLog();
await gateway.stop();
postgres?.stop();
const asyncResults: AsyncFigures[] = options.async ? await measureAsync(options.asyncJobs ?? (options.quick ? 400 : 4000), perCase) : [];

printTable();
printStreams();
fs.mkdirSync(options.out, { recursive: true });
const file = path.join(options.out, `${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
const environment = {
  cores: os.availableParallelism(),
  cpu: os.cpus()[0]?.model ?? "unknown",
  kernel: os.release(),
  loadAverage: { before: loadBefore, after: os.loadavg() },
  node: process.version,
  python: interpreters.python.version,
  binaries,
  gatewayHealth: health,
};
const settings = {
  store,
  quick: Boolean(options.quick),
  perCase,
  idleRequests,
  idleGapMs: IDLE_GAP_MS,
  warmupPerConnection: WARMUP_PER_CONNECTION,
};
fs.writeFileSync(
  file,
  `${JSON.stringify({ startedAt, settings, environment, skippedModes, results, streams, asyncResults, logCheck }, null, 2)}\n`,
);
console.log(`\nfull figures: ${path.relative(process.cwd(), file)}`);
const lost = logCheck.filter((check) => check.rows !== check.sent || check.fiveXX > 0);
if (lost.length > 0) {
  console.error(`LOG CHECK FAILED: ${lost.map((c) => `${c.function}: ${c.rows} rows for ${c.sent} sent, ${c.fiveXX} 5xx`).join("; ")}`);
  process.exitCode = 1;
} else {
  console.log(`log check: ${logCheck.reduce((sum, c) => sum + c.rows, 0)} rows for as many requests, no 5xx`);
}

/** Registers every bench function in `mode`; null (and the mode noted as skipped) if the gateway refuses it with 400. */
async function registerAll(mode: IsolationMode): Promise<Map<string, BenchFunction> | null> {
  const registered = new Map<string, BenchFunction>();
  for (const fn of BENCH_FUNCTIONS) {
    const name = `bench-${fn.runtime}-${fn.kind}-${mode}`;
    const body = { name, runtime: fn.runtime, code: fn.code, ...(mode === "default" ? {} : { isolation: mode }) };
    const { status, json } = await gateway.api<{ error?: { message: string } }>("POST", "/api/functions", body, [201, 400]);
    if (status === 400) {
      const reason = json.error?.message ?? "400";
      skippedModes.push({ mode, reason });
      console.log(`isolation "${mode}": skipped, the gateway refuses it (400: ${reason})`);
      return null;
    }
    registered.set(name, fn);
  }
  return registered;
}

/**
 * A runtime's functions at each concurrency, each level right after the bare spawn at the same
 * level, so that the load of the host (shared with other work) is alike for both.
 */
async function measureRuntime(runtime: InterpreterKind, functions: [string, BenchFunction][], mode: IsolationMode): Promise<void> {
  const targets = functions.map(([name, fn]): [string, Target] => [
    name,
    {
      url: `${gateway.url}/fn/${name}${fn.query}`,
      method: fn.method,
      headers: { authorization: `Bearer ${gateway.token}`, ...fn.headers },
      body: fn.body,
    },
  ]);
  const kindOf = new Map(functions.map(([name, fn]) => [name, fn.kind]));
  // Throughput is compared with the floor a fresh process per invocation cannot go below: for Node,
  // a bare Node that builds one Web Response (a function answers with one); latency with the bare start.
  const record = (name: string, concurrency: number | "idle", { figures, cpu }: Measured, base: Figures, floor = base) => {
    countSent(name, figures.sent);
    results.push({
      mode,
      runtime,
      kind: kindOf.get(name)!,
      concurrency,
      figures,
      cpu,
      p50Ratio: figures.p50 / base.p50,
      throughputRatio: concurrency === "idle" ? null : figures.throughput / floor.throughput,
    });
    process.stderr.write(`${name} c=${concurrency}: p50 ${figures.p50.toFixed(1)} ms, ${figures.throughput.toFixed(1)}/s\n`);
  };
  const countSent = (name: string, sent: number) => expectedRows.set(name, (expectedRows.get(name) ?? 0) + sent);
  // The warm-up's rows count in the log check; its figures are not kept.
  const warmUp = async (name: string, target: Target, concurrency: number) =>
    countSent(name, (await drive(target, concurrency, concurrency * WARMUP_PER_CONNECTION)).sent);
  for (const concurrency of CONCURRENCIES) {
    const base = await bareAt(runtime, concurrency, mode);
    const floor = runtime === "node" ? await bareAt(runtime, concurrency, mode, "spawn-response") : base;
    for (const [name, target] of targets) {
      await warmUp(name, target, concurrency);
      if (concurrency === 1) record(name, "idle", await withCpu(() => driveIdle(target, idleRequests, IDLE_GAP_MS)), base);
      record(name, concurrency, await withCpu(() => drive(target, concurrency, perCase)), base, floor);
    }
  }
}

interface Measured {
  figures: Figures;
  cpu: CpuByProcess;
}

/** A case's figures and the CPU per invocation of each process involved, sampled from /proc around it. */
async function withCpu(drive: () => Promise<Figures>): Promise<Measured> {
  const health = (await (await fetch(`${gateway.url}/healthz`)).json()) as {
    sandbox?: { memory?: { forkServer?: { pid: number } | null } };
  };
  const before = sampleCpu();
  const figures = await drive();
  const used = cpuBetween(before, sampleCpu(), {
    gateway: gateway.pid!,
    forkServer: health.sandbox?.memory?.forkServer?.pid ?? null,
    database: postgres?.pid() ?? null,
  });
  const per = (ms: number) => ms / Math.max(1, figures.count);
  const cpu = {
    gateway: per(used.gateway),
    interpreters: per(used.interpreters),
    forkServer: per(used.forkServer),
    forkedChildren: per(used.forkedChildren),
    database: per(used.database),
  };
  return { figures, cpu };
}

/** The bare interpreter of `runtime`: `perCase` spawns by `concurrency` spawners. */
async function bareAt(
  runtime: InterpreterKind,
  concurrency: number,
  mode: IsolationMode,
  kind: "spawn" | "spawn-response" = "spawn",
): Promise<Figures> {
  const before = sampleCpu();
  const [binary, args] = bareCommand(runtime, binaries);
  const figures = await spawnLoad(binary, kind === "spawn" ? args : ["-e", 'new Response("")'], concurrency, perCase);
  const interpreters = reapedBetween(before, sampleCpu()) / Math.max(1, figures.count);
  const cpu = { gateway: 0, interpreters, forkServer: 0, forkedChildren: 0, database: 0 };
  results.push({ mode, runtime, kind, concurrency, figures, cpu, p50Ratio: 1, throughputRatio: 1 });
  process.stderr.write(`bare ${runtime} c=${concurrency}: p50 ${figures.p50.toFixed(1)} ms\n`);
  return figures;
}

/** The stream case for `runtime`: full speed, then 1 MB/s (bench/lib/stream.ts). */
async function measureStream(runtime: InterpreterKind): Promise<void> {
  const name = `bench-${runtime}-stream`;
  await gateway.api("POST", "/api/functions", { name, runtime, code: STREAM_FUNCTIONS[runtime], timeout_ms: 120_000 });
  const pid = gateway.pid!;
  const url = (mb: number) => `${gateway.url}/fn/${name}?bytes=${mb * 1024 * 1024}`;
  // A warm-up: the first streamed invocation starts the interpreters the measured ones take.
  await readStream(url(32), gateway.token, pid, null);
  expectedRows.set(name, 1);
  for (const [reader, mb, pace] of [
    ["full", streamMb, null],
    ["1MB/s", slowMb, { bytesPerSecond: 1e6, python: binaries.python }],
  ] as const) {
    const figures = await readStream(url(mb), gateway.token, pid, pace);
    expectedRows.set(name, (expectedRows.get(name) ?? 0) + 1);
    const row = figures.invocationId
      ? (await gateway.api<{ duration_ms: number | null }>("GET", `/api/invocations/${figures.invocationId}`)).json
      : null;
    streams.push({ runtime, reader, ...figures, runMs: row?.duration_ms ?? null });
    process.stderr.write(
      `${name} ${reader}: ${(figures.bytes / 1e6).toFixed(0)} MB at ${figures.mbPerSecond.toFixed(1)} MB/s, gateway RSS +${(figures.rssGrowthBytes / 2 ** 20).toFixed(1)} MiB\n`,
    );
  }
}

function printStreams(): void {
  if (streams.length === 0) return;
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  console.log(
    "\nstream: a body in 64 KiB chunks, written as fast as the function may; the gateway's VmRSS sampled every 20 ms (growth = peak - before); run = the invocation's own duration\n",
  );
  console.log(
    table(
      ["case", "reader", "MB", "MB/s", "wall ms", "run ms", "gateway CPU ms", "RSS before MiB", "RSS growth MiB", "status"],
      streams.map((s) => [
        `${s.runtime} stream`,
        s.reader,
        (s.bytes / 1e6).toFixed(0),
        s.mbPerSecond.toFixed(1),
        s.wallMs.toFixed(0),
        s.runMs === null ? "-" : s.runMs.toFixed(0),
        s.gatewayCpuMs.toFixed(0),
        mib(s.rssBeforeBytes),
        mib(s.rssGrowthBytes),
        String(s.status),
      ]),
    ),
  );
}

async function checkLog() {
  const checks = [];
  for (const [name, sent] of expectedRows) {
    const rows = await gateway.invocations(name);
    checks.push({
      function: name,
      sent,
      rows: rows.length,
      fiveXX: rows.filter((row) => (row.http_status ?? 0) >= 500).length,
      statuses: rows.reduce<Record<string, number>>((counts, row) => {
        counts[row.status] = (counts[row.status] ?? 0) + 1;
        return counts;
      }, {}),
    });
  }
  return checks;
}

function printTable(): void {
  const fmt = (value: number | null, digits = 1) => (value === null || Number.isNaN(value) ? "-" : value.toFixed(digits));
  const rows = results.map((r) => [
    r.kind === "spawn" ? `bare ${r.runtime}` : r.kind === "spawn-response" ? "bare node+Response" : `${r.runtime} ${r.kind}`,
    r.mode,
    String(r.concurrency),
    fmt(r.figures.p50),
    fmt(r.figures.p95),
    fmt(r.figures.p99),
    fmt(r.figures.throughput),
    r.kind.startsWith("spawn") ? `${r.figures.errors} failed` : String(r.figures.non2xx + r.figures.errors),
    r.p50Ratio === null ? "-" : `${fmt(r.p50Ratio, 2)}x`,
    r.throughputRatio === null ? "-" : `${fmt(r.throughputRatio, 2)}x`,
    r.kind.startsWith("spawn") ? "-" : fmt(r.cpu.gateway),
    fmt(r.cpu.interpreters + r.cpu.forkServer + r.cpu.forkedChildren),
    ...(postgres ? [r.kind.startsWith("spawn") ? "-" : fmt(r.cpu.database, 2)] : []),
  ]);
  console.log(
    `\n${store}; ${os.availableParallelism()} cores, load average ${loadBefore[0]!.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after; ${perCase} requests per case, idle = ${idleRequests} one at a time ${IDLE_GAP_MS} ms apart; ` +
      "latency in ms; ratios against the bare spawn of the same runtime at the same concurrency, measured just before (idle: against c=1); " +
      "CPU ms per invocation from /proc: the gateway's own, and the sandbox's (interpreters, the fork-server's parent and its children; a bare spawn's interpreter)" +
      (postgres ? "; cpu db: the PostgreSQL server's, on the same cores\n" : "\n"),
  );
  console.log(
    table(
      [
        "case",
        "isolation",
        "c",
        "p50",
        "p95",
        "p99",
        "req/s",
        "non-2xx",
        "p50 ratio",
        "tput ratio",
        "cpu gw",
        "cpu sandbox",
        ...(postgres ? ["cpu db"] : []),
      ],
      rows,
    ),
  );
  for (const { mode, reason } of skippedModes) console.log(`isolation "${mode}" skipped: the gateway answers 400 (${reason})`);
  if (asyncResults.length === 0) return;
  console.log(
    "\nasynchronous (Prefer: respond-async), python hello, one gateway on SQLite; drain against the synchronous calls at ASYNC_MAX_CONCURRENCY\n",
  );
  console.log(
    table(
      ["isolation", "jobs", "enqueue/s", "enqueue p50", "non-202", "drain/s", "sync/s", "c", "drain ratio", "failed"],
      asyncResults.map((r) => [
        r.isolation,
        String(r.enqueue.sent),
        fmt(r.enqueue.throughput, 0),
        fmt(r.enqueue.p50),
        String(r.enqueue.sent - (r.enqueue.statuses["202"] ?? 0)),
        fmt(r.drainPerSecond),
        fmt(r.sync.throughput),
        String(r.asyncConcurrency),
        `${fmt(r.ratio, 2)}x`,
        String(r.failed),
      ]),
    ),
  );
}

import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import autocannon from "autocannon";
import type { InterpreterKind } from "../../src/core/runtimes.js";
import { type Figures, summarise } from "./stats.js";

/** One HTTP request shape, sent again and again. */
export interface Target {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
}

/**
 * `total` requests over `concurrency` keep-alive connections, as fast as they are answered
 * (autocannon; each connection waits for its answer before sending the next request).
 */
export async function drive(target: Target, concurrency: number, total: number): Promise<Figures> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let finish!: (outcome: { error: Error | null; result: autocannon.Result }) => void;
  const finished = new Promise<{ error: Error | null; result: autocannon.Result }>((resolve) => (finish = resolve));
  const started = performance.now();
  const instance = autocannon(
    {
      url: target.url,
      method: target.method,
      headers: target.headers,
      body: target.body,
      connections: concurrency,
      amount: Math.max(total, concurrency), // autocannon refuses fewer requests than connections
      timeout: 30,
    },
    (error, result) => finish({ error: error as Error | null, result }),
  );
  // The run's wall time ends at the last answer: autocannon reports "done" only at its next
  // one-second tick, which would cap a short run's throughput at `total` per second.
  let lastAnswer = started;
  instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    lastAnswer = performance.now();
    latencies.push(responseTime);
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  const { error, result } = await finished;
  if (error) throw error;
  const wallMs = lastAnswer - started;
  return summarise(latencies, wallMs, { statuses, errors: result.errors + result.timeouts, sent: result.requests.sent });
}

/**
 * `total` requests one at a time with `gapMs` between them: the gateway idle, its standbys
 * ready. Node's fetch (undici) on one kept-alive connection; autocannon's rate limit counts
 * whole seconds, too coarse for this.
 */
export async function driveIdle(target: Target, total: number, gapMs: number): Promise<Figures> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let activeMs = 0;
  for (let i = 0; i < total; i++) {
    await delay(gapMs);
    const started = performance.now();
    try {
      const response = await fetch(target.url, { method: target.method, headers: target.headers, body: target.body });
      await response.arrayBuffer();
      const elapsed = performance.now() - started;
      latencies.push(elapsed);
      activeMs += elapsed;
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    } catch {
      errors++;
    }
  }
  // Throughput over the time spent answering, gaps left out: the idle row is about latency.
  return summarise(latencies, activeMs, { statuses, errors, sent: total });
}

/** The bare interpreter, spawned the way the runner spawns one: empty environment, stdio on pipes. */
export function bareCommand(runtime: InterpreterKind, binaries: Record<InterpreterKind, string>): [string, string[]] {
  return runtime === "python" ? [binaries.python, ["-I", "-S", "-c", "pass"]] : [binaries.node, ["-e", "0"]];
}

async function spawnOnce(binary: string, args: string[]): Promise<{ ms: number; ok: boolean }> {
  const started = performance.now();
  const child = spawn(binary, args, { env: {}, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.end();
  child.stdout.resume();
  child.stderr.resume();
  const [code] = (await once(child, "close")) as [number | null];
  return { ms: performance.now() - started, ok: code === 0 };
}

/** `total` spawns by `concurrency` spawners, each starting the next when its last has exited. */
export async function spawnLoad(binary: string, args: string[], concurrency: number, total: number): Promise<Figures> {
  const latencies: number[] = [];
  let failures = 0;
  let next = 0;
  const spawner = async () => {
    while (next < total) {
      next++;
      const { ms, ok } = await spawnOnce(binary, args);
      latencies.push(ms);
      if (!ok) failures++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, spawner));
  const wallMs = performance.now() - started;
  return summarise(latencies, wallMs, { statuses: { exit0: total - failures, failed: failures }, errors: failures, sent: total });
}

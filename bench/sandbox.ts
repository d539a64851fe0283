/**
 * Invocation latency against the bare interpreter, measured in the same run.
 *   sudo npx tsx bench/sandbox.ts [runs=40]
 *
 * For each runtime: the bare interpreter started the way the runner starts it
 * (spawned from Node, stdio on pipes, `python3 -I -S -c pass` / `node -e 0`,
 * empty environment), then a hello-world handler through Sandbox.run (prescript,
 * lock-down, jail, cgroup, result channel): with a pause between invocations (the
 * standby interpreters are ready), back to back, and 4 at a time.
 * Prints median and p95 wall time and the ratio of medians.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../src/core/config.js";
import type { InterpreterKind } from "../src/core/runtimes.js";
import { resolveInterpreters } from "../src/sandbox/binaries.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { helloSpec } from "./lib/functions.js";
import { bareCommand } from "./lib/load.js";

const runs = Number(process.argv[2] ?? 40);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-bench-"));
const config = loadConfig({ DATA_DIR: dataDir, MAX_CONCURRENCY: "4", SANDBOX_UID_BASE: "250000" });
const sandbox = await Sandbox.start(config);
const interpreters = resolveInterpreters(config.PYTHON_BIN, config.NODE_BIN);

const binaries: Record<InterpreterKind, string> = { python: interpreters.python.binary, node: interpreters.node.binary };

async function bare(runtime: InterpreterKind): Promise<number> {
  const started = performance.now();
  const child = spawn(...bareCommand(runtime, binaries), { env: {}, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.end();
  await once(child, "close");
  return performance.now() - started;
}

async function sandboxed(runtime: InterpreterKind): Promise<number> {
  const started = performance.now();
  const result = await sandbox.run(helloSpec(runtime));
  if (result.status !== "ok") throw new Error(`${runtime}: ${result.status} ${result.errorMessage}`);
  return performance.now() - started;
}

/** Runs `task` `runs` times, `parallel` at a time, pausing `gapMs` between rounds. */
async function measure(task: () => Promise<number>, parallel = 1, gapMs = 0): Promise<number[]> {
  for (let i = 0; i < 3; i++) await task(); // warm the page cache
  const times: number[] = [];
  for (let i = 0; i < runs; i += parallel) {
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
    times.push(...(await Promise.all(Array.from({ length: parallel }, task))));
  }
  return times.sort((a, b) => a - b);
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const ms = (value: number) => value.toFixed(1).padStart(7);

console.log(`${runs} runs each, ${os.availableParallelism()} cores, cgroups ${sandbox.health().cgroups}\n`);
console.log("what                                  median      p95   ratio");
for (const runtime of ["python", "node"] as const) {
  const base = await measure(() => bare(runtime));
  const row = (label: string, times: number[]) =>
    console.log(
      `${label.padEnd(34)} ${ms(quantile(times, 0.5))}  ${ms(quantile(times, 0.95))}   ${(quantile(times, 0.5) / quantile(base, 0.5)).toFixed(2)}x`,
    );
  row(`${runtime}: bare interpreter`, base);
  // With a pause between invocations the standby interpreters are ready: the usual case
  // below saturation. Back to back, each invocation also pays for its successor's start.
  row(`${runtime}: sandboxed, standby ready`, await measure(() => sandboxed(runtime), 1, 300));
  row(`${runtime}: sandboxed, back to back`, await measure(() => sandboxed(runtime)));
  row(`${runtime}: sandboxed, 4 at a time`, await measure(() => sandboxed(runtime), 4));
}
console.log("\nwall time in ms from spawn (or run()) to exit; ratio = median / bare median");

await sandbox.close();
fs.rmSync(dataDir, { recursive: true, force: true });

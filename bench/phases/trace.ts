/**
 * Where one invocation's time and CPU go, through Sandbox.run in process (no HTTP, no log):
 *   npx tsx bench/phases/trace.ts [--runtime python|node] [--kind hello|json|script] [--requests 200] [--concurrency 1] [--pause-ms 0]
 *
 * Prints, per invocation, the CPU time of each process involved: the gateway itself, the
 * interpreters it spawned and reaped (Node standbys; Python ones with PYTHON_FORKSERVER=off), and
 * the fork-server's parent and the children it forked and reaped (from /proc, clock ticks summed
 * over the run). With the temporary marks of bench/phases/instrumentation.patch applied
 * (`git apply`, and `git apply -R` afterwards), it also prints the median wall time between
 * consecutive marks and the interpreter's own CPU time at each mark.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { loadConfig } from "../../src/core/config.js";
import { INTERPRETERS, type InterpreterKind } from "../../src/core/runtimes.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { helloSpec } from "../lib/functions.js";
import { quantile, table } from "../lib/stats.js";

const count = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("a whole number");
  return n;
};
const options = new Command()
  .option("--runtime <runtime>", "python or node", "python")
  .option("--kind <kind>", "hello, json or script (bench/lib/functions.ts)", "hello")
  .option("--requests <n>", "invocations", count, 200)
  .option("--concurrency <n>", "invocations at a time", count, 1)
  .option("--pause-ms <n>", "pause after each invocation (standbys ready when long enough)", count, 0)
  .parse()
  .opts<{ runtime: InterpreterKind; kind: "hello" | "json" | "script"; requests: number; concurrency: number; pauseMs: number }>();
if (!INTERPRETERS.includes(options.runtime)) throw new Error(`--runtime must be one of ${INTERPRETERS.join(", ")}`);

const spec = helloSpec(options.runtime, options.kind);

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-trace-"));
const config = loadConfig({ DATA_DIR: dataDir, MAX_CONCURRENCY: "4", SANDBOX_UID_BASE: "610000" });
const sandbox = await Sandbox.start(config);
await new Promise((resolve) => setTimeout(resolve, 1500)); // standbys and prepared children ready

const TICK_MS = 1000 / 100; // USER_HZ
/** utime, stime, cutime, cstime of a process (ms). */
function cpuOf(pid: number | "self"): number[] {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return [11, 12, 13, 14].map((k) => Number(fields[k]) * TICK_MS);
}
const forkServerPid = () => sandbox.health().memory.forkServer?.pid;

const gaps = new Map<string, number[]>();
const cpuAt = new Map<string, number[]>();
const totals: number[] = [];
const push = (map: Map<string, number[]>, key: string, value: number) => map.set(key, [...(map.get(key) ?? []), value]);

const parentPid = forkServerPid();
const parentBefore = parentPid === undefined ? null : cpuOf(parentPid);
const gatewayBefore = process.cpuUsage();
const reapedBefore = cpuOf("self");
const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: options.concurrency }, async () => {
    while (next++ < options.requests) {
      const t0 = performance.timeOrigin + performance.now();
      const result = await sandbox.run(spec);
      const t1 = performance.timeOrigin + performance.now();
      if (result.status !== "ok") throw new Error(`${result.status}: ${result.errorMessage}`);
      totals.push(t1 - t0);
      const marks = [...result.stderr.data.toString().matchAll(/^PHASE (\S+) ([\d.]+) ([\d.]+)$/gm)].map(
        (m) => [m[1]!, Number(m[2]), Number(m[3])] as const,
      );
      const timeline: (readonly [string, number])[] = [["gateway: run", t0], ...marks.map(([name, at]) => [name, at] as const)];
      timeline.push(["gateway: result", t1]);
      timeline.sort((a, b) => a[1] - b[1]);
      for (let k = 1; k < timeline.length; k++)
        push(gaps, `${timeline[k - 1]![0]} -> ${timeline[k]![0]}`, timeline[k]![1] - timeline[k - 1]![1]);
      for (const [name, , cpu] of marks) push(cpuAt, name, cpu);
      if (options.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  }),
);
const wallS = (performance.now() - started) / 1000;
const gateway = process.cpuUsage(gatewayBefore);
const reaped = cpuOf("self").map((v, k) => v - reapedBefore[k]!);
const parentNow = forkServerPid();
const parent = parentBefore && parentNow === parentPid ? cpuOf(parentPid!).map((v, k) => v - parentBefore[k]!) : null;
await sandbox.close();

const n = options.requests;
const per = (ms: number) => (ms / n).toFixed(2);
const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  ).toFixed(2);
console.log(
  `${options.runtime}, ${n} invocations, concurrency ${options.concurrency}, pause ${options.pauseMs} ms: ` +
    `${(n / wallS).toFixed(1)}/s, median ${median(totals)} ms in Sandbox.run\n`,
);
console.log("CPU per invocation (ms)");
const cpuRows = [
  ["gateway (user + system)", per((gateway.user + gateway.system) / 1000)],
  ["interpreters the gateway reaped (user + system)", per(reaped[2]! + reaped[3]!)],
];
if (parent) {
  cpuRows.push(["fork-server parent (user + system)", per(parent[0]! + parent[1]!)]);
  cpuRows.push(["forked children (user + system)", per(parent[2]! + parent[3]!)]);
}
console.log(table(["process", "ms"], cpuRows));
if (cpuAt.size > 0) {
  console.log("\nmedian wall time between marks (ms)");
  console.log(
    table(
      ["from -> to", "ms"],
      [...gaps].map(([key, values]) => [key, median(values)]),
    ),
  );
  console.log("\ninterpreter CPU time at each mark (ms since the process started; a forked child's since its fork)");
  console.log(
    table(
      ["mark", "ms"],
      [...cpuAt].map(([key, values]) => [key, median(values)]),
    ),
  );
}

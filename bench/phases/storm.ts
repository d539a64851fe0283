/**
 * What a storm of refused calls costs the gateway: functions that call setsid (refused with EPERM,
 * so named by the gateway's seccomp listener) in a loop until their deadline, in process
 * (Sandbox.run, no HTTP):
 *   npx tsx bench/phases/storm.ts [--seconds 5] [--concurrency 4]
 * Prints the gateway's CPU time over the run as a share of one core, and the calls counted.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { loadConfig } from "../../src/core/config.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { helloSpec } from "../lib/functions.js";

const count = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("a positive whole number");
  return n;
};
const options = new Command()
  .option("--seconds <n>", "each function's deadline", count, 5)
  .option("--concurrency <n>", "storms at once (one per slot)", count, 4)
  .parse()
  .opts<{ seconds: number; concurrency: number }>();

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-storm-"));
const config = loadConfig({ DATA_DIR: dataDir, MAX_CONCURRENCY: String(options.concurrency), SANDBOX_UID_BASE: "610000" });
const sandbox = await Sandbox.start(config);
await new Promise((resolve) => setTimeout(resolve, 1500));

const code =
  "import os\ndef handler(request):\n    while True:\n        try:\n            os.setsid()\n        except OSError:\n            pass\n";
const spec = { ...helloSpec("python"), code, timeoutMs: options.seconds * 1000 };
const before = process.cpuUsage();
const started = performance.now();
const results = await Promise.all(Array.from({ length: options.concurrency }, () => sandbox.run(spec)));
const wallMs = performance.now() - started;
const used = process.cpuUsage(before);
await sandbox.close();
fs.rmSync(dataDir, { recursive: true, force: true });

const cpuMs = (used.user + used.system) / 1000;
console.log(
  `${options.concurrency} storm(s) of ${options.seconds} s: the gateway used ${cpuMs.toFixed(0)} ms of CPU in ${wallMs.toFixed(0)} ms, ` +
    `${((100 * cpuMs) / wallMs).toFixed(2)} % of one core (start-up and clean-up included)`,
);
for (const result of results) console.log(`  ${result.status}: ${JSON.stringify(result.deniedSyscalls)}`);

/**
 * One invocation of each runtime under `strace -f -tt -T`: the gateway's threads and the
 * standby interpreters waiting for it, attached before the request is sent.
 *   npx tsx bench/phases/strace-standby.ts [out-dir]
 * Writes <out-dir>/<runtime>.strace (one file, every traced pid interleaved by time).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { BENCH_FUNCTIONS } from "../lib/functions.js";
import { Gateway } from "../lib/gateway.js";

const outDir = path.resolve(process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), "fngw-strace-")));
fs.mkdirSync(outDir, { recursive: true });

/** Children of `parent` whose command line contains `needle`. */
function childrenMatching(parent: number, needle: string): number[] {
  return fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return ppid === parent && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

const gateway = await Gateway.start();
try {
  for (const fn of BENCH_FUNCTIONS.filter((f) => f.kind === "hello")) {
    const name = `strace-${fn.runtime}`;
    await gateway.api("POST", "/api/functions", { name, runtime: fn.runtime, code: fn.code });
    const call = () =>
      fetch(`${gateway.url}/fn/${name}${fn.query}`, { headers: { authorization: `Bearer ${gateway.token}` } }).then((r) => r.text());
    for (let i = 0; i < 3; i++) await call();
    await delay(1500); // the standbys are up and waiting
    const standbys = childrenMatching(gateway.pid!, fn.runtime === "python" ? "python" : "--max-old-space-size");
    const file = path.join(outDir, `${fn.runtime}.strace`);
    const strace = spawn(
      "strace",
      ["-f", "-tt", "-T", "-o", file, "-p", String(gateway.pid), ...standbys.flatMap((pid) => ["-p", String(pid)])],
      {
        stdio: "ignore",
      },
    );
    await delay(1000); // attached
    const started = performance.now();
    await call();
    console.log(
      `${fn.runtime}: one call under strace ${(performance.now() - started).toFixed(1)} ms; standbys ${standbys.join(", ")}; ${file}`,
    );
    await delay(1000); // the refill's start is traced too
    strace.kill("SIGINT");
    await once(strace, "exit");
  }
} finally {
  await gateway.stop();
}

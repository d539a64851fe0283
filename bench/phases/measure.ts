/**
 * Where an invocation's time goes, phase by phase. Needs the temporary instrumentation in
 * bench/phases/instrumentation.patch applied (`git apply bench/phases/instrumentation.patch`;
 * it marks CLOCK_MONOTONIC timestamps in the gateway and both prescripts), then:
 *   npx tsx bench/phases/measure.ts [requests=40]
 * Drives a hello world in each runtime idle (one at a time, 400 ms apart) and at
 * concurrency 4, and prints the median of each phase (ms). Revert the patch afterwards.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { BENCH_FUNCTIONS } from "../lib/functions.js";
import { Gateway } from "../lib/gateway.js";
import { quantile, table } from "../lib/stats.js";

const requests = Number(process.argv[2] ?? 40);
const traceFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "fngw-phases-")), "trace.jsonl");

/** Phases as [label, from mark, to mark]; the prescript's marks start with ps_. */
const PHASES: [string, string, string][] = [
  ["routing, auth, function lookup", "http_in", "routed"],
  ["body read", "routed", "body_read"],
  ["log row insert (running)", "body_read", "log_start"],
  ["slot admission", "log_start", "slot_acquired"],
  ["jail.mountTmp", "slot_acquired", "mount_tmp"],
  ["cgroup memory limit + OOM count", "mount_tmp", "cgroup_limit"],
  ["standby take", "cgroup_limit", "standby_taken"],
  ["payload encode", "standby_taken", "payload_encoded"],
  ["cgroup join", "payload_encoded", "cgroup_join"],
  ["fd 3 write", "cgroup_join", "fd3_written"],
  ["hand-off: standby wakes", "fd3_written", "ps_recv"],
  ["lock-down (SandboxSeccomp)", "ps_recv", "ps_locked"],
  ["payload decode, env", "ps_locked", "ps_decoded"],
  ["user code compile/load", "ps_decoded", "ps_loaded"],
  ["handler run (Request built)", "ps_loaded", "ps_handled"],
  ["result encode + write", "ps_handled", "ps_sent"],
  ["process exit + reaping seen", "ps_sent", "exit_seen"],
  ["cgroup kill + OOM read", "exit_seen", "cgroup_after"],
  ["result parse (classify)", "cgroup_after", "classified"],
  ["jail.unmountTmp", "classified", "unmount_tmp"],
  ["standby refill (spawn, sync)", "unmount_tmp", "refill"],
  ["result to HTTP response", "refill", "result_mapped"],
  ["log row update (finish)", "result_mapped", "log_finish"],
  ["middleware out", "log_finish", "http_out"],
];
/** The standby's own start, before its invocation (off the critical path while standbys are ready). */
const STANDBY_PHASES: [string, string, string][] = [
  ["spawn -> prescript runs", "standby_spawned", "ps_boot"],
  ["library load (ctypes / koffi)", "ps_boot", "ps_lib_loaded"],
  ["warm-up until waiting on fd 3", "ps_lib_loaded", "ps_waiting"],
];

interface Trace {
  id: string;
  marks: [string, number][];
}

const gateway = await Gateway.start({ PHASE_TRACE_FILE: traceFile });
const output: Record<string, Record<string, number>> = {};
try {
  for (const fn of BENCH_FUNCTIONS.filter((f) => f.kind === "hello")) {
    const name = `phases-${fn.runtime}`;
    await gateway.api("POST", "/api/functions", { name, runtime: fn.runtime, code: fn.code });
    const call = async () => {
      const started = performance.now();
      const response = await fetch(`${gateway.url}/fn/${name}${fn.query}`, { headers: { authorization: `Bearer ${gateway.token}` } });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`${name}: ${response.status}`);
      return { id: response.headers.get("x-invocation-id")!, ms: performance.now() - started };
    };
    for (let i = 0; i < 3; i++) await call();
    const idle: { id: string; ms: number }[] = [];
    for (let i = 0; i < requests; i++) {
      await delay(400);
      idle.push(await call());
    }
    const busy: { id: string; ms: number }[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < requests / 4; i++) busy.push(await call());
      }),
    );
    output[`${fn.runtime} idle`] = summarise(idle);
    output[`${fn.runtime} c=4`] = summarise(busy);
  }
} finally {
  await gateway.stop();
}

function summarise(calls: { id: string; ms: number }[]): Record<string, number> {
  const traces = new Map(
    fs
      .readFileSync(traceFile, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Trace)
      .map((t) => [t.id, new Map(t.marks)]),
  );
  const columns: Record<string, number[]> = {};
  const add = (label: string, value: number) => {
    columns[label] ??= [];
    columns[label].push(value);
  };
  for (const { id, ms } of calls) {
    const marks = traces.get(id);
    if (!marks) throw new Error(`no trace for ${id}`);
    const span = (from: string, to: string) => marks.get(to)! - marks.get(from)!;
    add("client latency", ms);
    add("HTTP outside the handler (client, node:http, hono)", ms - span("http_in", "http_out"));
    for (const [label, from, to] of [...PHASES, ...STANDBY_PHASES]) add(label, span(from, to));
    add("interpreter side (fd 3 write -> exit seen)", span("fd3_written", "exit_seen"));
    add("standby age at hand-off", span("ps_waiting", "ps_recv"));
  }
  return Object.fromEntries(
    Object.entries(columns).map(([label, values]) => [
      label,
      quantile(
        [...values].sort((a, b) => a - b),
        0.5,
      ),
    ]),
  );
}

const columns = Object.keys(output);
const labels = Object.keys(output[columns[0]!]!);
console.log(`median ms per phase, ${requests} requests each; load average ${os.loadavg()[0]!.toFixed(1)}\n`);
console.log(
  table(
    ["phase", "", "", ...columns],
    labels.map((label) => [label, "", "", ...columns.map((c) => output[c]![label]!.toFixed(2))]),
  ),
);
fs.writeFileSync(path.join(path.dirname(traceFile), "phases.json"), JSON.stringify(output, null, 2));
console.log(`\ntraces: ${traceFile}`);

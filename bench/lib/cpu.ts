import fs from "node:fs";

// CPU time by process over a bench case, from /proc: the gateway itself, the fork-server's parent,
// the children it forked, the interpreters the gateway spawned (Node standbys, warm
// instances, Python ones without the fork-server), and a PostgreSQL server on this host. A process still running is counted by the
// difference between two samples; one that ended is counted in its parent's cutime/cstime once
// reaped.

const TICK_MS = 1000 / 100; // USER_HZ

interface Proc {
  ppid: number;
  /** utime + stime, ms. */
  own: number;
  /** cutime + cstime: the reaped children's CPU, ms. */
  reaped: number;
}

/** Every process on the host, by pid. */
export type CpuSample = Map<number, Proc>;

export function sampleCpu(): CpuSample {
  const sample: CpuSample = new Map();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = fs.readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]!.split(" ");
      const ms = (k: number) => Number(fields[k]) * TICK_MS;
      sample.set(Number(entry), { ppid: Number(fields[1]), own: ms(11) + ms(12), reaped: ms(13) + ms(14) });
    } catch {
      // gone while we looked
    }
  }
  return sample;
}

/** CPU ms of each role between two samples. */
export interface CpuByProcess {
  gateway: number;
  /** Interpreters the gateway started itself: Node's, warm instances, Python's without the fork-server. */
  interpreters: number;
  forkServer: number;
  forkedChildren: number;
  /** The database server and its backends (PostgreSQL on this host; 0 on SQLite, whose work is the gateway's). */
  database: number;
}

export function cpuBetween(
  before: CpuSample,
  after: CpuSample,
  pids: { gateway: number; forkServer: number | null; database: number | null },
): CpuByProcess {
  const delta = (pid: number, key: "own" | "reaped") => (after.get(pid)?.[key] ?? 0) - (before.get(pid)?.[key] ?? 0);
  /** The CPU of `pid`'s live descendants over the case (each alive at the end). */
  const descendants = (pid: number, skip: number | null): number => {
    let sum = 0;
    for (const [child, proc] of after) {
      if (proc.ppid !== pid || child === skip) continue;
      sum += delta(child, "own") + delta(child, "reaped") + descendants(child, null);
    }
    return sum;
  };
  const forkServer = pids.forkServer !== null && after.has(pids.forkServer) ? pids.forkServer : null;
  const database = pids.database;
  return {
    gateway: delta(pids.gateway, "own"),
    interpreters: delta(pids.gateway, "reaped") + descendants(pids.gateway, forkServer),
    forkServer: forkServer === null ? 0 : delta(forkServer, "own"),
    forkedChildren: forkServer === null ? 0 : delta(forkServer, "reaped") + descendants(forkServer, null),
    database: database === null ? 0 : delta(database, "own") + delta(database, "reaped") + descendants(database, null),
  };
}

/** The CPU of the processes this process spawned and reaped (the bare interpreters) between two samples, ms. */
export function reapedBetween(before: CpuSample, after: CpuSample): number {
  return (after.get(process.pid)?.reaped ?? 0) - (before.get(process.pid)?.reaped ?? 0);
}

import fs from "node:fs";
import path from "node:path";

// What the soak run looks at from outside the gateway: /proc, cgroupfs, mountinfo, the data directory.

/** Resident memory (bytes) and open descriptors of a process. */
export function processFootprint(pid: number): { rss: number; fds: number } {
  const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) * 1024;
  return { rss, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

/** Pids of live processes whose real uid is in [first, first + count). */
export function processesOfUids(first: number, count: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${entry}/status`, "utf8"))?.[1]);
      if (uid >= first && uid < first + count) found.push(Number(entry));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return found;
}

/** The gateway's cgroup directory (v2, or the memory controller's under v1), where it makes its fngw-<pid>-<n> groups. */
export function cgroupDirOf(pid: number): string | null {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const v2 = lines.find((line) => line.startsWith("0::"));
  if (v2 && fs.existsSync("/sys/fs/cgroup/cgroup.controllers")) return path.join("/sys/fs/cgroup", v2.slice(3));
  const memory = lines.find((line) => line.split(":")[1]?.split(",").includes("memory"));
  return memory ? path.join("/sys/fs/cgroup/memory", memory.split(":")[2] ?? "/") : null;
}

/** Groups named after the gateway's pid still present below `dir`. */
export function leftoverCgroups(dir: string | null, pid: number): string[] {
  if (!dir || !fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((name) => name.startsWith(`fngw-${pid}-`));
}

/** Mount points at or below `dir`. */
export function mountsBelow(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)));
}

/** Entries of the system's temp directory, to compare before and after. */
export function tempEntries(tmp: string): Set<string> {
  return new Set(fs.readdirSync(tmp));
}

/** Bytes of the database and its WAL. */
export function databaseBytes(dbPath: string): number {
  return [dbPath, `${dbPath}-wal`].reduce((sum, file) => sum + (fs.existsSync(file) ? fs.statSync(file).size : 0), 0);
}

/** One check's outcome, printed as a line; any failure makes the run exit non-zero. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export function printChecks(checks: Check[]): boolean {
  for (const check of checks) console.log(`${check.ok ? "PASS" : "FAIL"}  ${check.name}: ${check.detail}`);
  return checks.every((check) => check.ok);
}

import fs from "node:fs";
import path from "node:path";
import type { SlotCgroup } from "./types.js";

// The few file operations cgroups are made of, each tolerant of a process or group that is already gone.

export const MiB = 1024 * 1024;

/** Removes the cgroups an earlier gateway process left behind, killing what still runs in them. */
export function removeStaleGroups(parent: string): void {
  for (const entry of fs.readdirSync(parent)) {
    const match = /^fngw-(\d+)-\d+$/.exec(entry);
    if (!match || isAlive(Number(match[1]))) continue;
    const group = path.join(parent, entry);
    for (const slot of listDirs(group)) killPids(readPids(path.join(slot, "cgroup.procs")));
    removeTree(group);
  }
}

export function removeGroups(groups: string[], slots: SlotCgroup[]): void {
  for (const slot of slots) slot.killAll();
  for (const group of groups) removeTree(group);
}

/** cgroup directories are removed with rmdir, children first; a busy one is left for the next start. */
function removeTree(dir: string): void {
  for (const child of listDirs(dir)) removeTree(child);
  try {
    fs.rmdirSync(dir);
  } catch {
    // still has a dying process; removeStaleGroups retries at the next start
  }
}

function listDirs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export function readPids(file: string): number[] {
  try {
    return read(file).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function counter(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}

export function read(file: string): string {
  return fs.readFileSync(file, "utf8");
}

export function tryWrite(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

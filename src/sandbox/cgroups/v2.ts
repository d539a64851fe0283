import fs from "node:fs";
import path from "node:path";
import type { Mount } from "../mountinfo.js";
import { counter, killPids, MiB, read, readPids, removeGroups, removeStaleGroups, tryWrite } from "./files.js";
import type { CgroupOptions, Cgroups, SlotCgroup } from "./types.js";

// cgroup v2: one group per gateway under the gateway's own cgroup, one child per slot.

export function setupV2(options: CgroupOptions, name: string, membership: Map<string, string>, mounts: Mount[]): Cgroups {
  const mount = mounts.find((m) => m.fstype === "cgroup2");
  const own = membership.get("");
  if (!mount || own === undefined) throw new Error("cgroup v2: not mounted");
  const ownDir = path.join(mount.point, own);
  const available = read(path.join(ownDir, "cgroup.controllers")).split(/\s+/);
  for (const controller of ["memory", "pids"]) {
    if (!available.includes(controller)) throw new Error(`cgroup v2: the ${controller} controller is not available in ${ownDir}`);
  }
  // "No internal processes": controllers can only be handed to children of a
  // cgroup that has no processes itself, so the gateway moves into a leaf first.
  // (The true root cgroup is exempt; it is the one without a cgroup.type file.)
  const procs = readPids(path.join(ownDir, "cgroup.procs"));
  if (procs.length > 0 && fs.existsSync(path.join(ownDir, "cgroup.type"))) {
    const leaf = path.join(ownDir, "fngw-gateway");
    fs.mkdirSync(leaf, { recursive: true });
    for (const pid of procs) tryWrite(path.join(leaf, "cgroup.procs"), String(pid));
  }
  fs.writeFileSync(path.join(ownDir, "cgroup.subtree_control"), "+memory +pids");
  const group = path.join(ownDir, name);
  removeStaleGroups(ownDir);
  fs.mkdirSync(group);
  fs.writeFileSync(path.join(group, "cgroup.subtree_control"), "+memory +pids");
  const slots = Array.from({ length: options.slots }, (_, k) => {
    const dir = path.join(group, `slot-${k}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "pids.max"), String(options.maxThreads));
    return new SlotV2(dir);
  });
  return {
    mode: "v2",
    notes: [],
    slot: (k) => slots[k] ?? null,
    close: () => removeGroups([group], slots),
  };
}

class SlotV2 implements SlotCgroup {
  private limit = Infinity; // a new cgroup starts unlimited
  readonly procsFiles: readonly string[];
  constructor(readonly dir: string) {
    this.procsFiles = [path.join(dir, "cgroup.procs")];
  }

  setMemoryLimit(megabytes: number): void {
    if (megabytes === this.limit) return;
    fs.writeFileSync(path.join(this.dir, "memory.max"), String(megabytes * MiB));
    tryWrite(path.join(this.dir, "memory.swap.max"), "0");
    this.limit = megabytes;
  }

  join(pid: number): void {
    for (const file of this.procsFiles) fs.writeFileSync(file, String(pid));
  }

  oomKills(): number {
    return counter(read(path.join(this.dir, "memory.events")), "oom_kill");
  }

  killAll(): void {
    if (!tryWrite(path.join(this.dir, "cgroup.kill"), "1")) killPids(readPids(path.join(this.dir, "cgroup.procs")));
  }
}

import fs from "node:fs";
import path from "node:path";
import type { Mount } from "../mountinfo.js";
import { counter, killPids, MiB, read, readPids, removeGroups, removeStaleGroups, tryWrite } from "./files.js";
import type { CgroupOptions, Cgroups, SlotCgroup } from "./types.js";

// cgroup v1: the memory and pids hierarchies, one group per gateway in each, one child per slot.

export function setupV1(options: CgroupOptions, name: string, membership: Map<string, string>, mounts: Mount[]): Cgroups {
  const hierarchy = (controller: string) => {
    const mount = mounts.find((m) => m.fstype === "cgroup" && m.superOptions.includes(controller));
    const own = membership.get(controller);
    if (!mount || own === undefined) throw new Error(`cgroup v1: the ${controller} hierarchy is not mounted`);
    return path.join(mount.point, own);
  };
  const memoryDir = hierarchy("memory");
  const pidsDir = hierarchy("pids");
  const groups = [path.join(memoryDir, name), path.join(pidsDir, name)];
  for (const parent of [memoryDir, pidsDir]) removeStaleGroups(parent);
  for (const group of groups) fs.mkdirSync(group);
  const slots = Array.from({ length: options.slots }, (_, k) => {
    const memory = path.join(groups[0]!, `slot-${k}`);
    const pids = path.join(groups[1]!, `slot-${k}`);
    fs.mkdirSync(memory);
    fs.mkdirSync(pids);
    fs.writeFileSync(path.join(pids, "pids.max"), String(options.maxThreads));
    tryWrite(path.join(memory, "memory.swappiness"), "0");
    return new SlotV1(memory, pids);
  });
  return {
    mode: "v1",
    notes: [],
    slot: (k) => slots[k] ?? null,
    close: () => removeGroups(groups, slots),
  };
}

class SlotV1 implements SlotCgroup {
  private limit = Infinity; // a new cgroup starts unlimited
  private readonly memsw: boolean;
  readonly procsFiles: readonly string[];
  constructor(
    readonly memoryDir: string,
    readonly pidsDir: string,
  ) {
    this.memsw = fs.existsSync(path.join(memoryDir, "memory.memsw.limit_in_bytes"));
    this.procsFiles = [path.join(memoryDir, "cgroup.procs"), path.join(pidsDir, "cgroup.procs")];
  }

  setMemoryLimit(megabytes: number): void {
    if (megabytes === this.limit) return;
    const bytes = String(megabytes * MiB);
    const memory = path.join(this.memoryDir, "memory.limit_in_bytes");
    const memsw = path.join(this.memoryDir, "memory.memsw.limit_in_bytes");
    // memsw must stay >= memory: raise memsw first when growing, lower memory first when shrinking.
    const order = megabytes > this.limit ? [memsw, memory] : [memory, memsw];
    for (const file of order) if (file === memory || this.memsw) fs.writeFileSync(file, bytes);
    this.limit = megabytes;
  }

  join(pid: number): void {
    for (const file of this.procsFiles) fs.writeFileSync(file, String(pid));
  }

  oomKills(): number {
    return counter(read(path.join(this.memoryDir, "memory.oom_control")), "oom_kill");
  }

  killAll(): void {
    killPids(readPids(path.join(this.memoryDir, "cgroup.procs")));
    killPids(readPids(path.join(this.pidsDir, "cgroup.procs")));
  }
}

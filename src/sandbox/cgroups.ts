import fs from "node:fs";
import path from "node:path";

// Per-slot memory and process-count limits. cgroup v2 when its memory and pids
// controllers can be delegated to us, else cgroup v1's memory and pids
// hierarchies, else none (the gateway still runs; the caller warns loudly and
// RLIMIT_NPROC in the lock-down remains the only thread limit).
//
// Each slot owns one cgroup for the gateway's lifetime; an invocation only
// rewrites its memory limit, joins it, and reads its OOM counter: a few small
// file writes, no mkdir on the hot path.

export type CgroupMode = "v2" | "v1" | "none";

export interface SlotCgroup {
  /** Sets the memory limit for the next invocation (no swap beyond it). */
  setMemoryLimit(megabytes: number): void;
  /** Moves a process (all its threads) into the slot's cgroup. */
  join(pid: number): void;
  /** How many processes the kernel's OOM killer has killed in this cgroup so far. */
  oomKills(): number;
  /** SIGKILLs whatever is still in the cgroup. */
  killAll(): void;
}

export interface Cgroups {
  readonly mode: CgroupMode;
  /** Why v2/v1 were not used, when they were not. */
  readonly notes: string[];
  slot(k: number): SlotCgroup | null;
  close(): void;
}

export interface CgroupOptions {
  slots: number;
  maxThreads: number;
  /** Defaults to the real /proc and mount table; tests can point at a prepared tree. */
  procSelfCgroup?: string;
  mountinfo?: string;
}

interface Mount {
  point: string;
  fstype: string;
  superOptions: string[];
}

const MiB = 1024 * 1024;
let instances = 0;

export function setupCgroups(options: CgroupOptions): Cgroups {
  // One group per sandbox, named after the process that owns it: fngw-<pid>-<n>.
  const group = `fngw-${process.pid}-${++instances}`;
  const membership = parseMembership(read(options.procSelfCgroup ?? "/proc/self/cgroup"));
  const mounts = parseMountinfo(read(options.mountinfo ?? "/proc/self/mountinfo"));
  const notes: string[] = [];
  for (const attempt of [setupV2, setupV1]) {
    try {
      return attempt(options, group, membership, mounts);
    } catch (error) {
      notes.push((error as Error).message);
    }
  }
  return { mode: "none", notes, slot: () => null, close: () => {} };
}

function setupV2(options: CgroupOptions, name: string, membership: Map<string, string>, mounts: Mount[]): Cgroups {
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

function setupV1(options: CgroupOptions, name: string, membership: Map<string, string>, mounts: Mount[]): Cgroups {
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

class SlotV2 implements SlotCgroup {
  private limit = Infinity; // a new cgroup starts unlimited
  constructor(readonly dir: string) {}

  setMemoryLimit(megabytes: number): void {
    if (megabytes === this.limit) return;
    fs.writeFileSync(path.join(this.dir, "memory.max"), String(megabytes * MiB));
    tryWrite(path.join(this.dir, "memory.swap.max"), "0");
    this.limit = megabytes;
  }

  join(pid: number): void {
    fs.writeFileSync(path.join(this.dir, "cgroup.procs"), String(pid));
  }

  oomKills(): number {
    return counter(read(path.join(this.dir, "memory.events")), "oom_kill");
  }

  killAll(): void {
    if (!tryWrite(path.join(this.dir, "cgroup.kill"), "1")) killPids(readPids(path.join(this.dir, "cgroup.procs")));
  }
}

class SlotV1 implements SlotCgroup {
  private limit = Infinity; // a new cgroup starts unlimited
  private readonly memsw: boolean;
  constructor(
    readonly memoryDir: string,
    readonly pidsDir: string,
  ) {
    this.memsw = fs.existsSync(path.join(memoryDir, "memory.memsw.limit_in_bytes"));
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
    fs.writeFileSync(path.join(this.memoryDir, "cgroup.procs"), String(pid));
    fs.writeFileSync(path.join(this.pidsDir, "cgroup.procs"), String(pid));
  }

  oomKills(): number {
    return counter(read(path.join(this.memoryDir, "memory.oom_control")), "oom_kill");
  }

  killAll(): void {
    killPids(readPids(path.join(this.memoryDir, "cgroup.procs")));
    killPids(readPids(path.join(this.pidsDir, "cgroup.procs")));
  }
}

/** Removes the cgroups an earlier gateway process left behind, killing what still runs in them. */
function removeStaleGroups(parent: string): void {
  for (const entry of fs.readdirSync(parent)) {
    const match = /^fngw-(\d+)-\d+$/.exec(entry);
    if (!match || isAlive(Number(match[1]))) continue;
    const group = path.join(parent, entry);
    for (const slot of listDirs(group)) killPids(readPids(path.join(slot, "cgroup.procs")));
    removeTree(group);
  }
}

function removeGroups(groups: string[], slots: SlotCgroup[]): void {
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

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

function readPids(file: string): number[] {
  try {
    return read(file)
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function counter(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}

function read(file: string): string {
  return fs.readFileSync(file, "utf8");
}

function tryWrite(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

/** `/proc/self/cgroup`: "hierarchy-id:controller,list:/path"; v2's line has an empty controller list. */
function parseMembership(text: string): Map<string, string> {
  const membership = new Map<string, string>();
  for (const line of text.split("\n").filter(Boolean)) {
    const [, controllers = "", cgroupPath = "/"] = line.split(":");
    for (const controller of controllers.split(",")) membership.set(controller, cgroupPath);
  }
  return membership;
}

/** `/proc/self/mountinfo`: mount point is field 5; after " - " come fstype, source and super options. */
function parseMountinfo(text: string): Mount[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [before, after = ""] = line.split(" - ");
      const [fstype = "", , superOptions = ""] = after.split(" ");
      return { point: before!.split(" ")[4] ?? "", fstype, superOptions: superOptions.split(",") };
    });
}

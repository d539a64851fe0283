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
  /** The cgroup.procs files `join` writes the pid to (one per hierarchy). */
  readonly procsFiles: readonly string[];
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

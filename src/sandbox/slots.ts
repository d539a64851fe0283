import fs from "node:fs";
import { SaturatedError } from "../core/runner.js";

/**
 * The uid pool. A slot is one unprivileged uid/gid, one jail root and one cgroup;
 * an invocation holds a slot from spawn to exit, so two sandboxes never share a
 * uid, a /tmp or a cgroup. Past the free slots, callers wait in a FIFO queue (its
 * length is bounded by the gateway's admission, `http/admission.ts`); a wait that
 * outlasts its bound gets a SaturatedError (429).
 */
export interface Slot {
  index: number;
  uid: number;
  gid: number;
}

interface Waiter {
  resolve(slot: Slot): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export interface SlotPoolOptions {
  size: number;
  uidBase: number;
  queueTimeoutMs: number;
}

export class SlotPool {
  readonly slots: readonly Slot[];
  private readonly free: Slot[];
  private readonly waiters: Waiter[] = [];

  constructor(private readonly options: SlotPoolOptions) {
    this.slots = Array.from({ length: options.size }, (_, index) => ({
      index,
      uid: options.uidBase + index,
      gid: options.uidBase + index,
    }));
    this.free = [...this.slots];
  }

  get busy(): number {
    return this.slots.length - this.free.length;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /**
   * The free slot idle the longest: a slot's next Python child is forked and moved into the slot's
   * cgroup after its last invocation, so the least recently used slot is the likeliest to have it ready.
   */
  acquire(): Promise<Slot> {
    const slot = this.free.shift();
    if (slot) return Promise.resolve(slot);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(this.saturated());
        }, this.options.queueTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  release(slot: Slot): void {
    const next = this.waiters.shift();
    if (next) {
      clearTimeout(next.timer);
      next.resolve(slot);
    } else {
      this.free.push(slot);
    }
  }

  /** Refuses every waiter (at shutdown). */
  rejectWaiters(error: Error): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  private saturated(): SaturatedError {
    // A rough hint: one queue's worth of invocations at about a second each, spread over the slots.
    return new SaturatedError(Math.max(1, Math.ceil((this.waiters.length + 1) / this.slots.length)));
  }
}

/**
 * SIGKILLs every process that runs as one of the pool's uids: a slot's uid must be
 * free before the slot is used. Nothing of a gateway that died should survive it
 * (the lock-down sets PDEATHSIG and the cgroups are swept too); this also covers a
 * host without cgroups, where RLIMIT_NPROC counts a uid's processes.
 */
export function killStrayProcesses(slots: readonly Pick<Slot, "uid">[]): number {
  const uids = new Set(slots.map((slot) => slot.uid));
  let killed = 0;
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${entry}/status`, "utf8"))?.[1]);
      if (!uids.has(uid)) continue;
      process.kill(Number(entry), "SIGKILL");
      killed++;
    } catch {
      // gone while we looked
    }
  }
  return killed;
}

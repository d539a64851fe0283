// Naming refused calls: the gateway's side of the seccomp listener (native/README.md, "Naming
// refused calls"). A sandboxed process's filter hands every call it refuses to a listener
// (SECCOMP_RET_USER_NOTIF); the library sends that listener to the gateway on a channel of its own
// (fd 5) before the lock-down returns, and keeps no copy. The gateway receives each notification
// from the kernel (call number, architecture, pid: nothing the process can write), records the
// call's name, and answers as the policy says: EPERM for the calls that fail softly, a kill of the
// process (by pidfd) for the others. A process that loops on refused calls is answered at a
// bounded rate, so it costs the gateway little: its thread waits for its answer meanwhile.
//
// One epoll set holds every running sandbox's listener; a libuv pool thread waits on it (a koffi
// async call: Node has no way to poll an arbitrary descriptor), and the notifications are handled
// on the main thread, where every descriptor here is opened and closed.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import koffi from "koffi";
import type { DeniedSyscall } from "../core/runner.js";
import { closeFd, receiveFd, seqpacketPair } from "./fdpass.js";

export const REFUSALS_PATH = fileURLToPath(new URL("../../native/build/refusals.json", import.meta.url));

const libc = koffi.load("libc.so.6");
const epollCreate1 = libc.func("int epoll_create1(int flags)");
const epollCtl = libc.func("int epoll_ctl(int epfd, int op, int fd, void *event)");
const epollWait = libc.func("int epoll_wait(int epfd, _Out_ uint8_t *events, int maxevents, int timeout)");
const eventfd = libc.func("int eventfd(unsigned int initval, int flags)");
const readFd = libc.func("long read(int fd, _Out_ uint8_t *buf, size_t count)");
const writeFd = libc.func("long write(int fd, const uint8_t *buf, size_t count)");
const pollFn = libc.func("int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)");
const ioctlFn = libc.func("int ioctl(int fd, unsigned long request, ...)");
const syscallFn = libc.func("long syscall(long number, ...)");

const CLOEXEC = 0o2000000; // EPOLL_CLOEXEC, EFD_CLOEXEC
const EFD_NONBLOCK = 0o4000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x1;
const EPOLLONESHOT = 1 << 30;
const POLLIN = 0x1;
const POLLHUP = 0x10;
// struct epoll_event is packed on x86_64 (12 bytes), naturally aligned on aarch64 (16 bytes).
const EVENT_SIZE = process.arch === "x64" ? 12 : 16;
const EVENT_DATA = process.arch === "x64" ? 4 : 8;
const MAX_EVENTS = 16;
// include/uapi/linux/seccomp.h; the same on x86_64 and aarch64.
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3;
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4;
const SECCOMP_IOCTL_NOTIF_RECV = 0xc0502100;
const SECCOMP_IOCTL_NOTIF_SEND = 0xc0182101;
const SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102;
const NOTIF_SIZE = 80; // struct seccomp_notif: id, pid, flags, then seccomp_data (nr, arch, ...)
const RESPONSE_SIZE = 24; // struct seccomp_notif_resp: id, val, error, flags
const EPERM = 1;
const EFAULT = 14;
const SIGKILL = 9;
const SYS =
  process.arch === "x64" ? { seccomp: 317, pidfdOpen: 434, pidfdSendSignal: 424 } : { seccomp: 277, pidfdOpen: 434, pidfdSendSignal: 424 };

/** The descriptor a sandboxed process's library sends its listener on (the lock line names it). */
export const LISTENER_CHANNEL_FD = 5;

/**
 * Notifications answered at once per process; past them, at most REFILL_PER_SECOND. A function
 * that loops on a refused call then waits in the kernel for its answers, and the gateway spends
 * a few microseconds on each of those few.
 */
export const NOTIFICATION_BURST = 100;
export const REFILL_PER_SECOND = 100;

/** How a refused call is answered: the policy's EPERM, or the end of the process. */
interface Refusal {
  name: string;
  answer: "eperm" | "kill";
}

/** native/build/refusals.json (written with the library): per audit arch, per call number. */
function loadRefusals(file = REFUSALS_PATH): Map<number, Map<number, Refusal>> {
  const raw = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, Record<string, Refusal>>;
  return new Map(
    Object.entries(raw).map(([arch, calls]) => [
      Number(arch),
      new Map(Object.entries(calls).map(([nr, refusal]) => [Number(nr), refusal])),
    ]),
  );
}

/**
 * Whether this kernel can hand a multi-threaded process's listener over (TSYNC with a listener
 * needs SECCOMP_FILTER_FLAG_TSYNC_ESRCH, Linux 5.7): asked with a filter pointer of NULL, which
 * the kernel refuses with EFAULT once it has accepted the flags (EINVAL when it does not know them).
 */
export function listenerSupported(): boolean {
  const flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  const result = Number(syscallFn(SYS.seccomp, "unsigned int", SECCOMP_SET_MODE_FILTER, "unsigned int", flags, "void *", null));
  return result < 0 && koffi.errno() === EFAULT;
}

/** What the listener recorded for one process (a warm instance: since its invocation began). */
export interface DeniedRecord {
  /** Each refused call by name, in the order first seen, with how many times it was made. */
  calls: DeniedSyscall[];
  /** The refused call the process was killed for, if any (the first killing one). */
  killedFor: string | null;
}

/** One process's listener as the gateway watches it. */
class Watch {
  readonly calls = new Map<string, number>();
  killedFor: string | null = null;
  tokens = NOTIFICATION_BURST;
  refilledAt = performance.now();
  closed = false;
  timer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: number,
    readonly fd: number,
    readonly pid: number,
  ) {}

  record(): DeniedRecord {
    return { calls: [...this.calls].map(([name, count]) => ({ name, count })), killedFor: this.killedFor };
  }

  refill(now: number): void {
    this.tokens = Math.min(NOTIFICATION_BURST, this.tokens + ((now - this.refilledAt) * REFILL_PER_SECOND) / 1000);
    this.refilledAt = now;
  }
}

export class SeccompListener {
  private readonly epoll: number;
  private readonly wake: number;
  private readonly watches = new Map<number, Watch>();
  private readonly events = Buffer.alloc(EVENT_SIZE * MAX_EVENTS);
  private readonly notif = Buffer.alloc(NOTIF_SIZE);
  private readonly response = Buffer.alloc(RESPONSE_SIZE);
  private readonly pollfd = Buffer.alloc(8);
  private nextId = 1;
  private waiting = false;
  private closed = false;

  constructor(private readonly refusals = loadRefusals()) {
    this.epoll = epollCreate1(CLOEXEC);
    this.wake = eventfd(0, CLOEXEC | EFD_NONBLOCK);
    if (this.epoll < 0 || this.wake < 0) throw new Error(`the seccomp listener's epoll set could not be made (errno ${koffi.errno()})`);
    this.control(EPOLL_CTL_ADD, this.wake, EPOLLIN, 0);
  }

  /** A channel for one process to send its listener on; see ListenerLink. */
  link(kill: () => void): ListenerLink {
    return new ListenerLink(this, kill);
  }

  /** Starts answering the notifications of `listener`, a process's (`pid`); closed by `unwatch`. */
  watch(listener: number, pid: number): Watch {
    const watch = new Watch(this.nextId++, listener, pid);
    this.watches.set(watch.id, watch);
    this.control(EPOLL_CTL_ADD, listener, EPOLLIN | EPOLLONESHOT, watch.id);
    this.wait();
    return watch;
  }

  /** Stops watching and closes the listener (the kernel answers what still waits with ENOSYS). */
  unwatch(watch: Watch): void {
    if (watch.closed) return;
    watch.closed = true;
    if (watch.timer) clearTimeout(watch.timer);
    this.watches.delete(watch.id);
    closeFd(watch.fd); // also leaves the epoll set
  }

  /** Wakes the pool thread's wait for the last time and closes the set. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const watch of [...this.watches.values()]) this.unwatch(watch);
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    writeFd(this.wake, one, 8);
    if (!this.waiting) this.release();
  }

  private release(): void {
    closeFd(this.epoll);
    closeFd(this.wake);
  }

  private control(op: number, fd: number, events: number, id: number): void {
    const event = Buffer.alloc(EVENT_SIZE);
    event.writeUInt32LE(events, 0);
    event.writeBigUInt64LE(BigInt(id), EVENT_DATA);
    if (epollCtl(this.epoll, op, fd, event) !== 0) throw new Error(`epoll_ctl(${op}, fd ${fd}) failed (errno ${koffi.errno()})`);
  }

  private wait(): void {
    if (this.waiting || this.closed) return;
    this.waiting = true;
    epollWait.async(this.epoll, this.events, MAX_EVENTS, -1, (error: unknown, count: number) => {
      this.waiting = false;
      if (this.closed) return this.release();
      for (let i = 0; i < (error ? 0 : count); i++) {
        const id = Number(this.events.readBigUInt64LE(i * EVENT_SIZE + EVENT_DATA));
        if (id === 0) readFd(this.wake, Buffer.alloc(8), 8);
        else {
          const watch = this.watches.get(id);
          if (watch) this.serve(watch);
        }
      }
      this.wait();
    });
  }

  /** Answers what waits on one listener, within its budget, then re-arms it (later, if spent). */
  private serve(watch: Watch): void {
    watch.refill(performance.now());
    for (;;) {
      const ready = this.ready(watch.fd);
      if (ready === "gone") return; // the process has exited: nothing will come, and it is unwatched at its end
      if (ready === "none" || watch.tokens < 1) break;
      // Its caller died meanwhile (ENOENT): what else waits comes with the next wake-up.
      if (ioctlFn(watch.fd, SECCOMP_IOCTL_NOTIF_RECV, "void *", this.notif.fill(0)) !== 0) break;
      watch.tokens--;
      const id = this.notif.readBigUInt64LE(0);
      const nr = this.notif.readInt32LE(16);
      const refusal = this.refusals.get(this.notif.readUInt32LE(20))?.get(nr) ?? { name: `syscall ${nr}`, answer: "kill" };
      watch.calls.set(refusal.name, (watch.calls.get(refusal.name) ?? 0) + 1);
      if (refusal.answer === "eperm") {
        this.answer(watch.fd, id, -EPERM);
        continue;
      }
      watch.killedFor ??= refusal.name;
      this.kill(watch, id);
      return;
    }
    if (watch.tokens >= 1) this.control(EPOLL_CTL_MOD, watch.fd, EPOLLIN | EPOLLONESHOT, watch.id);
    else {
      const delay = Math.ceil(((1 - watch.tokens) * 1000) / REFILL_PER_SECOND);
      watch.timer = setTimeout(() => {
        watch.timer = null;
        if (!watch.closed) this.control(EPOLL_CTL_MOD, watch.fd, EPOLLIN | EPOLLONESHOT, watch.id);
      }, delay);
    }
  }

  private ready(fd: number): "call" | "none" | "gone" {
    this.pollfd.writeInt32LE(fd, 0);
    this.pollfd.writeInt16LE(POLLIN, 4);
    this.pollfd.writeInt16LE(0, 6);
    if (pollFn(this.pollfd, 1, 0) !== 1) return "none";
    const revents = this.pollfd.readInt16LE(6);
    if (revents & POLLIN) return "call";
    return revents & POLLHUP ? "gone" : "none";
  }

  private answer(fd: number, id: bigint, error: number): void {
    this.response.writeBigUInt64LE(id, 0);
    this.response.writeBigInt64LE(0n, 8);
    this.response.writeInt32LE(error, 16);
    this.response.writeUInt32LE(0, 20);
    ioctlFn(fd, SECCOMP_IOCTL_NOTIF_SEND, "void *", this.response); // ENOENT: its caller died meanwhile
  }

  /**
   * Kills the process by pidfd. The pidfd is opened now and the notification checked still valid
   * after: its caller, a thread of that process, is then still alive, so the pid cannot have been
   * reused by another process.
   */
  private kill(watch: Watch, id: bigint): void {
    const pidfd = Number(syscallFn(SYS.pidfdOpen, "int", watch.pid, "unsigned int", 0));
    if (pidfd < 0) return;
    const notification = Buffer.alloc(8);
    notification.writeBigUInt64LE(id);
    if (ioctlFn(watch.fd, SECCOMP_IOCTL_NOTIF_ID_VALID, "void *", notification) === 0)
      syscallFn(SYS.pidfdSendSignal, "int", pidfd, "int", SIGKILL, "void *", null, "unsigned int", 0);
    closeFd(pidfd);
  }
}

/**
 * One sandboxed process's link to the listener: the channel its library sends the listener on
 * (the child's end goes to the process as fd 5, then is closed here), and, once the process has
 * locked down, the watch of its listener. The listener is on the channel before the prescript
 * writes its first frame (`locked`) on the result channel, so the link takes it at the first
 * bytes of that channel; a process that locked down without handing one over is killed.
 */
export class ListenerLink {
  readonly childEnd: number;
  private readonly gatewayEnd: number;
  private head: Buffer = Buffer.alloc(0);
  private watch: Watch | null = null;
  /** The first frame has been seen (and the channel closed). */
  private settled = false;
  /** Set when the process confirmed its lock-down but handed no listener over. */
  failure: string | null = null;

  constructor(
    private readonly listener: SeccompListener,
    private readonly kill: () => void,
  ) {
    [this.gatewayEnd, this.childEnd] = seqpacketPair();
  }

  /** The process holds its copy of the child's end now (spawned with it, or sent it): ours goes. */
  childEndSent(): void {
    closeFd(this.childEnd);
  }

  /** Fed the result channel's bytes as they come; acts once, at its first frame. */
  onResult(chunk: Buffer, pid: number | undefined): void {
    if (this.settled) return;
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    const compared = Math.min(this.head.length, LOCKED_FRAME.length);
    const locked = this.head.subarray(0, compared).equals(LOCKED_FRAME.subarray(0, compared));
    if (locked && this.head.length < LOCKED_FRAME.length) return; // the rest of the frame is coming
    this.settled = true;
    this.head = Buffer.alloc(0);
    const fd = locked ? receiveFd(this.gatewayEnd) : null;
    closeFd(this.gatewayEnd);
    // Any other first frame: the lock-down failed or was not confirmed, and the run is classified so.
    if (!locked) return;
    if (fd === null || pid === undefined) {
      if (fd !== null) closeFd(fd);
      this.failure = "the sandbox confirmed its lock-down but handed no seccomp listener over";
      this.kill();
      return;
    }
    this.watch = this.listener.watch(fd, pid);
  }

  /** A warm instance's next invocation: what is recorded from now on is its own. */
  begin(): void {
    if (this.watch === null) return;
    this.watch.calls.clear();
    this.watch.killedFor = null;
  }

  /** What was recorded since the process locked down (or its invocation began). */
  record(): DeniedRecord {
    return this.watch?.record() ?? { calls: [], killedFor: null };
  }

  /** The process is gone: the listener and the channel are closed. */
  close(): void {
    if (this.watch) this.listener.unwatch(this.watch);
    if (!this.settled) closeFd(this.gatewayEnd);
    this.settled = true;
  }
}

const LOCKED_FRAME = Buffer.from('{"kind":"locked"}\n');

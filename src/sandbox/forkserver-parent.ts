import { type ChildProcess, spawn } from "node:child_process";
import { closeFd, sendFds, seqpacketPair } from "./fdpass.js";
import { type InterpreterSettings, interpreterCommand, SPAWN_ENV } from "./process.js";

// The fork-server's parent process as the gateway sees it (prescripts/forkserver.py): started
// with the rendered source on stdin, sent fork requests with the child's channels attached on
// a sequenced-packet socket (fd 3), and read for its reports on stdout.

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** One fork as the parent reports it; `null` means the parent was lost before it answered. */
export interface ForkRecord {
  pid: Deferred<number | null>;
  status: Deferred<number | null>;
  /** Set before `pid` resolves: the parent moved the child into the cgroup files sent with the fork. */
  joined: boolean;
}

/** One parent interpreter and the forks it has been asked for. */
export class Parent {
  readonly child: ChildProcess;
  readonly ready = deferred<boolean>();
  private readonly control: number;
  private readonly byId = new Map<string, ForkRecord>();
  private readonly byPid = new Map<number, ForkRecord>();
  private nextId = 0;
  private pending = "";
  alive = true;
  /** Whether it reached its serving loop (a parent that dies before that is not restarted at once). */
  served = false;
  /** Takes no more forks; ends once its children have (killing it earlier would kill them: PDEATHSIG). */
  retired = false;

  constructor(settings: InterpreterSettings, source: string, onExit: (parent: Parent) => void) {
    const [mine, theirs] = seqpacketPair();
    this.control = mine;
    this.child = spawn(...interpreterCommand("python", settings), {
      cwd: "/",
      env: SPAWN_ENV,
      detached: true,
      stdio: ["pipe", "pipe", "inherit", theirs],
    });
    closeFd(theirs);
    this.child.on("error", () => this.lost());
    this.child.on("close", () => {
      this.lost();
      onExit(this);
    });
    for (const stream of [this.child.stdin, this.child.stdout]) stream?.on("error", () => {});
    this.child.stdout!.setEncoding("utf8").on("data", (text: string) => this.onReport(text));
    this.child.stdin!.end(source);
  }

  /**
   * Asks for a child with these channels (stdout, stderr, request, result and, with a seccomp
   * listener, the listener's channel: fds 1 to 5 in the child), to be moved into the cgroups whose cgroup.procs files
   * `cgroupProcs` are (open for writing) before its pid is reported. The caller closes its copies.
   */
  fork(channels: number[], cgroupProcs: number[] = []): ForkRecord | null {
    const id = String(++this.nextId);
    const record: ForkRecord = { pid: deferred(), status: deferred(), joined: false };
    try {
      sendFds(this.control, Buffer.from(`fork ${id} ${channels.length}`), [...channels, ...cgroupProcs]);
    } catch {
      this.kill(); // full or gone: either way this parent is done
      return null;
    }
    this.byId.set(id, record);
    return record;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  kill(): void {
    if (!this.alive || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  private onReport(text: string): void {
    const lines = (this.pending + text).split("\n");
    this.pending = lines.pop()!;
    for (const line of lines) {
      const [kind, a = "", b = "", c = ""] = line.split(" ");
      if (kind === "ready") {
        this.served = true;
        this.ready.resolve(true);
      } else if (kind === "pid") {
        const record = this.byId.get(a);
        this.byId.delete(a);
        if (!record) continue;
        record.joined = c === "1";
        record.pid.resolve(Number(b));
        this.byPid.set(Number(b), record);
      } else if (kind === "exit") {
        this.byPid.get(Number(a))?.status.resolve(Number(b));
        this.byPid.delete(Number(a));
        if (this.retired && this.byId.size === 0 && this.byPid.size === 0) this.kill();
      }
    }
  }

  retire(): void {
    this.retired = true;
    if (this.byId.size === 0 && this.byPid.size === 0) this.kill();
  }

  /** The parent is gone: every fork it still owed an answer gets `null`. */
  private lost(): void {
    if (!this.alive) return;
    this.alive = false;
    closeFd(this.control);
    this.ready.resolve(false);
    for (const record of [...this.byId.values(), ...this.byPid.values()]) {
      record.pid.resolve(null);
      record.status.resolve(null);
    }
    this.byId.clear();
    this.byPid.clear();
  }
}

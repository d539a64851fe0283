import fs from "node:fs";
import path from "node:path";
import koffi from "koffi";

// What one gateway holds on its machine, so that a second one started beside it fails at once
// with a message that names the holder: its DATA_DIR (two gateways would share the database and
// the jail, and the second would unmount the first one's jail on exit) and its uids (the sandbox
// slots' and the package installers': a gateway kills strays of its own uids at start and its
// firewall rules match them, so two sharing uids would kill and expose each other's functions).
// The locks are the kernel's (flock), so they go with the process however it ends; each file says
// who holds it.

const libc = koffi.load("libc.so.6");
const flock = libc.func("int flock(int fd, int operation)");
const LOCK_EX = 2;
const LOCK_NB = 4;

/** Where the uid locks live: tmpfs, so nothing outlives a reboot. */
const UID_LOCK_DIR = "/run/fngw/uids";

export interface HostLock {
  release(): void;
}

export class HostLockBusyError extends Error {
  override name = "HostLockBusyError";
  constructor(
    message: string,
    /** What the holder wrote into the lock file (pid, data dir, host, port, started_at), when it parses. */
    readonly holder: unknown,
  ) {
    super(message);
  }
}

/** Takes an exclusive lock on `file` and writes `holder` into it; null when another process holds it. */
function lockFile(file: string, holder: Record<string, unknown>): { fd: number } | { busy: string } {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const current = fs.readFileSync(file, "utf8").trim();
    fs.closeSync(fd);
    return { busy: current };
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `${JSON.stringify({ ...holder, pid: process.pid, started_at: new Date().toISOString() })}\n`, 0);
  return { fd };
}

function releaser(fds: number[]): HostLock {
  return {
    release() {
      for (const fd of fds) {
        try {
          fs.ftruncateSync(fd, 0);
          fs.closeSync(fd); // closing the last descriptor drops the lock
        } catch {
          // already released
        }
      }
    },
  };
}

/** One gateway per DATA_DIR; throws HostLockBusyError naming the holder. */
export function lockDataDir(dataDir: string, holder: Record<string, unknown>): HostLock {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const taken = lockFile(path.join(dataDir, "gateway.lock"), holder);
  if ("busy" in taken) {
    throw new HostLockBusyError(
      `DATA_DIR ${dataDir} is in use by another gateway (${taken.busy || "holder unknown"}); stop it or choose another DATA_DIR`,
      parseHolder(taken.busy),
    );
  }
  return releaser([taken.fd]);
}

/**
 * One gateway per uid on this machine: a lock file per uid in /run/fngw/uids. `uids` are the
 * sandbox slots' and the installers'; throws HostLockBusyError naming the gateway that holds
 * the first one already taken (and takes none).
 */
export function lockUids(uids: readonly number[], holder: Record<string, unknown>, dir = UID_LOCK_DIR): HostLock {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fds: number[] = [];
  for (const uid of uids) {
    const taken = lockFile(path.join(dir, String(uid)), holder);
    if ("busy" in taken) {
      releaser(fds).release();
      const other = parseHolder(taken.busy) as { data_dir?: string; pid?: number } | null;
      throw new HostLockBusyError(
        `uid ${uid} is used by another gateway on this machine (pid ${other?.pid ?? "?"}, DATA_DIR ${other?.data_dir ?? "?"}): ` +
          "give each gateway its own SANDBOX_UID_BASE (MAX_CONCURRENCY uids from it) and PACKAGES_UID, with no overlap",
        other,
      );
    }
    fds.push(taken.fd);
  }
  return releaser(fds);
}

function parseHolder(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

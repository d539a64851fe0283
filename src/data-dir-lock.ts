import fs from "node:fs";
import path from "node:path";
import koffi from "koffi";

// One gateway per DATA_DIR: two would share the database and the jail, and the second would
// mark the first one's invocations interrupted and unmount its jail on exit. The lock is the
// kernel's (flock), so it goes with the process however that ends; the file says who holds it.

const libc = koffi.load("libc.so.6");
const flock = libc.func("int flock(int fd, int operation)");
const LOCK_EX = 2;
const LOCK_NB = 4;

export interface DataDirLock {
  release(): void;
}

export class DataDirBusyError extends Error {
  override name = "DataDirBusyError";
  constructor(
    message: string,
    /** What the holder wrote into the lock file (pid, host, port, started_at), when it parses. */
    readonly holder: unknown,
  ) {
    super(message);
  }
}

/** Takes the lock or throws DataDirBusyError naming the holder. `holder` is written into the lock file for the next one to read. */
export function lockDataDir(dataDir: string, holder: Record<string, unknown>): DataDirLock {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, "gateway.lock");
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const current = fs.readFileSync(file, "utf8").trim();
    fs.closeSync(fd);
    throw new DataDirBusyError(
      `DATA_DIR ${dataDir} is in use by another gateway (${current || "holder unknown"}); stop it or choose another DATA_DIR`,
      parseHolder(current),
    );
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `${JSON.stringify({ ...holder, pid: process.pid, started_at: new Date().toISOString() })}\n`, 0);
  return {
    release() {
      try {
        fs.ftruncateSync(fd, 0);
        fs.closeSync(fd); // closing the last descriptor drops the lock
      } catch {
        // already released
      }
    },
  };
}

function parseHolder(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

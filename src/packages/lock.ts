import type { InterpreterKind } from "../core/runtimes.js";

// A lock: what an install resolved, as the installers write it — pip's `name==version` lines
// (`pip list --format=freeze`) or npm's package-lock.json. The first node to install a list stores
// its lock; every other node installs exactly that lock, and checks that it got it.

/** The lock's versions by package name (npm's nested copies as `a/node_modules/b`); null when it cannot be read. */
export function parseLock(runtime: InterpreterKind, text: string | null): Record<string, string> | null {
  if (text === null) return null;
  const versions: Record<string, string> = {};
  if (runtime === "python") {
    for (const line of text.split("\n")) {
      const match = /^([^=\s]+)==(\S+)$/.exec(line.trim());
      if (match) versions[match[1]!] = match[2]!;
    }
    return versions;
  }
  try {
    const lock = JSON.parse(text) as { packages?: Record<string, { version?: string }> };
    for (const [where, entry] of Object.entries(lock.packages ?? {})) {
      // "node_modules/a" and, for a nested copy, "node_modules/a/node_modules/b" (shown as "a/node_modules/b").
      if (where.startsWith("node_modules/") && entry.version) versions[where.slice("node_modules/".length)] = entry.version;
    }
  } catch {
    return null;
  }
  return versions;
}

/** Whether two locks hold the same packages at the same versions. */
export function sameLock(runtime: InterpreterKind, a: string | null, b: string | null): boolean {
  const left = parseLock(runtime, a);
  const right = parseLock(runtime, b);
  if (left === null || right === null) return false;
  const keys = Object.keys(left);
  return keys.length === Object.keys(right).length && keys.every((name) => right[name] === left[name]);
}

/** A distribution name and an exact version, as pip freeze writes them; nothing pip could read as an option or a reference. */
const PIN = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9](?:[A-Za-z0-9.+!_-]*[A-Za-z0-9])?$/;

/** The `name==version` requirements of a pip lock, to install with --no-deps; throws LockError for anything else in it. */
export function pipPins(text: string): string[] {
  const pins = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
  for (const pin of pins)
    if (!PIN.test(pin)) throw new LockError(`the stored lock has a line that is no exact pin: ${JSON.stringify(pin.slice(0, 200))}`);
  if (pins.length === 0) throw new LockError("the stored lock is empty");
  return pins;
}

/**
 * Checks a package-lock.json before `npm ci` installs it: every package has an exact version and
 * an integrity hash (npm refuses a tarball that does not match it), and comes from a registry:
 * no links, git, files or directories (which the gateway's own installs never produce). A
 * `resolved` URL may be left out (npm's omit-lockfile-registry-resolved: the configured registry
 * then serves it). Throws LockError.
 */
export function checkNpmLock(text: string): void {
  let lock: {
    lockfileVersion?: unknown;
    packages?: Record<string, { version?: unknown; resolved?: unknown; integrity?: unknown; link?: unknown }>;
  };
  try {
    lock = JSON.parse(text);
  } catch {
    throw new LockError("the stored lock is not JSON");
  }
  if (typeof lock.lockfileVersion !== "number" || lock.lockfileVersion < 2 || typeof lock.packages !== "object" || lock.packages === null)
    throw new LockError("the stored lock is no package-lock.json of version 2 or later");
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === "") continue;
    const ok =
      where.startsWith("node_modules/") &&
      entry.link === undefined &&
      typeof entry.version === "string" &&
      typeof entry.integrity === "string" &&
      (entry.resolved === undefined || (typeof entry.resolved === "string" && /^https?:\/\/[^/\s]+\/\S+\.tgz$/.test(entry.resolved)));
    if (!ok)
      throw new LockError(
        `the stored lock's entry ${JSON.stringify(where.slice(0, 200))} is not a registry package with an integrity hash`,
      );
  }
}

/** A stored lock the installers refuse to install. */
export class LockError extends Error {}

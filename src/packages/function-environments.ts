import { INTERPRETER_OF, type InterpreterKind, type Runtime } from "../core/runtimes.js";
import type { FunctionStore } from "../db/functions.js";
import type { EnvironmentRecord, EnvironmentState, PackageStore } from "./environments.js";
import { normalisePackages } from "./spec.js";

// The gateway's side of package environments: which environment a version runs with, when a
// version waiting for its packages becomes current, what the API shows, and the clean-up.

/** An environment as the API shows it. */
export interface EnvironmentJson {
  key: string;
  state: EnvironmentState;
  error: string | null;
  /** The installer's output (its last 64 KiB). */
  output: string;
  /** The exact versions resolved, by package name; null until ready. */
  lock: Record<string, string> | null;
  size_bytes: number;
}

/** The part of the package store the gateway uses (PackageStore). */
export type EnvironmentStore = Pick<
  PackageStore,
  "request" | "get" | "treeDir" | "lock" | "settledRecord" | "markReferenced" | "sweep" | "usageBytes" | "environmentCount"
>;

export class FunctionEnvironments {
  private readonly watched = new Set<string>();

  constructor(
    private readonly store: EnvironmentStore,
    private readonly functions: FunctionStore,
    private readonly budgetBytes: number,
    private readonly log: (line: string) => void = console.warn,
  ) {}

  /**
   * The environment a version with these packages runs with, requested (queued) when new; null
   * without packages. Throws PackageSpecError (400) and PackagesFullError (507).
   */
  environmentFor(runtime: Runtime, packages: readonly string[]): EnvironmentRecord | null {
    const normalised = normalisePackages(runtime, packages);
    // TypeScript functions share Node's environments: the same registry, installer and interpreter.
    return normalised.length === 0 ? null : this.store.request(INTERPRETER_OF[runtime], normalised);
  }

  /** Whether a version with this environment key may run now (no packages: always). */
  isReady(key: string | null): boolean {
    return key === null || this.store.get(key)?.state === "ready";
  }

  record(key: string): EnvironmentRecord | null {
    return this.store.get(key);
  }

  /** The tree to mount at /packages; null when not ready. */
  treeDir(key: string): string | null {
    return this.store.treeDir(key);
  }

  /** Makes `version` current once its environment is ready (a failed one stays pending, shown failed). */
  watch(name: string, version: number, key: string): void {
    const id = `${name}@${version}`;
    if (this.watched.has(id)) return;
    this.watched.add(id);
    this.store
      .settledRecord(key)
      .then((record) => {
        if (record.state === "ready" && this.functions.promote(name, version))
          this.log(`function ${name}: version ${version} is current (its packages are ready)`);
      })
      .catch((error: unknown) => this.log(`function ${name}: version ${version} waits for an environment that is gone: ${String(error)}`))
      .finally(() => this.watched.delete(id));
  }

  /** At start: versions left pending by the last run are watched again (their installs were queued again by the store). */
  resumePending(): void {
    for (const pending of this.functions.pendingVersions()) {
      if (pending.environmentKey === null || this.isReady(pending.environmentKey)) {
        this.functions.promote(pending.name, pending.version);
      } else if (this.store.get(pending.environmentKey)) {
        this.watch(pending.name, pending.version, pending.environmentKey);
      }
    }
  }

  /** Marks the environments stored versions refer to and removes the others past the grace period. */
  sweep(now = Date.now()): string[] {
    this.store.markReferenced(this.functions.referencedEnvironments());
    return this.store.sweep(now);
  }

  /** The `packages` part of /healthz. */
  health(): { ready: true; environments: number; bytes: number; budget_bytes: number } {
    return { ready: true, environments: this.store.environmentCount(), bytes: this.store.usageBytes(), budget_bytes: this.budgetBytes };
  }

  /** The API's view of an environment; null for no key. */
  describe(key: string | null): EnvironmentJson | null {
    if (key === null) return null;
    const record = this.store.get(key);
    if (!record) return { key, state: "failed", error: "the environment was removed", output: "", lock: null, size_bytes: 0 };
    const lock = record.state === "ready" ? parseLock(record.runtime, this.store.lock(key)) : null;
    return { key, state: record.state, error: record.error, output: record.output, lock, size_bytes: record.sizeBytes };
  }
}

/** `name==version` lines (pip) or package-lock.json (npm) as name → version. */
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

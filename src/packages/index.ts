import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { log as gatewayLog } from "../core/log.js";
import type { Interpreters } from "../sandbox/binaries.js";
import { type Cgroups, setupCgroups } from "../sandbox/cgroups/setup.js";
import type { PackagesConfig } from "./config-keys.js";
import { confinement } from "./confine.js";
import { PackageStore } from "./environments.js";

export type { PackagesConfig } from "./config-keys.js";
export { type EnvironmentRecord, type EnvironmentState, environmentKey, PackageStore, PackagesFullError } from "./environments.js";
export { normalisePackages, type PackageSpec, PackageSpecError } from "./spec.js";

// Processes (threads included) one install may have: npm and pip start a few dozen at most.
const INSTALLER_PIDS_MAX = 512;

export interface OpenedPackageStore {
  store: PackageStore;
  /** Lets running installs end, then releases the installers' cgroups. */
  close(): Promise<void>;
}

/** Builds the store for a gateway: its installers use the sandbox's own interpreters. */
export function openPackageStore(
  config: PackagesConfig,
  dataDir: string,
  interpreters: Interpreters,
  log: (line: string) => void = (line) => gatewayLog.warn(line),
): OpenedPackageStore {
  let cgroups: Cgroups | null = null;
  try {
    cgroups = setupCgroups({ slots: config.PACKAGES_PARALLEL, maxThreads: INSTALLER_PIDS_MAX });
  } catch (error) {
    log(`package installs run without a memory limit: ${(error as Error).message}`);
  }
  if (cgroups?.mode === "none") log(`package installs run without a memory limit (no usable cgroups): ${cgroups.notes.join("; ")}`);
  const stagingDir = config.PACKAGES_STAGING_DIR ?? path.join(os.tmpdir(), `fngw-packages-${config.PACKAGES_UID}`);
  const npmCli = npmCliPath(interpreters.node.binary);
  // Everything the installers read: the Python prefix (binary, libpython, stdlib, pip), Node and npm.
  const reach = [
    path.dirname(path.dirname(interpreters.python.binary)),
    path.dirname(interpreters.node.binary),
    path.dirname(path.dirname(npmCli)),
  ];
  let store: PackageStore;
  try {
    store = new PackageStore({
      dataDir,
      stagingDir,
      maxBytes: config.PACKAGES_MAX_MB * 2 ** 20,
      parallel: config.PACKAGES_PARALLEL,
      graceMs: config.PACKAGES_GRACE_MS,
      limits: {
        uid: config.PACKAGES_UID,
        timeoutMs: config.PACKAGES_TIMEOUT_MS,
        memoryMb: config.PACKAGES_MEMORY_MB,
        outputCapBytes: 64 * 1024,
      },
      tools: {
        pythonBinary: interpreters.python.binary,
        nodeBinary: interpreters.node.binary,
        npmCli,
        confinement: confinement(reach, path.join(stagingDir, ".mounts")),
      },
      versions: { python: interpreters.python.version, node: interpreters.node.version },
      cgroups: cgroups && cgroups.mode !== "none" ? Array.from({ length: config.PACKAGES_PARALLEL }, (_, k) => cgroups!.slot(k)) : [],
      log,
    });
  } catch (error) {
    cgroups?.close();
    throw error;
  }
  return {
    store,
    close: async () => {
      await store.close();
      cgroups?.close();
    },
  };
}

/** npm's entry script: the one installed beside this Node, else the `npm` on PATH. */
function npmCliPath(nodeBinary: string): string {
  const beside = path.join(path.dirname(nodeBinary), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
  if (fs.existsSync(beside)) return fs.realpathSync(beside);
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const candidate = path.join(dir, "npm");
    if (fs.existsSync(candidate)) return fs.realpathSync(candidate);
  }
  throw new Error("npm was not found beside node nor on PATH");
}

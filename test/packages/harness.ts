import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/core/config.js";
import { type OpenedPackageStore, openPackageStore } from "../../src/packages/index.js";
import { type Interpreters, resolveInterpreters } from "../../src/sandbox/binaries.js";

/**
 * A real package store (real pip and npm against the registries, real uid, real cgroups) in
 * a data directory of its own. The installers' uid is shifted by TEST_UID_OFFSET, below every
 * sandbox uid block of the test harnesses, so checkouts running at once do not share it.
 */
export interface StoreHandle extends OpenedPackageStore {
  dataDir: string;
  stagingDir: string;
  uid: number;
  interpreters: Interpreters;
}

export const installerUid = () => 299_000 + Math.floor(Number(process.env.TEST_UID_OFFSET ?? "0") / 1000);

/** Opens a store on a new data directory, or on `dataDir` to see what an earlier store left. */
export function openStore(
  env: Record<string, string> = {},
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-packages-")),
): StoreHandle {
  const stagingDir = path.join(dataDir, "staging");
  const uid = installerUid();
  const config = loadConfig({ PACKAGES_UID: String(uid), PACKAGES_STAGING_DIR: stagingDir, PACKAGES_PARALLEL: "2", ...env });
  // The temp dir is 0700: the staging directory below it must be reachable by the installers' uid.
  fs.chmodSync(dataDir, 0o711);
  const interpreters = resolveInterpreters(process.env.PYTHON_BIN ?? "python3", process.execPath);
  const opened = openPackageStore(config, dataDir, interpreters, () => {});
  return { ...opened, dataDir, stagingDir, uid, interpreters };
}

export async function closeStore(handle: StoreHandle): Promise<void> {
  await handle.close();
  fs.rmSync(handle.dataDir, { recursive: true, force: true });
}

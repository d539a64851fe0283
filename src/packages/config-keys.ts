import type { Config } from "../core/config.js";

/** The part of the gateway's configuration (`core/config.ts`) the package store reads. */
export type PackagesConfig = Pick<
  Config,
  | "PACKAGES_UID"
  | "PACKAGES_MAX_MB"
  | "PACKAGES_PARALLEL"
  | "PACKAGES_TIMEOUT_MS"
  | "PACKAGES_MEMORY_MB"
  | "PACKAGES_GRACE_MS"
  | "PACKAGES_STAGING_DIR"
>;

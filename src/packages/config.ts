import { z } from "zod";

const int = (min: number, fallback: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** The package environments' knobs, read from the environment (docs/packages.md lists them). */
const PackagesEnvSchema = z.object({
  /** The uid (and gid) installers run as; no sandbox slot may use it. */
  PACKAGES_UID: int(1000, 199_999, 2 ** 31 - 2),
  /** Total size of all environments; past it new environments are refused. */
  PACKAGES_MAX_MB: int(1, 4096),
  /** Installs that run at once; the rest wait in the queue. */
  PACKAGES_PARALLEL: int(1, 1, 16),
  /** Wall-clock limit of one install (pip or npm and the lock listing). */
  PACKAGES_TIMEOUT_MS: int(1000, 600_000),
  /** Memory limit of one install (cgroup). */
  PACKAGES_MEMORY_MB: int(64, 1024),
  /** How long an environment no function version references is kept before the sweep removes it. */
  PACKAGES_GRACE_MS: int(0, 24 * 3600_000),
  /** Where installers write before their tree is sealed and moved into DATA_DIR (defaults to a directory in the system temp dir). */
  PACKAGES_STAGING_DIR: z.string().min(1).optional(),
});

export type PackagesConfig = z.infer<typeof PackagesEnvSchema>;

export function loadPackagesConfig(env: Record<string, string | undefined> = process.env): PackagesConfig {
  const parsed = PackagesEnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new Error(`invalid package settings:\n  ${problems.join("\n  ")}`);
  }
  return parsed.data;
}

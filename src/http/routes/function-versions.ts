import type { FunctionCatalog } from "../../cluster/functions.js";
import type { Config } from "../../core/config.js";
import type { FunctionSettings } from "../../core/settings.js";
import type { FunctionEnvironments } from "../../packages/function-environments.js";
import { normalisePackages } from "../../packages/spec.js";
import type { CurrentFunction, StoredVersion } from "../../store/contract.js";
import { ApiError } from "../errors.js";
import type { CheckSyntax } from "../syntax-check.js";
import { type DescribeEnvironment, functionJson } from "./function-schemas.js";

// Storing versions with packages: which version is current while an environment installs, and
// how the API shows a function with its environments.

export interface FunctionsDeps {
  config: Config;
  functions: FunctionCatalog;
  /** Parses code with the real interpreter (never runs it). */
  checkSyntax: CheckSyntax;
  /** Package environments; without them a function with packages is refused (503). */
  packages?: FunctionEnvironments;
}

/** How this gateway shows environments (none without a package store). */
export const describer =
  (deps: FunctionsDeps): DescribeEnvironment =>
  (key) =>
    deps.packages?.describe(key) ?? null;

/** The function as the API shows it, with its pending version if any. */
export async function shown(deps: FunctionsDeps, fn: CurrentFunction) {
  const pending = fn.pendingVersion === null ? undefined : await deps.functions.version(fn.name, fn.pendingVersion);
  return functionJson(fn, describer(deps), pending);
}

/** Checks a version's packages (PackageSpecError: 400) before anything is stored or installed. */
export function checkPackages(deps: FunctionsDeps, settings: FunctionSettings): void {
  const normalised = normalisePackages(settings.runtime, settings.packages);
  if (normalised.length > 0 && !deps.packages) throw new ApiError(503, "packages_unavailable", "this gateway installs no packages");
}

/** The environment key of a version with these settings, recorded and built when new (PackagesFullError: 507). */
export async function environmentKey(deps: FunctionsDeps, settings: FunctionSettings): Promise<string | null> {
  return (await deps.packages?.environmentFor(settings.runtime, settings.packages)) ?? null;
}

/**
 * Stores a new version. It becomes current at once when its packages are built (by any node; or
 * it has none), or when the current version's are not either; otherwise it waits, pending, and
 * the current version keeps serving until one node has built the new environment.
 */
export async function storeVersion(
  deps: FunctionsDeps,
  current: CurrentFunction,
  settings: FunctionSettings,
): Promise<StoredVersion | null> {
  const key = await environmentKey(deps, settings);
  const built = (k: string | null) => deps.packages?.isBuilt(k) ?? k === null;
  const stored = await deps.functions.addVersion(current.name, settings, key, built(key) || !built(current.environmentKey));
  if (stored && key !== null && stored.current.version !== stored.stored.version)
    deps.packages?.watch(current.name, stored.stored.version, key);
  return stored;
}

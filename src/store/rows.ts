import type { FunctionSettings } from "../core/settings.js";
import type { CurrentFunction, EnvSealer, FunctionVersion } from "./contract.js";

// A function version's row as both engines store it (their schemas give the same shape), and the
// mapping between it and the contract's types: env values sealed on the way in, opened on the way out.

export interface VersionRow extends FunctionSettings {
  functionName: string;
  version: number;
  envSealed: boolean;
  environmentKey: string | null;
  createdAt: number;
}

export interface FunctionRow {
  createdAt: number;
  updatedAt: number;
  pendingVersion: number | null;
  revision: number;
}

/** A version's row as stored: its env values sealed to this function and version. */
export function versionRow(
  sealer: EnvSealer,
  name: string,
  version: number,
  settings: FunctionSettings,
  environmentKey: string | null,
  createdAt: number,
): VersionRow {
  const env = sealer.sealEnv(settings.env, name, version);
  return { ...settings, functionName: name, version, env, envSealed: true, environmentKey, createdAt };
}

export function toVersion(sealer: EnvSealer, row: VersionRow): FunctionVersion {
  const { functionName, envSealed: _sealed, ...rest } = row;
  return { name: functionName, ...rest, env: sealer.openEnv(rest.env, functionName, rest.version) };
}

/** A function's current version, joined with its function row. */
export function toCurrent(sealer: EnvSealer, row: { version: VersionRow; fn: FunctionRow }): CurrentFunction {
  return {
    ...toVersion(sealer, row.version),
    functionCreatedAt: row.fn.createdAt,
    updatedAt: row.fn.updatedAt,
    pendingVersion: row.fn.pendingVersion,
    revision: row.fn.revision,
  };
}

/** What `create` returns: version 1, current, as just stored. */
export function firstVersion(name: string, settings: FunctionSettings, environmentKey: string | null, now: number): CurrentFunction {
  return {
    name,
    version: 1,
    ...settings,
    environmentKey,
    createdAt: now,
    functionCreatedAt: now,
    updatedAt: now,
    pendingVersion: null,
    revision: 1,
  };
}

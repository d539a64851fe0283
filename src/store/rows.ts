import type { FunctionSettings } from "../core/settings.js";
import type { CurrentFunction, EnvSealer, FunctionVersion, NewJob } from "./contract.js";

// Rows as both engines store them (their schemas give the same shapes), and the mapping between
// them and the contract's types: a version's env values sealed on the way in, opened on the way
// out; a new job's row.

/** Whether two types are the same, both ways: each engine's rows are the contract's, field for field. */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

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

/** A new job's row: queued, no attempt yet. */
export function newJobRow(job: NewJob) {
  return {
    id: job.id,
    functionName: job.functionName,
    version: job.version,
    trigger: job.trigger,
    state: "queued" as const,
    attempts: 0,
    maxAttempts: job.maxAttempts,
    createdAt: job.createdAt,
    expiresAt: job.expiresAt,
    runAt: job.runAt,
    method: job.request.method,
    path: job.request.path,
    url: job.request.url,
    headers: job.request.headers,
    body: job.request.body,
    requestBytes: job.requestBytes,
    idempotencyKey: job.idempotencyKey,
    callbackUrl: job.callbackUrl,
    scheduledAt: job.scheduledAt ?? null,
    scheduleKey: job.scheduleKey ?? null,
    redriveOf: job.redriveOf ?? null,
  };
}

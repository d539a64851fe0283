import { z } from "@hono/zod-openapi";
import { type Config, loadConfig } from "./config.js";
import { MAX_EVENT_AGE_S, RETRIES } from "./jobs.js";
import { RUNTIMES } from "./runtimes.js";
import { type Schedule, SchedulesSchema } from "./schedules.js";

/** How invocations of a function are isolated from each other: a fresh process each, or warm per-version instances. */
export const ISOLATIONS = ["invocation", "function"] as const;
export type Isolation = (typeof ISOLATIONS)[number];

/**
 * A function's settings: what a version fixes about a function. This list is the one place a
 * setting is declared; the API's create and update schemas, the defaults, the PUT merge and the
 * JSON shape are derived from it, and the database columns are checked against it
 * (`db/schema.ts`). Adding a setting means adding a field here and a column there.
 */

/** Pass as a schema's `error` option so a missing field says so instead of "expected string, received undefined". */
export const requiredField = {
  error: (issue: { input?: unknown }) => (issue.input === undefined ? "is required" : undefined),
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What the API shows instead of an environment variable's value. */
export const MASKED = "***";

/** A setting: its schema, and its value when a new function leaves it out (none: required). */
interface Field<S extends z.ZodType> {
  schema: S;
  fallback?: () => z.output<S>;
}
const field = <S extends z.ZodType>(schema: S, fallback?: () => z.output<S>): Field<S> => ({ schema, fallback });

/** The settings with their schemas; limits come from the configuration, so they are built per gateway. */
export function settingFields(config: Config) {
  return {
    runtime: field(z.enum(RUNTIMES, requiredField).openapi({ example: "python" })),
    code: field(
      z
        .string(requiredField)
        .min(1, "must not be empty")
        .refine((text) => Buffer.byteLength(text, "utf8") <= config.MAX_CODE_BYTES, {
          message: `must be at most ${config.MAX_CODE_BYTES} bytes (MAX_CODE_BYTES)`,
        })
        .openapi({ example: 'def handler(request):\n    return {"hello": request.query.get("name", "world")}\n' }),
    ),
    timeoutMs: field(
      z
        .number()
        .int()
        .min(100)
        .max(config.MAX_TIMEOUT_MS)
        .openapi({ description: `Default ${config.DEFAULT_TIMEOUT_MS}` }),
      () => Math.min(config.DEFAULT_TIMEOUT_MS, config.MAX_TIMEOUT_MS),
    ),
    memoryMb: field(
      z
        .number()
        .int()
        .min(32)
        .max(config.MAX_MEMORY_MB)
        .openapi({ description: `Default ${config.DEFAULT_MEMORY_MB}` }),
      () => Math.min(config.DEFAULT_MEMORY_MB, config.MAX_MEMORY_MB),
    ),
    network: field(z.boolean().openapi({ description: "Whether the function may open network sockets. Default false" }), () => false),
    env: field(envSchema(config), () => ({})),
    public: field(z.boolean().openapi({ description: "Whether /fn/:name may be called without the token. Default false" }), () => false),
    maxConcurrency: field(
      z.number().int().min(1).max(config.MAX_CONCURRENCY).nullable().openapi({
        description:
          "Invocations of this function in progress at once on each gateway (several gateways on one database each allow as many), past it 429; null (default): only the gateway's limit",
      }),
      () => null,
    ),
    packages: field(
      z.array(z.string()).openapi({
        example: ["numpy>=2,<3"],
        description:
          "Registry packages installed for the function, as given: pip requirements (wheels only) for Python, npm specs for Node (no scripts). Checked against the runtime at registration. Default []",
      }),
      () => [],
    ),
    isolation: field(
      z.enum(ISOLATIONS).openapi({
        description:
          'Default "invocation": a fresh interpreter for every invocation. "function": warm instances of this version serve its invocations one at a time; module state and /tmp persist between them (README, Isolation)',
      }),
      () => "invocation" as const,
    ),
    retries: field(
      z
        .number()
        .int()
        .min(RETRIES.min)
        .max(RETRIES.max)
        .openapi({
          description: `Times an asynchronous invocation is tried again after a retryable failure (error, timeout, oom, interrupted, 5xx, 429), waiting 1 s, 2 s, 4 s … (with jitter). Default ${RETRIES.fallback}`,
        }),
      () => RETRIES.fallback,
    ),
    maxEventAgeS: field(
      z
        .number()
        .int()
        .min(MAX_EVENT_AGE_S.min)
        .max(MAX_EVENT_AGE_S.max)
        .openapi({
          description: `Seconds an asynchronous invocation may wait (queued or between retries) before it expires unrun. Default ${MAX_EVENT_AGE_S.fallback}`,
        }),
      () => MAX_EVENT_AGE_S.fallback,
    ),
    schedules: field(SchedulesSchema as z.ZodType<Schedule[]>, () => [] as Schedule[]),
  };
}

type Fields = ReturnType<typeof settingFields>;
export type SettingKey = keyof Fields;

/** What a version fixes about a function; every field is immutable once stored. */
export type FunctionSettings = { [K in SettingKey]: z.output<Fields[K]["schema"]> };

/** `timeoutMs` → `timeout_ms`: a setting's name in the API and in the database. */
type Snake<S extends string> = S extends `${infer Head}${infer Tail}`
  ? `${Head extends Lowercase<Head> ? Head : `_${Lowercase<Head>}`}${Snake<Tail>}`
  : S;
export const apiName = <K extends string>(key: K) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) as Snake<K>;

/** The settings as the API spells them. */
export type ApiSettings = { [K in SettingKey as Snake<K>]: FunctionSettings[K] };

const keysOf = <T extends object>(record: T) => Object.keys(record) as (keyof T)[];

/** Every setting's key, in declaration order (the defaults' limits do not matter for the names). */
export const SETTING_KEYS: readonly SettingKey[] = keysOf(settingFields(loadConfig({})));

/** The schema of every setting under its API name, each optional (creation adds `required` where there is no fallback). */
export function apiSettingsShape<M extends "create" | "update">(config: Config, mode: M) {
  const fields = settingFields(config);
  return Object.fromEntries(
    keysOf(fields).map((key) => {
      const { schema, fallback } = fields[key] as Field<z.ZodType>;
      if (mode === "update") return [apiName(key), schema.optional()];
      // A new function's value when left out, in the document too (the console's New function form reads it there).
      return [apiName(key), fallback === undefined ? schema : schema.openapi({ default: fallback() }).optional()];
    }),
  ) as { [K in SettingKey as Snake<K>]: M extends "create" ? Fields[K]["schema"] : z.ZodOptional<Fields[K]["schema"]> };
}

/** A request's settings cannot be applied as given (the handler answers 400 with the message). */
export class SettingsError extends Error {
  override name = "SettingsError";
}

/**
 * The env a request asks for, with the mask read as "keep the current value of this variable":
 * PUTting back what GET shows keeps every secret. The mask for a variable that has no current
 * value is refused rather than stored as the value.
 */
export function unmaskEnv(given: Record<string, string>, current: Record<string, string>): Record<string, string> {
  const unknown = Object.keys(given).filter((name) => given[name] === MASKED && !Object.hasOwn(current, name));
  if (unknown.length > 0) {
    throw new SettingsError(
      `env: "${MASKED}" keeps a variable's current value, and ${unknown.join(", ")} ${unknown.length === 1 ? "has" : "have"} none; give the value`,
    );
  }
  return Object.fromEntries(Object.entries(given).map(([name, value]) => [name, value === MASKED ? current[name]! : value]));
}

/** Settings for a new function: what the request gives, the fallback for the rest. */
export function settingsOfCreate(config: Config, given: Partial<ApiSettings>): FunctionSettings {
  const fields = settingFields(config);
  const settings = Object.fromEntries(
    keysOf(fields).map((key) => {
      const value = given[apiName(key)];
      return [key, value === undefined ? (fields[key] as Field<z.ZodType>).fallback?.() : value];
    }),
  ) as FunctionSettings;
  return { ...settings, env: unmaskEnv(settings.env, {}) };
}

/** A new version's settings: the current ones, with what the request changes (a masked env value kept). */
export function settingsOfUpdate(current: FunctionSettings, given: Partial<ApiSettings>): FunctionSettings {
  const settings = Object.fromEntries(
    SETTING_KEYS.map((key) => {
      const value = given[apiName(key)];
      return [key, value === undefined ? current[key] : value];
    }),
  ) as FunctionSettings;
  return { ...settings, env: given.env === undefined ? current.env : unmaskEnv(given.env, current.env) };
}

/** A rollback: the settings of an older version (code included), with the current env: secrets are not rolled back. */
export function settingsOfRollback(current: FunctionSettings, target: FunctionSettings): FunctionSettings {
  const settings = Object.fromEntries(SETTING_KEYS.map((key) => [key, target[key]])) as FunctionSettings;
  return { ...settings, env: current.env };
}

/** Whether two versions fix the same settings (code and env values included; the order of env's names does not count). */
export function sameSettings(a: FunctionSettings, b: FunctionSettings): boolean {
  const canonical = (value: unknown) =>
    JSON.stringify(value, (_key, v: unknown) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1)))
        : v,
    );
  return SETTING_KEYS.every((key) => canonical(a[key]) === canonical(b[key]));
}

/** The settings as the API shows them: env values masked. */
export function apiSettings(settings: FunctionSettings): ApiSettings {
  const shown = { ...settings, env: Object.fromEntries(Object.keys(settings.env).map((name) => [name, MASKED])) };
  return Object.fromEntries(SETTING_KEYS.map((key) => [apiName(key), shown[key]])) as ApiSettings;
}

function envSchema(config: Config) {
  const vars = z
    .record(
      // Any name is fine, LD_PRELOAD or NODE_OPTIONS included: the sandbox sets a function's
      // variables only after the lock-down, so none of them can steer the interpreter's start.
      z.string().regex(ENV_NAME, `environment variable names must match ${ENV_NAME.source}`),
      z.string().refine((value) => !value.includes("\0"), { message: "must not contain NUL" }),
    )
    .refine((vars) => Object.keys(vars).length <= config.MAX_ENV_VARS, {
      message: `at most ${config.MAX_ENV_VARS} variables (MAX_ENV_VARS)`,
    })
    .refine(
      (vars) => Object.entries(vars).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) <= config.MAX_ENV_BYTES,
      { message: `names and values together must be at most ${config.MAX_ENV_BYTES} bytes (MAX_ENV_BYTES)` },
    )
    .openapi({ example: { GREETING: "hi" }, description: `Names match ${ENV_NAME.source}; values are shown masked as "${MASKED}"` });
  // JSON.parse keeps "__proto__" as an own key, but a record drops it: refuse it rather than lose it.
  return z.preprocess((raw, ctx) => {
    if (typeof raw === "object" && raw !== null && Object.hasOwn(raw, "__proto__")) {
      ctx.addIssue({ code: "custom", message: "__proto__ cannot be an environment variable name", path: ["__proto__"] });
    }
    return raw;
  }, vars);
}

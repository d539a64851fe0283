import { z } from "@hono/zod-openapi";
import type { Config } from "../../core/config.js";
import { apiSettings, apiSettingsShape, requiredField } from "../../core/settings.js";
import type { EnvironmentJson } from "../../packages/function-environments.js";
import type { CurrentFunction, FunctionVersion } from "../../store/contract.js";
import { FunctionNameSchema, isoTime, NameParamSchema } from "../schemas.js";

// The wire shapes of /api/functions: request and response schemas (with the configured limits) and the JSON of a function.

export function functionSchemas(config: Config) {
  const CreateFunction = z.strictObject({ name: FunctionNameSchema, ...apiSettingsShape(config, "create") }).openapi("CreateFunction");
  const UpdateFunction = z
    .strictObject({
      name: FunctionNameSchema.optional().openapi({ description: "If given, must be the name in the path" }),
      ...apiSettingsShape(config, "update"),
    })
    .openapi("UpdateFunction", {
      description:
        "A new version: fields left out keep their value from the current version (env included). At least one field besides name.",
      minProperties: 1,
    });
  const VersionParams = NameParamSchema.extend({
    version: z.coerce
      .number()
      .int()
      .min(1)
      .openapi({ param: { name: "version", in: "path" }, example: 1 }),
  });
  const RollbackRequest = z
    .strictObject({
      version: z.number(requiredField).int().min(1).openapi({ description: "The version to make current again", example: 1 }),
    })
    .openapi("Rollback");
  const Settings = z.object(apiSettingsShape(config, "create"));
  const Environment = z
    .object({
      key: z.string().openapi({ description: "SHA-256 of the runtime, the interpreter version and the normalised list" }),
      state: z.enum(["pending", "building", "ready", "failed"]).openapi({
        description: "On the node that answered: each node builds the environment on its own disk",
      }),
      error: z.string().nullable().openapi({ description: "Why the install failed, in one line" }),
      output: z.string().openapi({ description: "The installer's output (its last 64 KiB)" }),
      lock: z.record(z.string(), z.string()).nullable().openapi({
        description: "The exact versions every node installs, by package (stored by the node that resolved the list); null until then",
      }),
      size_bytes: z.number().int(),
      resolved_by: z.string().nullable().openapi({ description: "The node whose install resolved the list into the lock (or failed)" }),
      node: z.string().openapi({ description: "The node that answered: whose disk `state` describes" }),
    })
    .nullable()
    .openapi("PackageEnvironment", { description: "The version's package environment; null without packages" });
  const FunctionSchema = Settings.extend({
    name: FunctionNameSchema,
    version: z.number().int().openapi({ example: 1 }),
    environment: Environment,
    pending_version: z
      .object({ version: z.number().int(), packages: z.array(z.string()), environment: Environment })
      .nullable()
      .openapi({ description: "A newer version waiting for its packages: current once they are ready; kept here, failed, when they fail" }),
    created_at: z.string().openapi({ description: "When the function was first registered" }),
    updated_at: z.string().openapi({ description: "When the current version was stored" }),
  }).openapi("Function");
  const VersionSchema = Settings.extend({
    name: FunctionNameSchema,
    version: z.number().int().openapi({ example: 1 }),
    environment: Environment,
    created_at: z.string(),
  }).openapi("FunctionVersion");
  const FunctionSummarySchema = z
    .object({
      name: FunctionNameSchema,
      runtime: Settings.shape.runtime,
      version: z.number().int(),
      public: z.boolean(),
      updated_at: z.string(),
    })
    .openapi("FunctionSummary");

  return { CreateFunction, UpdateFunction, VersionParams, RollbackRequest, FunctionSchema, VersionSchema, FunctionSummarySchema };
}

/** How the JSON shows an environment key (FunctionEnvironments.describe). */
export type DescribeEnvironment = (key: string | null) => EnvironmentJson | null;

export function versionJson(v: FunctionVersion, describe: DescribeEnvironment) {
  return { name: v.name, version: v.version, ...apiSettings(v), environment: describe(v.environmentKey), created_at: isoTime(v.createdAt) };
}

/** The current version, with the version waiting for its packages (`pending`) if any. */
export function functionJson(fn: CurrentFunction, describe: DescribeEnvironment, pending?: FunctionVersion) {
  const pendingVersion = pending
    ? { version: pending.version, packages: pending.packages, environment: describe(pending.environmentKey) }
    : null;
  return {
    ...versionJson(fn, describe),
    pending_version: pendingVersion,
    created_at: isoTime(fn.functionCreatedAt),
    updated_at: isoTime(fn.createdAt),
  };
}

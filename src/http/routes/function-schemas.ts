import { z } from "@hono/zod-openapi";
import type { Config } from "../../core/config.js";
import { apiSettings, apiSettingsShape, requiredField } from "../../core/settings.js";
import type { CurrentFunction, FunctionVersion } from "../../db/functions.js";
import { FunctionNameSchema, isoTime, NameParamSchema } from "../schemas.js";

// The wire shapes of /api/functions: request and response schemas (with the configured limits) and the JSON of a function.

export function functionSchemas(config: Config) {
  const CreateFunction = z
    .strictObject({ name: FunctionNameSchema, ...apiSettingsShape(config, "create") })
    .openapi("CreateFunction");
  const UpdateFunction = z
    .strictObject({
      name: FunctionNameSchema.optional().openapi({ description: "If given, must be the name in the path" }),
      ...apiSettingsShape(config, "update"),
    })
    .openapi("UpdateFunction", {
      description: "A new version: fields left out keep their value from the current version (env included). At least one field besides name.",
      minProperties: 1,
    });
  const VersionParams = NameParamSchema.extend({
    version: z.coerce.number().int().min(1).openapi({ param: { name: "version", in: "path" }, example: 1 }),
  });
  const RollbackRequest = z
    .strictObject({ version: z.number(requiredField).int().min(1).openapi({ description: "The version to make current again", example: 1 }) })
    .openapi("Rollback");
  const Settings = z.object(apiSettingsShape(config, "create"));
  const FunctionSchema = Settings.extend({
    name: FunctionNameSchema,
    version: z.number().int().openapi({ example: 1 }),
    created_at: z.string().openapi({ description: "When the function was first registered" }),
    updated_at: z.string().openapi({ description: "When the current version was stored" }),
  }).openapi("Function");
  const VersionSchema = Settings.extend({
    name: FunctionNameSchema,
    version: z.number().int().openapi({ example: 1 }),
    created_at: z.string(),
  }).openapi("FunctionVersion");
  const FunctionSummarySchema = z
    .object({ name: FunctionNameSchema, runtime: Settings.shape.runtime, version: z.number().int(), public: z.boolean(), updated_at: z.string() })
    .openapi("FunctionSummary");

  return { CreateFunction, UpdateFunction, VersionParams, RollbackRequest, FunctionSchema, VersionSchema, FunctionSummarySchema };
}

export function versionJson(v: FunctionVersion) {
  return { name: v.name, version: v.version, ...apiSettings(v), created_at: isoTime(v.createdAt) };
}

export function functionJson(fn: CurrentFunction) {
  return { ...versionJson(fn), created_at: isoTime(fn.functionCreatedAt), updated_at: isoTime(fn.createdAt) };
}

import { createRoute, OpenAPIHono, type RouteHandler, z } from "@hono/zod-openapi";
import type { Config } from "../../core/config.js";
import { apiName, SETTING_KEYS, sameSettings, settingsOfCreate, settingsOfRollback, settingsOfUpdate } from "../../core/settings.js";
import { ApiError, ErrorSchema, notFoundError, validationHook } from "../errors.js";
import { FunctionNameSchema, isoTime, json, NameParamSchema, operation, requires } from "../schemas.js";
import { requireValidSyntax } from "../syntax-check.js";
import { functionSchemas, versionJson } from "./function-schemas.js";
import { checkPackages, describer, environmentKey, type FunctionsDeps, shown, storeVersion } from "./function-versions.js";

// /api/functions: register, list, show, update (a new version), roll back (a new version), versions, delete.

/** The routes, mounted at /api/functions. */
export function functionsApi(deps: FunctionsDeps) {
  const routes = functionRouteDefinitions(deps.config);
  return new OpenAPIHono({ defaultHook: validationHook })
    .openapi(routes.create, createFunction(deps))
    .openapi(routes.list, listFunctions(deps))
    .openapi(routes.show, showFunction(deps))
    .openapi(routes.update, updateFunction(deps))
    .openapi(routes.rollback, rollbackFunction(deps))
    .openapi(routes.versions, listVersions(deps))
    .openapi(routes.version, showVersion(deps))
    .openapi(routes.remove, deleteFunction(deps));
}

const errors = {
  400: json(
    ErrorSchema,
    "Invalid request; `syntax_error` (with line and column) when the code does not parse; `invalid_packages` naming the refused package spec",
  ),
  401: json(ErrorSchema, "Missing or wrong token"),
};
const notFound = { 404: json(ErrorSchema, "No such function") };

/** The route definitions; the request schemas carry the configured limits. */
function functionRouteDefinitions(config: Config) {
  const { CreateFunction, UpdateFunction, VersionParams, RollbackRequest, FunctionSchema, VersionSchema, FunctionSummarySchema } =
    functionSchemas(config);
  return {
    create: createRoute({
      method: "post",
      path: "/",
      ...operation("functions", "createFunction"),
      summary: "Register a function (version 1)",
      ...requires("deploy"),
      request: { body: { content: { "application/json": { schema: CreateFunction } }, required: true } },
      responses: {
        201: json(FunctionSchema, "The function, version 1"),
        ...errors,
        409: json(ErrorSchema, "The name is taken"),
        413: json(ErrorSchema, "Body too large"),
        503: json(ErrorSchema, "The syntax check could not run; nothing was stored"),
        507: json(ErrorSchema, "`packages_storage_full`: a new package environment does not fit in PACKAGES_MAX_MB"),
      },
    }),
    list: createRoute({
      method: "get",
      path: "/",
      ...operation("functions", "listFunctions"),
      summary: "List functions",
      ...requires("deploy"),
      responses: {
        200: json(z.object({ items: z.array(FunctionSummarySchema) }), "Every function, by name"),
        401: errors[401],
      },
    }),
    show: createRoute({
      method: "get",
      path: "/{name}",
      ...operation("functions", "getFunction"),
      summary: "The current version of a function, code included, env values masked",
      ...requires("deploy"),
      request: { params: NameParamSchema },
      responses: { 200: json(FunctionSchema, "The current version"), ...errors, ...notFound },
    }),
    update: createRoute({
      method: "put",
      path: "/{name}",
      ...operation("functions", "updateFunction"),
      summary:
        "Store a new version (newest + 1); older versions stay. With packages not installed yet it is pending: current once they are ready",
      ...requires("deploy"),
      request: { params: NameParamSchema, body: { content: { "application/json": { schema: UpdateFunction } }, required: true } },
      responses: {
        200: {
          ...json(
            FunctionSchema,
            "The function: the new version as current, or under pending_version while its packages install. " +
              "A PUT that changes nothing stores no version and answers the function as it is, with X-Fngw-Unchanged: 1",
          ),
          headers: z.object({ [UNCHANGED_HEADER]: z.literal("1").optional().openapi({ description: "Set when nothing changed" }) }),
        },
        ...errors,
        ...notFound,
        503: json(ErrorSchema, "The syntax check could not run; nothing was stored"),
        507: json(ErrorSchema, "`packages_storage_full`: a new package environment does not fit in PACKAGES_MAX_MB"),
      },
    }),
    rollback: createRoute({
      method: "post",
      path: "/{name}/rollback",
      ...operation("functions", "rollbackFunction"),
      summary: "Make an older version's code and settings current again, as a new version; the current env (secrets) stays",
      ...requires("deploy"),
      request: {
        params: NameParamSchema,
        body: { content: { "application/json": { schema: RollbackRequest } }, required: true },
      },
      responses: {
        201: json(FunctionSchema, "The function: the new version (newest + 1) as current, or pending while its packages install"),
        ...errors,
        404: json(ErrorSchema, "No such function or version"),
      },
    }),
    versions: createRoute({
      method: "get",
      path: "/{name}/versions",
      ...operation("functions", "listVersions"),
      summary: "Every version of a function, newest first, each with its code",
      ...requires("deploy"),
      request: { params: NameParamSchema },
      responses: {
        200: json(z.object({ name: FunctionNameSchema, items: z.array(VersionSchema) }), "Newest first"),
        ...errors,
        ...notFound,
      },
    }),
    version: createRoute({
      method: "get",
      path: "/{name}/versions/{version}",
      ...operation("functions", "getVersion"),
      summary: "One version of a function, code included",
      ...requires("deploy"),
      request: { params: VersionParams },
      responses: { 200: json(VersionSchema, "The version"), ...errors, 404: json(ErrorSchema, "No such function or version") },
    }),
    remove: createRoute({
      method: "delete",
      path: "/{name}",
      ...operation("functions", "deleteFunction"),
      summary: "Remove a function and its versions; its invocation log stays",
      ...requires("deploy"),
      request: { params: NameParamSchema },
      responses: { 204: { description: "Removed" }, ...errors, ...notFound },
    }),
  };
}

type Routes = ReturnType<typeof functionRouteDefinitions>;

/** Set on a PUT's answer when it changed nothing, so stored no version. */
export const UNCHANGED_HEADER = "X-Fngw-Unchanged";

export const unknownFunction = (name: string) => notFoundError(`no function named '${name}'`);

function createFunction(deps: FunctionsDeps): RouteHandler<Routes["create"]> {
  const { config, functions, checkSyntax } = deps;
  return async (c) => {
    const { name, ...given } = c.req.valid("json");
    const settings = settingsOfCreate(config, given);
    checkPackages(deps, settings);
    await requireValidSyntax(checkSyntax, settings.runtime, settings.code);
    const taken = () => new ApiError(409, "conflict", `a function named '${name}' exists; PUT /api/functions/${name} adds a version`);
    if (functions.get(name)) throw taken();
    // A first version is current at once, ready or not: until its packages are, invocations answer 503.
    const created = await functions.create(name, settings, await environmentKey(deps, settings));
    if (!created) throw taken();
    c.header("Location", `/api/functions/${created.name}`);
    return c.json(await shown(deps, created), 201);
  };
}

function listFunctions({ functions }: FunctionsDeps): RouteHandler<Routes["list"]> {
  return (c) => {
    const items = functions.list().map((f) => ({
      name: f.name,
      runtime: f.runtime,
      version: f.version,
      public: f.public,
      updated_at: isoTime(f.updatedAt),
    }));
    return c.json({ items }, 200);
  };
}

function showFunction(deps: FunctionsDeps): RouteHandler<Routes["show"]> {
  return async (c) => {
    const { name } = c.req.valid("param");
    const fn = deps.functions.get(name);
    if (!fn) throw unknownFunction(name);
    return c.json(await shown(deps, fn), 200);
  };
}

function updateFunction(deps: FunctionsDeps): RouteHandler<Routes["update"]> {
  const { functions, checkSyntax } = deps;
  return async (c) => {
    const { name } = c.req.valid("param");
    const { name: bodyName, ...given } = c.req.valid("json") ?? {};
    if (Object.keys(given).length === 0) {
      const fields = SETTING_KEYS.map(apiName).join(", ");
      throw new ApiError(400, "invalid_request", `body: give at least one field to change (${fields})`);
    }
    if (bodyName !== undefined && bodyName !== name) {
      throw new ApiError(400, "invalid_request", `name: '${bodyName}' differs from the name in the path; functions cannot be renamed`);
    }
    const current = functions.get(name);
    if (!current) throw unknownFunction(name);
    const settings = settingsOfUpdate(current, given);
    // A deploy of what is there already stores nothing: the newest version (pending, or current) stands.
    const newest = current.pendingVersion === null ? current : ((await functions.version(name, current.pendingVersion)) ?? current);
    if (sameSettings(settings, newest)) {
      c.header(UNCHANGED_HEADER, "1");
      return c.json(await shown(deps, current), 200);
    }
    checkPackages(deps, settings);
    if (given.code !== undefined || given.runtime !== undefined) await requireValidSyntax(checkSyntax, settings.runtime, settings.code);
    const updated = await storeVersion(deps, current, settings);
    if (!updated) throw unknownFunction(name);
    return c.json(await shown(deps, updated.current), 200);
  };
}

function rollbackFunction(deps: FunctionsDeps): RouteHandler<Routes["rollback"]> {
  const { functions } = deps;
  return async (c) => {
    const { name } = c.req.valid("param");
    const { version } = c.req.valid("json");
    const current = functions.get(name);
    if (!current) throw unknownFunction(name);
    const target = await functions.version(name, version);
    if (!target) throw notFoundError(`function '${name}' has no version ${version}`);
    const rolledBack = await storeVersion(deps, current, settingsOfRollback(current, target));
    if (!rolledBack) throw unknownFunction(name);
    c.header("Location", `/api/functions/${name}`);
    return c.json(await shown(deps, rolledBack.current), 201);
  };
}

function listVersions(deps: FunctionsDeps): RouteHandler<Routes["versions"]> {
  return async (c) => {
    const { name } = c.req.valid("param");
    const versions = await deps.functions.versions(name);
    if (!versions) throw unknownFunction(name);
    return c.json({ name, items: versions.map((v) => versionJson(v, describer(deps))) }, 200);
  };
}

function showVersion(deps: FunctionsDeps): RouteHandler<Routes["version"]> {
  const { functions } = deps;
  return async (c) => {
    const { name, version } = c.req.valid("param");
    const found = await functions.version(name, version);
    if (!found) throw notFoundError(functions.get(name) ? `function '${name}' has no version ${version}` : `no function named '${name}'`);
    return c.json(versionJson(found, describer(deps)), 200);
  };
}

function deleteFunction({ functions }: FunctionsDeps): RouteHandler<Routes["remove"]> {
  return async (c) => {
    const { name } = c.req.valid("param");
    if (!(await functions.delete(name))) throw unknownFunction(name);
    return c.body(null, 204);
  };
}

/**
 * The function settings as the gateway declares them: read from its OpenAPI document
 * (`components.schemas.CreateFunction`), so a setting the gateway adds appears in the console's
 * forms with its limits, default and description, without a change here.
 */

export interface PropertySchema {
  type?: string | string[];
  enum?: string[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
  description?: string;
  default?: unknown;
  items?: PropertySchema;
  /** The fields of an object (a schedule's). */
  properties?: Record<string, PropertySchema>;
  example?: unknown;
  additionalProperties?: PropertySchema | boolean;
}

export interface SettingsSchema {
  properties: Record<string, PropertySchema>;
  required: string[];
}

let loading: Promise<SettingsSchema> | null = null;

/** The CreateFunction schema of /openapi.json, fetched once per page. */
export function settingsSchema(): Promise<SettingsSchema> {
  loading ??= fetch("/openapi.json", { credentials: "same-origin" })
    .then(async (res) => {
      if (!res.ok) throw new Error(`/openapi.json answered ${res.status}`);
      const doc = (await res.json()) as { components: { schemas: Record<string, { properties: Record<string, PropertySchema>; required?: string[] }> } };
      const create = doc.components.schemas.CreateFunction;
      if (!create) throw new Error("the OpenAPI document has no CreateFunction schema");
      return { properties: create.properties, required: create.required ?? [] };
    })
    .catch((error: unknown) => {
      loading = null; // try again next time
      throw error;
    });
  return loading;
}

/** The types a property allows, `null` included when it is nullable. */
export const typesOf = (schema: PropertySchema): string[] => (Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : []);

/** Fields every form shows in a place of their own, not among the generic settings. */
export const OWN_PLACE = new Set(["name", "runtime", "code", "env"]);

/** `timeout_ms` → `timeout (ms)`: a label from the API's name. */
export function labelOf(name: string): string {
  const unit = /_(ms|mb|s)$/.exec(name)?.[1];
  const base = (unit ? name.slice(0, -unit.length - 1) : name).replace(/_/g, " ");
  return unit ? `${base} (${unit === "mb" ? "MiB" : unit})` : base;
}

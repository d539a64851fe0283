import type { JSX } from "preact";
import { useState } from "preact/hooks";
import type { Settings } from "./api";
import { labelOf, OWN_PLACE, type PropertySchema, type SettingsSchema, typesOf } from "./schema";

/** What the gateway shows instead of an env value; sent back, it keeps the value (the mask rule). */
export const MASKED = "***";

/** A field's value while it is edited: the setting's value, or the text typed when it is not one yet. */
type Draft = Record<string, unknown>;

/** An input's text for a value (numbers, lists one a line, other structures as JSON). */
function textOf(value: unknown, schema: PropertySchema): string {
  if (value === null || value === undefined) return "";
  const types = typesOf(schema);
  if (types.includes("array") && schema.items && typesOf(schema.items).includes("string")) return (value as string[]).join("\n");
  if (typeof value === "object") return JSON.stringify(value, null, 2);
  return String(value);
}

/** The setting's value for an input's text, or an Error saying why it is not one. */
function valueOf(text: string, schema: PropertySchema): unknown {
  const types = typesOf(schema);
  if (text.trim() === "" && types.includes("null")) return null;
  if (types.includes("integer") || types.includes("number")) {
    if (!/^-?\d+(\.\d+)?$/.test(text.trim())) return new Error("must be a number");
    return Number(text);
  }
  if (types.includes("array") && schema.items && typesOf(schema.items).includes("string")) {
    return text
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
  }
  if (types.includes("string")) return text;
  try {
    return JSON.parse(text);
  } catch {
    return new Error("must be JSON");
  }
}

/** A list of objects (schedules): edited as JSON. */
const objectList = (schema: PropertySchema) => typesOf(schema).includes("array") && schema.items !== undefined && typesOf(schema.items).includes("object");

/** A JSON example for a list of objects, from the example values the schema gives its fields. */
function exampleOf(schema: PropertySchema): string {
  const fields = Object.entries(schema.items?.properties ?? {}).filter(([, field]) => field.example !== undefined);
  return fields.length === 0 ? "[]" : JSON.stringify([Object.fromEntries(fields.map(([name, field]) => [name, field.example]))]);
}

/** The settings whose fields differ from `base` (all of them when there is no base), or the field errors. */
export function changedSettings(draft: Draft, base: Settings | null): { changed: Settings; errors: Record<string, string> } {
  const changed: Settings = {};
  const errors: Record<string, string> = {};
  for (const [name, value] of Object.entries(draft)) {
    if (value instanceof Error) errors[name] = value.message;
    else if (base === null || JSON.stringify(value) !== JSON.stringify(base[name])) changed[name] = value;
  }
  return { changed, errors };
}

/** A hint under a field: its limits and what the gateway says of it. */
function hintOf(schema: PropertySchema): string {
  const limits =
    schema.minimum !== undefined && schema.maximum !== undefined ? `${schema.minimum} to ${schema.maximum}. ` : schema.minimum !== undefined ? `at least ${schema.minimum}. ` : "";
  return `${limits}${schema.description ?? ""}`.trim();
}

interface FieldsProps {
  schema: SettingsSchema;
  /** What each field starts from: the current version's values, or the defaults. */
  initial: Settings;
  draft: Draft;
  onChange: (name: string, value: unknown) => void;
  errors: Record<string, string>;
}

/** Every setting the gateway declares (but name, runtime, code and env, which have places of their own), one field each. */
export function SettingsFields({ schema, initial, draft, onChange, errors }: FieldsProps) {
  const names = Object.keys(schema.properties).filter((name) => !OWN_PLACE.has(name));
  return (
    <div class="fields settings-fields">
      {names.map((name) => {
        const property = schema.properties[name]!;
        const value = name in draft ? draft[name] : initial[name];
        const types = typesOf(property);
        const error = errors[name];
        const hint = hintOf(property);
        const describedBy = `${name}-hint`;
        let input: JSX.Element;
        if (types.includes("boolean")) {
          input = (
            <input
              name={name}
              type="checkbox"
              checked={value === true}
              aria-describedby={describedBy}
              onChange={(e) => onChange(name, e.currentTarget.checked)}
            />
          );
        } else if (property.enum) {
          input = (
            <select name={name} value={String(value ?? "")} aria-describedby={describedBy} onChange={(e) => onChange(name, e.currentTarget.value)}>
              {property.enum.map((option) => (
                <option key={option}>{option}</option>
              ))}
            </select>
          );
        } else if (types.includes("integer") || types.includes("number")) {
          input = (
            <input
              name={name}
              type="number"
              inputMode="numeric"
              min={property.minimum}
              max={property.maximum}
              placeholder={types.includes("null") ? "none" : ""}
              value={value instanceof Error ? undefined : textOf(value, property)}
              aria-invalid={error !== undefined}
              aria-describedby={describedBy}
              onInput={(e) => onChange(name, valueOf(e.currentTarget.value, property))}
            />
          );
        } else {
          input = (
            <textarea
              name={name}
              class="mono"
              rows={objectList(property) ? 6 : 3}
              placeholder={objectList(property) ? exampleOf(property) : types.includes("array") ? "one a line" : ""}
              value={value instanceof Error ? undefined : textOf(value, property)}
              aria-invalid={error !== undefined}
              aria-describedby={describedBy}
              onInput={(e) => onChange(name, valueOf(e.currentTarget.value, property))}
            />
          );
        }
        return (
          <div key={name} class={`field${types.includes("boolean") ? " check" : ""}`} data-field={name}>
            <label>
              {types.includes("boolean") ? (
                <>
                  {input} {labelOf(name)}
                </>
              ) : (
                <>
                  {labelOf(name)}
                  {input}
                </>
              )}
            </label>
            {error && (
              <p class="field-error" role="alert" data-error-for={name}>
                {error}
              </p>
            )}
            {hint && (
              <p class="hint" id={describedBy}>
                {hint}
              </p>
            )}
          </div>
        );
      })}
    </div>
  );
}

interface EnvRow {
  name: string;
  value: string;
  /** Shown masked: the stored value is kept unless the row is changed. */
  kept: boolean;
}

/** The env as sent: a kept row as the mask, which the gateway reads as "keep this value". */
export const envOf = (rows: EnvRow[]): Record<string, string> =>
  Object.fromEntries(rows.filter((row) => row.name !== "").map((row) => [row.name, row.kept ? MASKED : row.value]));

export const envRowsOf = (env: Record<string, string>): EnvRow[] => Object.keys(env).map((name) => ({ name, value: "", kept: true }));

/**
 * The function's environment variables: names with their values masked (kept as they are unless
 * changed), new ones with their values, a remove button each.
 */
export function EnvEditor({ rows, onChange, error }: { rows: EnvRow[]; onChange: (rows: EnvRow[]) => void; error?: string }) {
  const [adding, setAdding] = useState(0);
  const set = (index: number, row: Partial<EnvRow>) => onChange(rows.map((r, i) => (i === index ? { ...r, ...row } : r)));
  return (
    <div class="field env-editor" data-field="env">
      <h3>Environment</h3>
      {rows.length === 0 && <p class="muted">No variables.</p>}
      <div class="env-rows" data-testid="env">
        {rows.map((row, index) => (
          <div class="env-row" key={`${index}-${adding}`}>
            <input
              class="mono"
              aria-label="Variable name"
              name={`env-name-${index}`}
              value={row.name}
              readOnly={row.kept}
              onInput={(e) => set(index, { name: e.currentTarget.value })}
            />
            {row.kept ? (
              <>
                <span class="mono masked" title="The value is kept as it is; it is never shown">
                  {MASKED} kept
                </span>
                <button type="button" class="small" onClick={() => set(index, { kept: false })}>
                  Replace
                </button>
              </>
            ) : (
              <input
                class="mono"
                aria-label={`Value of ${row.name || "the variable"}`}
                name={`env-value-${index}`}
                value={row.value}
                onInput={(e) => set(index, { value: e.currentTarget.value })}
              />
            )}
            <button type="button" class="small" aria-label={`Remove ${row.name}`} onClick={() => onChange(rows.filter((_, i) => i !== index))}>
              Remove
            </button>
          </div>
        ))}
      </div>
      <button
        type="button"
        class="small"
        onClick={() => {
          setAdding((n) => n + 1);
          onChange([...rows, { name: "", value: "", kept: false }]);
        }}
      >
        Add variable
      </button>
      {error && (
        <p class="field-error" role="alert" data-error-for="env">
          {error}
        </p>
      )}
      <p class="hint">Values are never shown: the gateway keeps them sealed and sets them inside the sandbox only.</p>
    </div>
  );
}

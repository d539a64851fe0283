import { useEffect, useState } from "preact/hooks";
import { ApiFailure, api, type FunctionDetail, type Runtime, type Settings } from "./api";
import { CodeEditor } from "./editor";
import { type SettingsSchema, settingsSchema } from "./schema";
import { changedSettings, EnvEditor, envOf, SettingsFields } from "./settings-form";
import { messageOf } from "./util";

const TEMPLATES: Record<Runtime, string> = {
  python: 'def handler(request):\n    print("called")\n    return {"hello": request.query.get("name", "world")}\n',
  node: 'export default async function (request) {\n  console.log("called");\n  return Response.json({ hello: new URL(request.url).searchParams.get("name") ?? "world" });\n}\n',
  typescript:
    'export default async function (request: Request): Promise<Response> {\n  console.log("called");\n  const name: string = new URL(request.url).searchParams.get("name") ?? "world";\n  return Response.json({ hello: name });\n}\n',
};

/** What the name rule means, said once under the field (the pattern itself comes from the gateway). */
const NAME_RULE = "Lower-case letters, digits, - and _, starting with a letter or a digit; at most 63 characters.";

/** The settings a new function starts from: each one's default as the gateway's document gives it. */
const defaultsOf = (schema: SettingsSchema): Settings =>
  Object.fromEntries(Object.entries(schema.properties).flatMap(([name, property]) => ("default" in property ? [[name, property.default]] : [])));

/** Registers a new function (version 1), every setting included, and opens its page. */
export function Deploy() {
  const [schema, setSchema] = useState<SettingsSchema | null>(null);
  const [name, setName] = useState("");
  const [runtime, setRuntime] = useState<Runtime>("python");
  const [code, setCode] = useState(TEMPLATES.python);
  const [draft, setDraft] = useState<Record<string, unknown>>({});
  const [env, setEnv] = useState<{ name: string; value: string; kept: boolean }[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    settingsSchema().then(setSchema, (err: unknown) => setError(messageOf(err)));
  }, []);

  const changeRuntime = (next: Runtime) => {
    if (code === TEMPLATES[runtime]) setCode(TEMPLATES[next]);
    setRuntime(next);
  };
  const namePattern = schema?.properties.name?.pattern;
  const nameProblem = name !== "" && namePattern && !new RegExp(namePattern).test(name) ? `'${name}' does not follow the rule below` : undefined;

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!schema) return;
    const { changed, errors: local } = changedSettings(draft, defaultsOf(schema));
    if (nameProblem) local.name = nameProblem;
    setErrors(local);
    setError(null);
    if (Object.keys(local).length > 0) return;
    setBusy(true);
    try {
      const created = await api<FunctionDetail>("/api/functions", { method: "POST", json: { name, runtime, code, ...changed, env: envOf(env) } });
      // With packages, the settings tab follows their install; without, the code.
      location.hash = created.packages.length > 0 ? `#/fn/${created.name}/settings` : `#/fn/${created.name}`;
    } catch (err) {
      const byField = err instanceof ApiFailure ? err.fieldErrors() : {};
      setErrors(byField);
      // A problem no field of the form shows (the body as a whole, say) is said below it.
      if (Object.keys(byField).some((field) => !(field in schema.properties))) {
        setError(messageOf(err));
        return;
      }
      // Whatever no field shows is said below the form.
      if (Object.keys(byField).length === 0) setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  if (!schema) return error ? <p class="error" role="alert">{error}</p> : <p class="muted">Loading…</p>;
  return (
    <form class="card deploy" onSubmit={submit} noValidate>
      <h2>New function</h2>
      <div class="fields">
        <div class="field" data-field="name">
          <label>
            Name
            <input
              name="name"
              required
              autocomplete="off"
              value={name}
              aria-invalid={(errors.name ?? nameProblem) !== undefined}
              aria-describedby="name-rule"
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </label>
          {(errors.name ?? nameProblem) && (
            <p class="field-error" role="alert" data-error-for="name">
              {errors.name ?? nameProblem}
            </p>
          )}
          <p class="hint" id="name-rule" data-testid="name-rule">
            {NAME_RULE} <span class="mono">{namePattern}</span>
          </p>
        </div>
        <div class="field" data-field="runtime">
          <label>
            Runtime
            <select name="runtime" value={runtime} onChange={(e) => changeRuntime(e.currentTarget.value as Runtime)}>
              <option value="python">Python</option>
              <option value="node">JavaScript (Node)</option>
              <option value="typescript">TypeScript (Node)</option>
            </select>
          </label>
        </div>
      </div>
      <CodeEditor value={code} runtime={runtime} onChange={setCode} label="Function code" />
      {errors.code && (
        <p class="field-error" role="alert" data-error-for="code">
          {errors.code}
        </p>
      )}
      <h3>Settings</h3>
      <SettingsFields schema={schema} initial={defaultsOf(schema)} draft={draft} errors={errors} onChange={(field, value) => setDraft((d) => ({ ...d, [field]: value }))} />
      <EnvEditor rows={env} onChange={setEnv} error={errors.env} />
      <div class="toolbar">
        <button type="submit" disabled={busy}>
          Deploy
        </button>
        {busy && <span class="muted">Checking the code and storing version 1…</span>}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

import { useEffect, useState } from "preact/hooks";
import { ApiFailure, api, type FunctionDetail, fnPath, installing, type Settings } from "./api";
import { CodeEditor } from "./editor";
import { InvokePanel } from "./invoke";
import { Schedules } from "./jobs";
import { LiveLog } from "./live-log";
import { Metrics } from "./metrics";
import { PackageState } from "./packages";
import { type SettingsSchema, settingsSchema } from "./schema";
import { changedSettings, EnvEditor, envOf, envRowsOf, SettingsFields } from "./settings-form";
import { messageOf } from "./util";
import { Versions } from "./versions";

export const TABS = ["code", "versions", "settings", "invoke", "log", "metrics", "schedules"] as const;
export type Tab = (typeof TABS)[number];

/** How often the page looks again while packages install. */
const POLL_MS = 2000;

/** One function: code, versions, settings, invoke panel, live log and metrics, one tab each. */
export function FunctionPage({ name, tab }: { name: string; tab: Tab }) {
  const [fn, setFn] = useState<FunctionDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    setError(null);
    api<FunctionDetail>(fnPath(name))
      .then(setFn)
      .catch((err: unknown) => setError(messageOf(err)));
  }, [name, reload]);

  // While a version's packages install, the page follows them.
  const waiting = fn !== null && (installing(fn.environment) || installing(fn.pending_version?.environment));
  useEffect(() => {
    if (!waiting) return;
    const timer = setTimeout(() => setReload((n) => n + 1), POLL_MS);
    return () => clearTimeout(timer);
  }, [waiting, fn]);

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!fn || fn.name !== name) return <p class="muted">Loading…</p>;
  const changed = () => setReload((n) => n + 1);
  return (
    <section>
      <div class="toolbar">
        <h2>
          {fn.name} <span class="muted">v{fn.version}</span>
        </h2>
        <span class="tag">{fn.runtime}</span>
        {fn.public && <span class="tag">public</span>}
        {fn.pending_version && <span class="tag">v{fn.pending_version.version} pending</span>}
      </div>
      <nav class="tabs" role="tablist">
        {TABS.map((t) => (
          <a key={t} role="tab" aria-selected={t === tab} class={t === tab ? "active" : ""} href={`#/fn/${fn.name}/${t}`}>
            {t}
          </a>
        ))}
      </nav>
      {tab === "code" && <CodeTab fn={fn} onSaved={changed} />}
      {tab === "versions" && <Versions fn={fn} onChanged={changed} />}
      {tab === "settings" && <SettingsTab fn={fn} onSaved={changed} />}
      {tab === "invoke" && <InvokePanel name={fn.name} />}
      {tab === "log" && <LiveLog name={fn.name} />}
      {tab === "metrics" && <Metrics name={fn.name} />}
      {tab === "schedules" && <Schedules name={fn.name} />}
    </section>
  );
}

/** What a save did: a new current version, or one pending while its packages install. */
function savedNote(saved: FunctionDetail): string {
  return saved.pending_version
    ? `Saved as v${saved.pending_version.version}: pending until its packages are ready; v${saved.version} keeps serving.`
    : `Saved as v${saved.version}.`;
}

function CodeTab({ fn, onSaved }: { fn: FunctionDetail; onSaved: () => void }) {
  const [code, setCode] = useState(fn.code);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  useEffect(() => setCode(fn.code), [fn.code, fn.version]);

  const save = async () => {
    setError(null);
    try {
      setNote(savedNote(await api<FunctionDetail>(fnPath(fn.name), { method: "PUT", json: { code } })));
      onSaved();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <div>
      <CodeEditor value={code} runtime={fn.runtime} onChange={setCode} label={`Code of ${fn.name}`} />
      <div class="toolbar">
        <button onClick={() => void save()} disabled={code === fn.code}>
          Save as v{(fn.pending_version?.version ?? fn.version) + 1}
        </button>
        {note && <span class="muted">{note}</span>}
        {error && (
          <span class="error" role="alert">
            {error}
          </span>
        )}
      </div>
    </div>
  );
}

/** The settings as the API shows them, by API name (what the form starts from and compares with). */
const settingsOf = (fn: FunctionDetail, schema: SettingsSchema): Settings =>
  Object.fromEntries(Object.keys(schema.properties).map((name) => [name, fn[name]]));

/** Every setting editable, saved as a new version; the packages' state; deleting the function. */
function SettingsTab({ fn, onSaved }: { fn: FunctionDetail; onSaved: () => void }) {
  const [schema, setSchema] = useState<SettingsSchema | null>(null);
  const [draft, setDraft] = useState<Record<string, unknown>>({});
  const [env, setEnv] = useState(() => envRowsOf(fn.env));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    settingsSchema().then(setSchema, (err: unknown) => setError(messageOf(err)));
  }, []);
  // A new version (saved here or elsewhere) is what the form starts from again.
  useEffect(() => {
    setDraft({});
    setEnv(envRowsOf(fn.env));
  }, [fn.version, fn.pending_version?.version]);

  if (!schema) return error ? <p class="error" role="alert">{error}</p> : <p class="muted">Loading…</p>;
  const current = settingsOf(fn, schema);
  const { changed, errors: local } = changedSettings(draft, current);
  const sentEnv = envOf(env);
  const envChanged = JSON.stringify(sentEnv) !== JSON.stringify(fn.env);

  const save = async (event: Event) => {
    event.preventDefault();
    setErrors(local);
    setError(null);
    setNote(null);
    if (Object.keys(local).length > 0) return;
    setBusy(true);
    try {
      const saved = await api<FunctionDetail>(fnPath(fn.name), { method: "PUT", json: { ...changed, ...(envChanged ? { env: sentEnv } : {}) } });
      setNote(savedNote(saved));
      onSaved();
    } catch (err) {
      const byField = err instanceof ApiFailure ? err.fieldErrors() : {};
      setErrors(byField);
      // A problem no field of the form shows (the body as a whole, say) is said below it.
      if (Object.keys(byField).some((field) => !(field in schema.properties))) {
        setError(messageOf(err));
        return;
      }
      if (Object.keys(byField).length === 0) setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!confirm(`Delete the function ${fn.name} and all its versions? Its invocation log stays.`)) return;
    try {
      await api(fnPath(fn.name), { method: "DELETE" });
      location.hash = "#/";
    } catch (err) {
      setError(messageOf(err));
    }
  };

  const dirty = Object.keys(changed).length > 0 || envChanged;
  return (
    <div class="settings">
      <PackageState fn={fn} />
      <form class="card" onSubmit={save} noValidate data-testid="settings-form">
        <p class="muted">
          Runtime {fn.runtime}; created {new Date(fn.created_at).toLocaleString()}, v{fn.version} stored {new Date(fn.updated_at).toLocaleString()}.
          A change is stored as a new version.
        </p>
        <SettingsFields schema={schema} initial={current} draft={draft} errors={errors} onChange={(field, value) => setDraft((d) => ({ ...d, [field]: value }))} />
        <EnvEditor rows={env} onChange={setEnv} error={errors.env} />
        <div class="toolbar">
          <button type="submit" disabled={busy || !dirty}>
            Save as v{(fn.pending_version?.version ?? fn.version) + 1}
          </button>
          {note && (
            <span class="muted" data-testid="saved-note">
              {note}
            </span>
          )}
        </div>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
      <section class="card danger">
        <h3>Delete</h3>
        <p class="muted">Removes the function and its versions; its invocation log stays queryable.</p>
        <button type="button" class="danger" onClick={() => void remove()}>
          Delete {fn.name}
        </button>
      </section>
    </div>
  );
}

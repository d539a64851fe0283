import { useEffect, useState } from "preact/hooks";
import { api, fnPath, type FunctionDetail } from "./api";
import { CodeEditor } from "./editor";
import { InvokePanel } from "./invoke";
import { LiveLog } from "./live-log";
import { Metrics } from "./metrics";
import { messageOf } from "./util";
import { Versions } from "./versions";

export const TABS = ["code", "versions", "settings", "invoke", "log", "metrics"] as const;
export type Tab = (typeof TABS)[number];

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

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!fn || fn.name !== name) return <p class="muted">Loading…</p>;
  return (
    <section>
      <div class="toolbar">
        <h2>
          {fn.name} <span class="muted">v{fn.version}</span>
        </h2>
        <span class="tag">{fn.runtime}</span>
        {fn.public && <span class="tag">public</span>}
      </div>
      <nav class="tabs" role="tablist">
        {TABS.map((t) => (
          <a key={t} role="tab" aria-selected={t === tab} class={t === tab ? "active" : ""} href={`#/fn/${fn.name}/${t}`}>
            {t}
          </a>
        ))}
      </nav>
      {tab === "code" && <CodeTab fn={fn} onSaved={() => setReload((n) => n + 1)} />}
      {tab === "versions" && <Versions fn={fn} onChanged={() => setReload((n) => n + 1)} />}
      {tab === "settings" && <Settings fn={fn} />}
      {tab === "invoke" && <InvokePanel name={fn.name} />}
      {tab === "log" && <LiveLog name={fn.name} />}
      {tab === "metrics" && <Metrics name={fn.name} />}
    </section>
  );
}

function CodeTab({ fn, onSaved }: { fn: FunctionDetail; onSaved: () => void }) {
  const [code, setCode] = useState(fn.code);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setCode(fn.code), [fn.code, fn.version]);

  const save = async () => {
    setError(null);
    try {
      await api(fnPath(fn.name), { method: "PUT", json: { code } });
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
          Save as v{fn.version + 1}
        </button>
        {error && <span class="error" role="alert">{error}</span>}
      </div>
    </div>
  );
}

function Settings({ fn }: { fn: FunctionDetail }) {
  const rows: [string, string][] = [
    ["runtime", fn.runtime],
    ["timeout", `${fn.timeout_ms} ms`],
    ["memory", `${fn.memory_mb} MB`],
    ["network", fn.network ? "on" : "off"],
    ["public", fn.public ? "yes" : "no"],
    ["max concurrency", fn.max_concurrency === null ? "gateway limit" : String(fn.max_concurrency)],
    ["created", new Date(fn.created_at).toLocaleString()],
    ["updated", new Date(fn.updated_at).toLocaleString()],
  ];
  const env = Object.entries(fn.env);
  return (
    <div class="settings">
      <table>
        <tbody>
          {rows.map(([k, v]) => (
            <tr key={k}>
              <th>{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Environment</h3>
      {env.length === 0 ? (
        <p class="muted">No variables.</p>
      ) : (
        <table data-testid="env">
          <tbody>
            {env.map(([k, v]) => (
              <tr key={k}>
                <th class="mono">{k}</th>
                <td class="mono">{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="muted">Values are masked by the API; they are set inside the sandbox only.</p>
    </div>
  );
}

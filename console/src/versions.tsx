import { diffLines } from "diff";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, fnPath, type FunctionDetail, type FunctionVersion } from "./api";
import { messageOf } from "./util";

/** Every version, a line diff between two of them, and a rollback to any older one. */
export function Versions({ fn, onChanged }: { fn: FunctionDetail; onChanged: () => void }) {
  const [versions, setVersions] = useState<FunctionVersion[] | null>(null);
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api<{ items: FunctionVersion[] }>(`${fnPath(fn.name)}/versions`)
      .then(({ items }) => {
        setVersions(items);
        setTo(items[0]?.version ?? null);
        setFrom(items[1]?.version ?? items[0]?.version ?? null);
      })
      .catch((err: unknown) => setError(messageOf(err)));
  }, [fn.name, fn.version]);

  const parts = useMemo(() => {
    const a = versions?.find((v) => v.version === from);
    const b = versions?.find((v) => v.version === to);
    return a && b ? diffLines(a.code, b.code) : [];
  }, [versions, from, to]);

  const rollback = async (version: number) => {
    if (!confirm(`Restore version ${version} as a new version?`)) return;
    try {
      await api(`${fnPath(fn.name)}/rollback`, { method: "POST", json: { version } });
      onChanged();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!versions) return <p class="muted">Loading…</p>;
  const picker = (value: number | null, set: (v: number) => void, label: string) => (
    <label>
      {label}
      <select name={label} value={value ?? ""} onChange={(e) => set(Number(e.currentTarget.value))}>
        {versions.map((v) => (
          <option key={v.version} value={v.version}>
            v{v.version}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <section>
      <ul class="versions">
        {versions.map((v) => (
          <li key={v.version}>
            <strong>v{v.version}</strong> <span class="muted">{v.created_at ? new Date(v.created_at).toLocaleString() : ""}</span>
            {v.version === fn.version ? (
              <span class="tag">current</span>
            ) : (
              <button class="small" data-version={v.version} onClick={() => void rollback(v.version)}>
                Roll back to v{v.version}
              </button>
            )}
          </li>
        ))}
      </ul>
      <div class="toolbar">
        {picker(from, setFrom, "from")}
        {picker(to, setTo, "to")}
      </div>
      <pre class="diff" data-testid="diff">
        {parts.map((part, i) => (
          <span key={i} class={part.added ? "added" : part.removed ? "removed" : "same"}>
            {part.value
              .replace(/\n$/, "")
              .split("\n")
              .map((line) => `${part.added ? "+" : part.removed ? "-" : " "} ${line}\n`)
              .join("")}
          </span>
        ))}
      </pre>
    </section>
  );
}

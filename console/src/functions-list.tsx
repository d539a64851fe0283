import { useEffect, useState } from "preact/hooks";
import { api, type FunctionDetail, fnPath, type FunctionSummary, type Invocation, type Page, type Stats } from "./api";
import { runProblem } from "./packages";
import { ago, messageOf, statusClass } from "./util";

interface Row extends FunctionSummary {
  last?: Invocation | null;
  stats?: Stats | null;
  /** Why the function (or its pending version) cannot run as it stands; null when nothing stands in its way. */
  problem?: string | null;
}

const STATS_WINDOW = "24h";

/** Every function with its last invocation and its error rate over the last 24 h. */
export function FunctionsList() {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    const load = async () => {
      const { items } = await api<{ items: FunctionSummary[] }>("/api/functions", { signal: abort.signal });
      setRows(items);
      const detailed = await Promise.all(
        items.map(async (fn): Promise<Row> => {
          const [page, stats, detail] = await Promise.all([
            api<Page<Invocation>>(`/api/invocations?function=${encodeURIComponent(fn.name)}&limit=1`, { signal: abort.signal }),
            api<Stats>(`${fnPath(fn.name)}/stats?window=${STATS_WINDOW}`, { signal: abort.signal }),
            api<FunctionDetail>(fnPath(fn.name), { signal: abort.signal }),
          ]);
          return { ...fn, last: page.items[0] ?? null, stats, problem: runProblem(detail) };
        }),
      );
      setRows(detailed);
    };
    load().catch((err: unknown) => {
      if (!abort.signal.aborted) setError(messageOf(err));
    });
    return () => abort.abort();
  }, []);

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!rows) return <p class="muted">Loading…</p>;
  return (
    <section>
      <div class="toolbar">
        <h2>Functions</h2>
        <a class="button" href="#/new">
          New function
        </a>
      </div>
      {rows.length === 0 ? (
        <p class="muted">No functions yet.</p>
      ) : (
        <div class="table-scroll">
          <table class="functions">
            <thead>
              <tr>
                <th>Name</th>
                <th>Runtime</th>
                <th>Version</th>
                <th>Last invocation</th>
                <th>Errors ({STATS_WINDOW})</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.name}>
                  <td>
                    <a href={`#/fn/${row.name}`}>{row.name}</a>
                    {row.public && <span class="tag">public</span>}
                    {row.problem && (
                      <a class="tag warn" href={`#/fn/${row.name}/settings`} data-testid="problem">
                        {row.problem}
                      </a>
                    )}
                  </td>
                  <td>{row.runtime}</td>
                  <td>v{row.version}</td>
                  <td>
                    {row.last === undefined ? "…" : row.last === null ? <span class="muted">never</span> : (
                      <span>
                        <span class={`status ${statusClass(row.last.status)}`}>{row.last.status}</span> {ago(row.last.started_at)}
                      </span>
                    )}
                  </td>
                  <td>{errorRate(row.stats)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function errorRate(stats: Stats | null | undefined): string {
  if (stats === undefined) return "…";
  if (!stats || stats.count === 0) return "–";
  const failed = stats.errors + stats.timeouts;
  return `${((100 * failed) / stats.count).toFixed(1)}% (${failed}/${stats.count})`;
}

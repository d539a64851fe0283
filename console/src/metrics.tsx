import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, fnPath, type Invocation, type Page, type Stats } from "./api";
import { messageOf, ms, percentile } from "./util";

const WINDOWS: Record<string, number> = { "15m": 15 * 60_000, "1h": 3600_000, "6h": 6 * 3600_000, "24h": 24 * 3600_000, "7d": 7 * 24 * 3600_000 };
const BUCKETS = 30;
/** Rows read for the plot: at most this many pages of 500. */
const MAX_PAGES = 4;

type Series = [number[], (number | null)[], (number | null)[], number[], number[]];

/** Buckets the window's invocations: p50/p95 of those that ran, and ok vs failed counts. */
function bucketize(items: Invocation[], since: number, windowMs: number): Series {
  const width = windowMs / BUCKETS;
  const durations: number[][] = Array.from({ length: BUCKETS }, () => []);
  const ok = new Array<number>(BUCKETS).fill(0);
  const failed = new Array<number>(BUCKETS).fill(0);
  for (const item of items) {
    const index = Math.min(BUCKETS - 1, Math.floor((Date.parse(item.started_at) - since) / width));
    if (index < 0) continue;
    if (item.status === "ok") ok[index]! += 1;
    else if (item.status !== "running") failed[index]! += 1;
    if (item.duration_ms !== null && !["rejected", "interrupted", "client_closed", "running"].includes(item.status)) durations[index]!.push(item.duration_ms);
  }
  const sorted = durations.map((d) => d.sort((a, b) => a - b));
  const times = Array.from({ length: BUCKETS }, (_, i) => (since + (i + 0.5) * width) / 1000);
  return [times, sorted.map((d) => percentile(d, 50)), sorted.map((d) => percentile(d, 95)), ok, failed];
}

async function load(name: string, windowMs: number, signal: AbortSignal): Promise<Invocation[]> {
  const since = new Date(Date.now() - windowMs).toISOString();
  const items: Invocation[] = [];
  let cursor: string | null = "";
  for (let page = 0; page < MAX_PAGES && cursor !== null; page++) {
    const result: Page<Invocation> = await api<Page<Invocation>>(
      `/api/invocations?function=${encodeURIComponent(name)}&since=${encodeURIComponent(since)}&limit=500&cursor=${encodeURIComponent(cursor)}`,
      { signal },
    );
    items.push(...result.items);
    cursor = result.next_cursor;
  }
  return items;
}

/** p50/p95 latency and status counts over a chosen window (uPlot), with the gateway's own stats above. */
export function Metrics({ name }: { name: string }) {
  const [windowName, setWindowName] = useState("1h");
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [empty, setEmpty] = useState(false);
  const target = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    const windowMs = WINDOWS[windowName] ?? 3600_000;
    let plot: uPlot | null = null;
    const since = Date.now() - windowMs;
    Promise.all([api<Stats>(`${fnPath(name)}/stats?window=${windowName}`, { signal: abort.signal }), load(name, windowMs, abort.signal)])
      .then(([summary, items]) => {
        setStats(summary);
        // Nothing to plot: say so, rather than draw flat lines at zero.
        setEmpty(items.length === 0);
        const el = target.current;
        if (!el || abort.signal.aborted || items.length === 0) return;
        const width = Math.max(280, el.clientWidth);
        plot = new uPlot(
          {
            width,
            height: 260,
            scales: { ms: { auto: true }, n: { auto: true } },
            // Each series named with its colour from the start; values show while the pointer is over the plot.
            legend: { live: true, markers: { width: 3 } },
            series: [
              {},
              { label: "p50", scale: "ms", stroke: "#2563eb", width: 2, spanGaps: true, points: { show: true, size: 5 }, value: (_u, v) => ms(v) },
              { label: "p95", scale: "ms", stroke: "#9333ea", width: 2, spanGaps: true, points: { show: true, size: 5 }, value: (_u, v) => ms(v) },
              { label: "ok", scale: "n", stroke: "#16a34a", fill: "rgba(22,163,74,0.12)" },
              { label: "failed", scale: "n", stroke: "#dc2626", fill: "rgba(220,38,38,0.12)" },
            ],
            axes: [{}, { scale: "ms", label: "ms" }, { scale: "n", side: 1, label: "count", grid: { show: false } }],
          },
          bucketize(items, since, windowMs),
          el,
        );
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setError(messageOf(err));
      });
    return () => {
      abort.abort();
      plot?.destroy();
    };
  }, [name, windowName]);

  return (
    <section class="metrics">
      <div class="toolbar">
        <label>
          Window
          <select name="window" value={windowName} onChange={(e) => setWindowName(e.currentTarget.value)}>
            {Object.keys(WINDOWS).map((w) => (
              <option key={w}>{w}</option>
            ))}
          </select>
        </label>
        {stats && (
          <span class="muted" data-testid="stats">
            {stats.count} invocations · p50 {ms(stats.p50)} · p95 {ms(stats.p95)} · {stats.errors} errors · {stats.timeouts} timeouts
          </span>
        )}
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {empty && (
        <p class="muted chart-empty" data-testid="chart-empty">
          No invocations in the last {windowName}.
        </p>
      )}
      <div ref={target} class="chart" data-testid="chart" hidden={empty} />
    </section>
  );
}

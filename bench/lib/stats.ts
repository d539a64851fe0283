/** What one case measured. Latencies in ms, throughput in completions per second. */
export interface Figures {
  count: number;
  sent: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
  throughput: number;
  wallMs: number;
  /** Answers by status code (HTTP), or exit0/failed (bare spawns). */
  statuses: Record<string, number>;
  non2xx: number;
  fiveXX: number;
  /** Connection errors and timeouts (HTTP), failed exits (bare spawns). */
  errors: number;
}

/** Nearest-rank quantile of ascending `sorted`. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function summarise(
  latencies: number[],
  wallMs: number,
  extra: { statuses: Record<string, number>; errors: number; sent: number },
): Figures {
  const sorted = [...latencies].sort((a, b) => a - b);
  const httpCodes = Object.entries(extra.statuses).filter(([code]) => /^\d{3}$/.test(code));
  const count = (test: (code: number) => boolean) => httpCodes.reduce((sum, [code, n]) => sum + (test(Number(code)) ? n : 0), 0);
  return {
    count: sorted.length,
    sent: extra.sent,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    mean: sorted.reduce((sum, v) => sum + v, 0) / Math.max(1, sorted.length),
    max: sorted.at(-1) ?? Number.NaN,
    throughput: (sorted.length * 1000) / wallMs,
    wallMs,
    statuses: extra.statuses,
    non2xx: count((code) => code < 200 || code > 299),
    fiveXX: count((code) => code >= 500),
    errors: extra.errors,
  };
}

/** A fixed-width text table; numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map((row) => line(row.map(String)))].join("\n");
}

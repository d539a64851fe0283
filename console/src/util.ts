import type { Status } from "./api";

export const ago = (iso: string): string => {
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
};

export const ms = (value: number | null | undefined): string => (value === null || value === undefined ? "–" : `${Math.round(value * 10) / 10} ms`);

export const statusClass = (status: Status): string => (status === "ok" ? "ok" : status === "running" ? "running" : "bad");

/** Nearest-rank percentile, as the gateway's stats compute it. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? null;
}

export { explain as messageOf } from "./api";

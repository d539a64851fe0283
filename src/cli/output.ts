// How the command-line tool writes: aligned tables and key/value blocks for people, the API's JSON
// for scripts (--json), and a progress line on stderr only when stderr is a terminal.
import Table from "cli-table3";

/** Borderless, uncoloured: columns separated by two spaces, so the output greps and reads alike. */
const PLAIN = {
  chars: {
    top: "",
    "top-mid": "",
    "top-left": "",
    "top-right": "",
    bottom: "",
    "bottom-mid": "",
    "bottom-left": "",
    "bottom-right": "",
    left: "",
    "left-mid": "",
    mid: "",
    "mid-mid": "",
    right: "",
    "right-mid": "",
    middle: "  ",
  },
  style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
};

export type Cell = string | number | boolean | null | undefined;

const show = (cell: Cell): string => (cell === null || cell === undefined ? "-" : String(cell));

/** An aligned table with a header row; trailing spaces trimmed. */
export function table(head: string[], rows: Cell[][]): string {
  const t = new Table({ head, ...PLAIN });
  for (const row of rows) t.push(row.map(show));
  return t
    .toString()
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n");
}

/** `key  value` lines with the keys padded to one width. */
export function keyValues(pairs: Array<[string, Cell]>): string {
  const width = Math.max(...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `${key.padEnd(width)}  ${show(value)}`).join("\n");
}

export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** How long a request may take before the progress line appears ("more than a moment"). */
const PROGRESS_DELAY_MS = 400;

/**
 * Shows `text…` on stderr if the work is still going after a moment, and only when stderr is a
 * terminal (a script's captured stderr stays clean). Returns the function that clears it.
 */
export function progress(text: string): () => void {
  if (!process.stderr.isTTY) return () => {};
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    process.stderr.write(`\r\x1b[K${text}…`);
  }, PROGRESS_DELAY_MS);
  timer.unref();
  return () => {
    clearTimeout(timer);
    if (shown) process.stderr.write("\r\x1b[K");
  };
}

/** Like `progress`, for work whose line changes as it goes (bytes downloaded). */
export function liveProgress(): { update(text: string): void; done(): void } {
  if (!process.stderr.isTTY) return { update() {}, done() {} };
  const started = Date.now();
  let shown = false;
  return {
    update(text) {
      if (Date.now() - started < PROGRESS_DELAY_MS) return;
      shown = true;
      process.stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (shown) process.stderr.write("\r\x1b[K");
    },
  };
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

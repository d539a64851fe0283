// logs (and logs -f) and stats: the invocation log.
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, InvalidArgumentError, Option } from "commander";
import { EventSourceParserStream } from "eventsource-parser/stream";
import { INVOCATION_STATUSES } from "../core/statuses.js";
import { CliError, checkName, EXIT, type GatewayClient, usageError } from "./client.js";
import { contextOf, positiveInteger } from "./context.js";
import { type JobJson, printJob } from "./jobs.js";
import { type Cell, keyValues, note, printJson, printLine, table } from "./output.js";

/** One item of GET /api/invocations. */
export interface InvocationJson {
  id: string;
  function: string;
  version: number;
  status: string;
  http_status: number | null;
  started_at: string;
  duration_ms: number | null;
  error: string | null;
  blocked_syscall: string | null;
}

/** GET /api/invocations/:id: the item with its output. */
interface InvocationDetailJson extends InvocationJson {
  exit_code: number | null;
  signal: string | null;
  method: string;
  path: string;
  request_bytes: number;
  response_bytes: number | null;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  stdout_dropped_bytes?: number;
  stderr_dropped_bytes?: number;
}

/** Invocation ids are UUIDs; a function name never has this shape in practice, so `logs <id>` can tell them apart. */
const INVOCATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Prints one invocation: its row, then its stdout and stderr, each under a line saying what was kept. */
export function printInvocation(row: InvocationDetailJson, write: (text: string) => void): void {
  write(
    `${keyValues([
      ["id", row.id],
      ["function", `${row.function} (version ${row.version})`],
      ["request", `${row.method} ${row.path} (${row.request_bytes} bytes)`],
      ["started_at", row.started_at],
      ["status", row.status],
      ["http", row.http_status],
      ["duration", row.duration_ms === null ? null : `${Math.round(row.duration_ms * 10) / 10} ms`],
      ["exit", row.signal ? `signal ${row.signal}` : row.exit_code],
      ["error", row.blocked_syscall ? `blocked ${row.blocked_syscall}` : row.error],
    ])}\n`,
  );
  for (const stream of ["stdout", "stderr"] as const) {
    const text = row[stream];
    const dropped = row[`${stream}_dropped_bytes`] ?? 0;
    const notes = [
      dropped > 0 ? `${dropped} bytes dropped between its head and its tail` : null,
      row[`${stream}_truncated`] && dropped === 0 ? "truncated" : null,
    ].filter(Boolean);
    write(`--- ${stream}${notes.length > 0 ? ` (${notes.join("; ")})` : ""}${text === "" ? ": empty" : ""} ---\n`);
    if (text !== "") write(text.endsWith("\n") ? text : `${text}\n`);
  }
}

async function inspect(id: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  if (!/^[\w-]{1,64}$/.test(id)) throw usageError(`'${id}' is not an invocation id`);
  const row = await client.json<InvocationDetailJson | JobJson>(`/api/invocations/${id}`);
  if (json) return printJson(row);
  // An asynchronous invocation's id names its job: its state, attempts and answer.
  if ("kind" in row && row.kind === "job") return printJob(row, (text) => process.stdout.write(text));
  printInvocation(row as InvocationDetailJson, (text) => process.stdout.write(text));
}

interface Page {
  items: InvocationJson[];
  next_cursor: string | null;
}

interface LogsFlags {
  status?: string;
  since?: string;
  limit?: number;
  follow?: boolean;
}

const UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since 30m` (ago, in s/m/h/d) becomes an instant; anything else goes to the gateway as given (ISO 8601). */
function since(value: string): string {
  const relative = /^(\d{1,9})([smhd])$/.exec(value);
  if (!relative) {
    if (Number.isNaN(Date.parse(value)))
      throw new InvalidArgumentError("must be an ISO 8601 instant (2025-01-31T12:00:00Z) or a span ago such as 30m, 2h, 7d");
    return value;
  }
  return new Date(Date.now() - Number(relative[1]) * UNITS_MS[relative[2] as keyof typeof UNITS_MS]).toISOString();
}

const HEAD = ["STARTED", "ID", "FUNCTION", "VERSION", "STATUS", "HTTP", "DURATION_MS", "ERROR"];
const rowOf = (i: InvocationJson): Cell[] => [
  i.started_at,
  i.id,
  i.function,
  i.version,
  i.status,
  i.http_status,
  i.duration_ms === null ? null : Math.round(i.duration_ms),
  i.blocked_syscall ? `blocked ${i.blocked_syscall}` : i.error,
];

/** Streamed rows cannot be aligned after the fact: fixed widths for the columns that vary little. */
const WIDTHS = [24, 36, 20, 7, 11, 4, 11];
const fixedLine = (cells: Cell[]): string =>
  cells
    .map((cell, index) => String(cell ?? "-").padEnd(WIDTHS[index] ?? 0))
    .join("  ")
    .trimEnd();

async function logs(name: string | undefined, flags: LogsFlags, command: Command): Promise<void> {
  if (name !== undefined && INVOCATION_ID.test(name)) {
    if (flags.follow || flags.status || flags.since || flags.limit) throw usageError("an invocation id takes no filter: fngw logs <id>");
    return inspect(name, flags, command);
  }
  const { client, json } = contextOf(command);
  const filter = { function: name === undefined ? undefined : checkName(name), status: flags.status };
  if (flags.follow) return follow(client, filter, flags, json);
  const page = await client.json<Page>("/api/invocations", { query: { ...filter, since: flags.since, limit: flags.limit } });
  if (json) return printJson(page);
  if (page.items.length === 0) return printLine("no invocations");
  printLine(table(HEAD, page.items.map(rowOf)));
  if (page.next_cursor !== null) note(`(newest ${page.items.length} shown; --limit up to 500 shows more)`);
}

/** How long `logs -f` keeps trying to reconnect to a gateway that went away. */
const RECONNECT_FOR_MS = 30_000;

/**
 * Prints what is in the log (oldest first), then every invocation as it finishes, from the
 * gateway's event stream. If the stream drops, it reconnects and catches up with `?after=<id>`,
 * so nothing is missed or printed twice. Ends only when interrupted, or when the gateway stays
 * away (exit 3) or refuses (exit 1 or 4).
 */
async function follow(
  client: GatewayClient,
  filter: { function?: string; status?: string },
  flags: LogsFlags,
  json: boolean,
): Promise<void> {
  const seen = new Set<string>();
  let lastId: string | null = null;
  let unreachableSince: number | null = null;
  const print = (item: InvocationJson) => {
    if (seen.has(item.id)) return;
    seen.add(item.id);
    if (seen.size > 10_000) seen.delete(seen.values().next().value as string);
    lastId = item.id;
    printLine(json ? JSON.stringify(item) : fixedLine(rowOf(item)));
  };

  for (;;) {
    let stream: Response;
    try {
      stream = await client.send("/api/invocations/stream", { query: filter, headers: new Headers({ accept: "text/event-stream" }) });
    } catch (error) {
      if (!(error instanceof CliError) || error.exitCode !== EXIT.unreachable) throw error;
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > RECONNECT_FOR_MS) throw error;
      await sleep(1000);
      continue;
    }
    unreachableSince = null;
    if (stream.status === 404)
      throw new CliError(
        EXIT.failed,
        "this gateway has no invocation stream (GET /api/invocations/stream answered 404): upgrade it to follow the log",
      );
    await client.expectOk(stream);
    if (!stream.headers.get("content-type")?.startsWith("text/event-stream")) {
      throw new CliError(
        EXIT.failed,
        `the gateway's invocation stream answered ${stream.headers.get("content-type") ?? "no content type"}, not text/event-stream`,
      );
    }
    // The stream is open, so nothing finishing from now on is missed: catch up on what came before.
    if (lastId === null) {
      if (!json && seen.size === 0) printLine(fixedLine(HEAD));
      const page = await client.json<Page>("/api/invocations", { query: { ...filter, since: flags.since, limit: flags.limit ?? 20 } });
      for (const item of page.items.reverse()) print(item);
    } else {
      for (;;) {
        const page: Page = await client.json<Page>("/api/invocations", { query: { ...filter, after: lastId, limit: 500 } });
        for (const item of page.items) print(item);
        if (page.items.length < 500) break;
      }
    }
    try {
      const events = stream.body!.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
      for await (const event of events) {
        if (event.event === "invocation") print(JSON.parse(event.data) as InvocationJson);
      }
    } catch {
      // The connection dropped mid-stream: reconnect below like after a clean end.
    }
    await sleep(500);
  }
}

interface StatsJson {
  function: string;
  window: string;
  since: string;
  until: string;
  count: number;
  errors: number;
  timeouts: number;
  by_status: Record<string, number>;
  duration_ms: { p50: number | null; p95: number | null; p99: number | null; max: number | null; mean: number | null };
}

const ms = (value: number | null): string | null => (value === null ? null : `${Math.round(value * 10) / 10} ms`);

async function stats(name: string, flags: { window: string }, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const s = await client.json<StatsJson>(`/api/functions/${checkName(name)}/stats`, { query: { window: flags.window } });
  if (json) return printJson(s);
  const byStatus = Object.entries(s.by_status)
    .filter(([, count]) => count > 0)
    .map(([status, count]) => `${status}=${count}`)
    .join(" ");
  printLine(
    keyValues([
      ["function", s.function],
      ["window", `${s.window} (${s.since} .. ${s.until})`],
      ["count", s.count],
      ["errors", s.errors],
      ["timeouts", s.timeouts],
      ["by status", byStatus || "-"],
      ["p50", ms(s.duration_ms.p50)],
      ["p95", ms(s.duration_ms.p95)],
      ["p99", ms(s.duration_ms.p99)],
      ["max", ms(s.duration_ms.max)],
      ["mean", ms(s.duration_ms.mean)],
    ]),
  );
}

export function registerLogCommands(program: Command): void {
  program
    .command("logs")
    .description(
      "the invocation log, newest first (of one function if NAME is given); with an invocation id, that invocation and its output",
    )
    .argument("[name-or-id]")
    .addOption(new Option("--status <status>", "only this status").choices(INVOCATION_STATUSES))
    .option("--since <time>", "only since this ISO 8601 instant, or this long ago (30m, 2h, 7d)", since)
    .option("--limit <n>", "at most this many (the gateway allows up to 500; default 50, 20 with -f)", positiveInteger)
    .option("-f, --follow", "then print each invocation as it finishes (oldest first; --json: one JSON object per line)")
    .action(logs);
  program
    .command("inspect")
    .description("one invocation: its log row, then its stdout and stderr")
    .argument("<id>", "the invocation id (x-invocation-id of the answer, or from fngw logs)")
    .action(inspect);
  program
    .command("stats")
    .description("counts by status and duration percentiles of a function")
    .argument("<name>")
    .option("--window <window>", "how far back: <n>m, <n>h or <n>d", "24h")
    .action(stats);
}

// deploy, ls, show, versions, rollback, rm: the functions and their versions.
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, InvalidArgumentError, Option } from "commander";
import { RUNTIMES, type Runtime, SOURCE_EXTENSIONS } from "../core/runtimes.js";
import { CliError, checkName, EXIT, type GatewayClient, usageError } from "./client.js";
import { collect, contextOf, positiveInteger } from "./context.js";
import { scheduleLines } from "./jobs.js";
import { keyValues, liveProgress, note, printJson, printLine, table } from "./output.js";

/** The fields of GET /api/functions/:name (and of each version) the tool shows. */
export interface FunctionJson {
  name: string;
  version: number;
  runtime: string;
  timeout_ms: number;
  memory_mb: number;
  network: boolean;
  public: boolean;
  max_concurrency: number | null;
  env: Record<string, string>;
  code: string;
  created_at: string;
  updated_at?: string;
  packages?: string[];
  isolation?: string;
  retries?: number;
  max_event_age_s?: number;
  schedules?: { cron: string; timezone: string; enabled: boolean; overlap: string }[];
  environment?: EnvironmentJson | null;
  pending_version?: { version: number; packages: string[]; environment: EnvironmentJson | null } | null;
}

/** A version's package environment as the API shows it (null without packages). */
interface EnvironmentJson {
  state: "pending" | "building" | "ready" | "failed";
  error: string | null;
  output: string;
  lock: Record<string, string> | null;
}

interface FunctionSummary {
  name: string;
  runtime: string;
  version: number;
  public: boolean;
  updated_at: string;
}

const RUNTIME_BY_EXTENSION = new Map<string, Runtime>(
  RUNTIMES.flatMap((runtime) => SOURCE_EXTENSIONS[runtime].map((extension) => [extension, runtime] as const)),
);
const EXTENSIONS_SAID = RUNTIMES.map((runtime) => `${SOURCE_EXTENSIONS[runtime].join(", ")} (${runtime})`).join("; ");

interface DeployFlags {
  /** --no-wait: return once the version is stored, without waiting for its packages. */
  wait: boolean;
  name?: string;
  public?: boolean;
  network?: boolean;
  env?: Record<string, string>;
  timeout?: number;
  memory?: number;
  maxConcurrency?: number;
  packages?: string[];
  isolation?: string;
  schedule?: string[];
  tz?: string;
  retries?: number;
  maxEventAge?: number;
}

function nonNegativeInteger(value: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new InvalidArgumentError("must be a whole number");
  return Number(value);
}

function collectEnv(pair: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = pair.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`'${pair}' is not KEY=VALUE`);
  return { ...previous, [pair.slice(0, at)]: pair.slice(at + 1) };
}

/** The settings to send: only what was given, so an update keeps everything else. */
function settingsOf(flags: DeployFlags): Record<string, unknown> {
  const settings: Record<string, unknown> = {
    public: flags.public,
    network: flags.network,
    env: flags.env,
    timeout_ms: flags.timeout,
    memory_mb: flags.memory,
    max_concurrency: flags.maxConcurrency,
    packages: flags.packages,
    isolation: flags.isolation,
    schedules: flags.schedule?.map((cron) => ({ cron, timezone: flags.tz ?? "UTC" })),
    retries: flags.retries,
    max_event_age_s: flags.maxEventAge,
  };
  return Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined));
}

async function deploy(file: string, flags: DeployFlags, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const extension = path.extname(file).toLowerCase();
  const runtime = RUNTIME_BY_EXTENSION.get(extension);
  if (!runtime) throw usageError(`cannot tell the runtime of '${file}': name it ${EXTENSIONS_SAID}`);
  const name = checkName(flags.name ?? path.basename(file, path.extname(file)));
  let code: string;
  try {
    code = await fs.readFile(file, "utf8");
  } catch (error) {
    throw usageError(`cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (flags.tz !== undefined && flags.schedule === undefined) throw usageError("--tz goes with --schedule");
  const fields = { runtime, code, ...settingsOf(flags) };

  let answer = await client.send("/api/functions", { method: "POST", json: { name, ...fields }, waitingFor: `deploying ${name}` });
  if (answer.status === 409) {
    // The name exists: the same request as a new version.
    answer = await client.send(`/api/functions/${name}`, { method: "PUT", json: fields, waitingFor: `deploying ${name}` });
  }
  await client.expectOk(answer).catch((error: unknown) => {
    throw namingTheFile(error, file);
  });
  let fn = (await answer.json()) as FunctionJson;
  const unchanged = answer.headers.get("x-fngw-unchanged") === "1";
  // The version this deploy stands for: the pending one while its packages install, else the current one.
  const version = fn.pending_version?.version ?? fn.version;
  if (!json) {
    const what = unchanged ? "unchanged" : answer.status === 201 ? "created" : "updated";
    printLine(`${what} ${fn.name} (${fn.runtime}): version ${version}${unchanged ? " (the same code and settings are deployed)" : ""}`);
  }
  if (flags.wait) fn = await waitForPackages(client, fn, version);
  if (json) printJson(fn);
  const environment = environmentOf(fn, version);
  if (environment?.state === "failed") {
    if (!json && environment.output) note(`the installer's output (its end):\n${lastLines(environment.output, 20)}`);
    throw new CliError(
      EXIT.failed,
      `the packages of ${fn.name} version ${version} failed to install: ${environment.error ?? "unknown error"}`,
    );
  }
  if (!json && environment?.state === "ready" && environment.lock) printLine(`packages ready: ${lockLine(environment.lock)}`);
}

/** A syntax error as compilers print one: `file:line:column: message`. */
function namingTheFile(error: unknown, file: string): unknown {
  if (!(error instanceof CliError) || error.apiError?.code !== "syntax_error") return error;
  const { line, column, message } = error.apiError;
  const place = [file, line, column].filter((part) => part !== null && part !== undefined).join(":");
  const what = message.replace(/^code: /, "").replace(/ at line \d+(, column \d+)?$/, "");
  return new CliError(error.exitCode, `${place}: ${what}`, error.apiError);
}

/** The environment of `version` as `fn` shows it: the current one's or the pending one's; undefined when neither is it. */
function environmentOf(fn: FunctionJson, version: number): EnvironmentJson | null | undefined {
  if (fn.pending_version?.version === version) return fn.pending_version.environment;
  if (fn.version === version) return fn.environment ?? null;
  return undefined;
}

const POLL_MS = 1000;

/**
 * Polls the function until `version`'s packages are installed (or failed), with a progress line on
 * a terminal. Returns the function as last seen; a later deploy that replaces the version ends the wait.
 */
async function waitForPackages(client: GatewayClient, first: FunctionJson, version: number): Promise<FunctionJson> {
  let fn = first;
  const started = Date.now();
  const line = liveProgress();
  let shown: string | null = null;
  try {
    for (;;) {
      const environment = environmentOf(fn, version);
      if (!environment || environment.state === "ready" || environment.state === "failed") return fn;
      const what = `installing the packages of ${fn.name} version ${version}: ${environment.state}`;
      // A terminal gets a line that counts the seconds; a script's stderr, one line per state.
      if (!process.stderr.isTTY && what !== shown) note(what);
      shown = what;
      line.update(`${what}, ${Math.round((Date.now() - started) / 1000)} s`);
      await sleep(POLL_MS);
      fn = await client.json<FunctionJson>(`/api/functions/${fn.name}`);
    }
  } finally {
    line.done();
  }
}

const lockLine = (lock: Record<string, string>) =>
  Object.entries(lock)
    .map(([name, version]) => `${name} ${version}`)
    .join(", ");

function lastLines(text: string, count: number): string {
  return text.trimEnd().split("\n").slice(-count).join("\n");
}

/** One line for a version's packages: the list and the environment's state (the error when it failed). */
function packagesLine(packages: string[], environment: EnvironmentJson | null | undefined): string {
  if (packages.length === 0) return "-";
  const list = packages.join(" ");
  if (!environment) return list;
  if (environment.state === "failed") return `${list} (failed: ${environment.error ?? "unknown error"})`;
  if (environment.state === "ready" && environment.lock) return `${list} (ready: ${lockLine(environment.lock)})`;
  return `${list} (${environment.state})`;
}

async function list(_flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const page = await client.json<{ items: FunctionSummary[] }>("/api/functions");
  if (json) return printJson(page);
  if (page.items.length === 0) return printLine("no functions");
  printLine(
    table(
      ["NAME", "RUNTIME", "VERSION", "PUBLIC", "UPDATED"],
      page.items.map((f) => [f.name, f.runtime, f.version, f.public, f.updated_at]),
    ),
  );
}

async function showFunction(name: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const fn = await client.json<FunctionJson>(`/api/functions/${checkName(name)}`);
  if (json) return printJson(fn);
  const env = Object.keys(fn.env);
  printLine(
    keyValues([
      ["name", fn.name],
      ["version", fn.version],
      ["runtime", fn.runtime],
      ["public", fn.public],
      ["network", fn.network],
      ["timeout_ms", fn.timeout_ms],
      ["memory_mb", fn.memory_mb],
      ["max_concurrency", fn.max_concurrency],
      ...(fn.isolation !== undefined ? [["isolation", fn.isolation] as [string, string]] : []),
      ...(fn.packages !== undefined ? [["packages", packagesLine(fn.packages, fn.environment)] as [string, string]] : []),
      ...(fn.pending_version
        ? [
            [
              "pending",
              `version ${fn.pending_version.version}, current once its packages are ready: ${packagesLine(fn.pending_version.packages, fn.pending_version.environment)}`,
            ] as [string, string],
          ]
        : []),
      ...(fn.retries !== undefined ? [["retries", fn.retries] as [string, number]] : []),
      ...(fn.max_event_age_s !== undefined ? [["max_event_age_s", fn.max_event_age_s] as [string, number]] : []),
      ...(fn.schedules && fn.schedules.length > 0 ? await scheduleLines(client, fn.name) : []),
      ["env", env.length > 0 ? env.join(" ") : "-"],
      ["created_at", fn.created_at],
      ["updated_at", fn.updated_at],
    ]),
  );
  printLine("");
  process.stdout.write(fn.code.endsWith("\n") ? fn.code : `${fn.code}\n`);
}

async function versions(name: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const page = await client.json<{ name: string; items: FunctionJson[] }>(`/api/functions/${checkName(name)}/versions`);
  if (json) return printJson(page);
  const rows = page.items.map((v, index) => [
    v.version,
    index === 0 ? "current" : "",
    v.runtime,
    v.timeout_ms,
    v.memory_mb,
    v.network,
    v.public,
    v.created_at,
  ]);
  printLine(table(["VERSION", "", "RUNTIME", "TIMEOUT_MS", "MEMORY_MB", "NETWORK", "PUBLIC", "CREATED"], rows));
}

async function rollback(name: string, version: number, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const fn = await client.json<FunctionJson>(`/api/functions/${checkName(name)}/rollback`, {
    method: "POST",
    json: { version },
    waitingFor: `rolling ${name} back`,
  });
  if (json) return printJson(fn);
  printLine(`rolled ${fn.name} back to version ${version}: now version ${fn.version}`);
}

async function remove(name: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  await client.json<undefined>(`/api/functions/${checkName(name)}`, { method: "DELETE" });
  if (json) return printJson({ removed: name });
  printLine(`removed ${name} (its invocation log stays)`);
}

export function registerFunctionCommands(program: Command): void {
  program
    .command("deploy")
    .description(`create a function from FILE, or add a version when it exists (runtime from the extension: ${EXTENSIONS_SAID})`)
    .argument("<file>", "the function's source")
    .option("--name <name>", "the function's name (default: the file name without its extension)")
    .option("--public", "callable without the token")
    .option("--no-public", "callable only with the token")
    .option("--network", "may open network sockets")
    .option("--no-network", "may not open network sockets")
    .option("--env <KEY=VALUE>", "an environment variable (repeatable; replaces the whole set)", collectEnv)
    .option("--timeout <ms>", "wall-clock limit in milliseconds", positiveInteger)
    .option("--memory <mb>", "memory limit in MiB", positiveInteger)
    .option("--max-concurrency <n>", "invocations in progress at once", positiveInteger)
    .option("--packages <spec>", "a package to install for the function (repeatable)", collect)
    .addOption(
      new Option("--isolation <mode>", "a fresh interpreter per invocation, or one per function").choices(["invocation", "function"]),
    )
    .option("--schedule <cron>", 'run on a cron schedule, e.g. "*/5 * * * *" (repeatable; replaces the schedules)', collect)
    .option("--tz <zone>", "the IANA time zone of the --schedule expressions (default UTC)")
    .option("--retries <n>", "retries of an asynchronous invocation after a retryable failure (0-5)", nonNegativeInteger)
    .option("--max-event-age <s>", "seconds an asynchronous invocation may wait before it expires (60-21600)", positiveInteger)
    .option("--no-wait", "return once the version is stored, without waiting for its packages to install")
    .action(deploy);

  program.command("ls").description("list the functions").action(list);
  program.command("show").description("a function's current version, code included").argument("<name>").action(showFunction);
  program.command("versions").description("every version of a function, newest first").argument("<name>").action(versions);
  program
    .command("rollback")
    .description("make an older version current again (stored as a new version)")
    .argument("<name>")
    .argument("<version>", "the version to go back to", positiveInteger)
    .action(rollback);
  program.command("rm").description("remove a function (its log stays)").argument("<name>").action(remove);
}

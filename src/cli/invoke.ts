// invoke: calls /fn/:name like any client would; the body goes to stdout untouched, the status and
// the invocation id to stderr, and the exit code says whether the function answered 2xx.
import fs from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream } from "node:stream/web";
import { type Command, InvalidArgumentError } from "commander";
import { EXIT, FUNCTION_NAME, type GatewayClient, usageError } from "./client.js";
import { collect, contextOf } from "./context.js";
import { printInvocation } from "./logs.js";
import { note } from "./output.js";

/** A name, or `name@N` for version N. */
const TARGET = new RegExp(`${FUNCTION_NAME.source.slice(0, -1)}(@[1-9]\\d{0,15})?$`);

interface InvokeFlags {
  verbose?: boolean;
  request?: string;
  data?: string;
  header?: string[];
  path?: string;
  async?: boolean;
  callbackUrl?: string;
  idempotencyKey?: string;
}

function method(value: string): string {
  if (!/^[A-Za-z]{1,20}$/.test(value)) throw new InvalidArgumentError("must be an HTTP method such as GET or POST");
  const upper = value.toUpperCase();
  // fetch (like browsers) refuses to send these; the gateway would refuse TRACE anyway.
  if (["CONNECT", "TRACE", "TRACK"].includes(upper)) throw new InvalidArgumentError(`${upper} cannot be sent`);
  return upper;
}

/** `-H 'Name: value'` lines, checked the way fetch itself checks them. */
function headersOf(lines: string[]): Headers {
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw usageError(`header '${line}' is not 'Name: value'`);
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      throw usageError(`header '${line}' is not a valid HTTP header`);
    }
  }
  return headers;
}

/** `@file` reads the file, `-` reads stdin, anything else is the body itself (as curl does). */
async function bodyOf(data: string): Promise<Uint8Array<ArrayBuffer>> {
  if (data === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  if (data.startsWith("@")) {
    try {
      return await fs.readFile(data.slice(1));
    } catch (error) {
      throw usageError(`cannot read '${data.slice(1)}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  return Buffer.from(data, "utf8");
}

/**
 * The gateway's own refusals (unknown function or version, wrong method) carry its error shape
 * without an `invocation_id`: nothing ran, so they become a one-line error. A function's failure
 * carries the id in the body, and anything else a function answered is its own body.
 */
function refusedByGateway(body: Buffer): boolean {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { error?: { message?: unknown; invocation_id?: unknown } };
    return typeof parsed.error?.message === "string" && parsed.error.invocation_id === undefined;
  } catch {
    return false;
  }
}

async function invoke(target: string, flags: InvokeFlags, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  if (!TARGET.test(target)) throw usageError(`'${target}' is not a function name, or name@version`);
  const subPath = flags.path ?? "";
  if (subPath !== "" && !subPath.startsWith("/")) throw usageError(`--path must start with '/' (got '${subPath}')`);
  const headers = headersOf(flags.header ?? []);
  if (!flags.async && (flags.callbackUrl || flags.idempotencyKey)) throw usageError("--callback-url and --idempotency-key go with --async");
  // --async: the gateway stores the request as a job and answers 202 with its id (fngw logs <id> follows it).
  if (flags.async) headers.set("prefer", "respond-async");
  if (flags.callbackUrl) headers.set("x-callback-url", flags.callbackUrl);
  if (flags.idempotencyKey) headers.set("idempotency-key", flags.idempotencyKey);
  const body = flags.data !== undefined ? await bodyOf(flags.data) : undefined;
  const verb = flags.request ?? (body !== undefined ? "POST" : "GET");
  if (body !== undefined && (verb === "GET" || verb === "HEAD")) throw usageError(`a ${verb} request cannot carry --data`);

  const res = await client.send(`/fn/${target}${subPath}`, { method: verb, headers, body, waitingFor: `invoking ${target}` });
  const invocationId = res.headers.get("x-invocation-id");
  let lastByte: number | undefined;
  if (res.ok) {
    if (res.body) {
      const body = Readable.fromWeb(res.body as ReadableStream<Uint8Array>);
      body.on("data", (chunk: Buffer) => (lastByte = chunk[chunk.length - 1]));
      await pipeline(body, process.stdout, { end: false });
    }
  } else {
    // A non-2xx body is bounded (MAX_RESPONSE_BYTES), so it can be read whole to tell who answered.
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 401 || refusedByGateway(body)) throw await client.errorOf(new Response(body, res));
    process.stdout.write(body);
    lastByte = body[body.length - 1];
  }
  // On a terminal the status line should not run on from a body without a final newline; piped, the body stays byte for byte.
  if (process.stdout.isTTY && lastByte !== undefined && lastByte !== 0x0a) process.stdout.write("\n");
  if (json) note(JSON.stringify({ status: res.status, invocation_id: invocationId }));
  else note(`${res.status} ${res.statusText}`.trim() + (invocationId ? `\ninvocation ${invocationId}` : ""));
  if (flags.verbose && invocationId) await showLogRow(client, invocationId, json);
  if (!res.ok) process.exitCode = EXIT.failed;
}

/** -v: the invocation's log row, stdout and stderr included, on stderr after the answer. */
async function showLogRow(client: GatewayClient, id: string, json: boolean): Promise<void> {
  const res = await client.send(`/api/invocations/${id}`);
  if (!res.ok) {
    const error = await client.errorOf(res);
    const why = res.status === 403 ? "reading the log needs a token with the logs:read scope" : error.message;
    return note(`(the log row of invocation ${id} cannot be shown: ${why})`);
  }
  const row = await res.json();
  if (json) return note(JSON.stringify(row));
  printInvocation(row, (text) => process.stderr.write(text));
}

export function registerInvokeCommand(program: Command): void {
  program
    .command("invoke")
    .description("call a function (name, or name@version); the body on stdout, status and invocation id on stderr")
    .argument("<name>")
    .option("-v, --verbose", "after the answer, print the invocation's log row with its stdout and stderr (on stderr)")
    .option("-X, --request <method>", "the HTTP method (default GET, or POST with --data)", method)
    .option("-d, --data <body>", "the request body: text, @file, or - for stdin")
    .option("-H, --header <header>", "a request header 'Name: value' (repeatable)", collect)
    .option("--path <path>", "the path below /fn/<name>, query string included (e.g. /items?id=1)")
    .option("--async", "queue the invocation (Prefer: respond-async): 202 and the job's id; fngw logs <id> shows how it went")
    .option("--callback-url <url>", "with --async: where the job's answer is POSTed, signed, when it ends")
    .option("--idempotency-key <key>", "with --async: the same key within 24 h answers the first job again")
    .action(invoke);
}

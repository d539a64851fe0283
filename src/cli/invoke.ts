// invoke: calls /fn/:name like any client would; the body goes to stdout untouched, the status and
// the invocation id to stderr, and the exit code says whether the function answered 2xx.
import fs from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Command, InvalidArgumentError } from "commander";
import { EXIT, FUNCTION_NAME, usageError } from "./client.js";
import { collect, contextOf } from "./context.js";
import { note } from "./output.js";

/** A name, or `name@N` for version N. */
const TARGET = new RegExp(`${FUNCTION_NAME.source.slice(0, -1)}(@[1-9]\\d{0,15})?$`);

interface InvokeFlags {
  request?: string;
  data?: string;
  header?: string[];
  path?: string;
}

function method(value: string): string {
  if (!/^[A-Za-z]{1,20}$/.test(value)) throw new InvalidArgumentError("must be an HTTP method such as GET or POST");
  return value.toUpperCase();
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

async function invoke(target: string, flags: InvokeFlags, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  if (!TARGET.test(target)) throw usageError(`'${target}' is not a function name, or name@version`);
  const subPath = flags.path ?? "";
  if (subPath !== "" && !subPath.startsWith("/")) throw usageError(`--path must start with '/' (got '${subPath}')`);
  const headers = headersOf(flags.header ?? []);
  const body = flags.data !== undefined ? await bodyOf(flags.data) : undefined;
  const verb = flags.request ?? (body !== undefined ? "POST" : "GET");
  if (body !== undefined && (verb === "GET" || verb === "HEAD")) throw usageError(`a ${verb} request cannot carry --data`);

  const res = await client.send(`/fn/${target}${subPath}`, { method: verb, headers, body, waitingFor: `invoking ${target}` });
  const invocationId = res.headers.get("x-invocation-id");
  // Without an invocation id nothing ran: the gateway refused the call itself (401, 404, 405...).
  if (invocationId === null && !res.ok) throw await client.errorOf(res);

  if (res.body) await pipeline(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>), process.stdout, { end: false });
  if (json) note(JSON.stringify({ status: res.status, invocation_id: invocationId }));
  else note(`${res.status} ${res.statusText}`.trim() + (invocationId ? `\ninvocation ${invocationId}` : ""));
  if (!res.ok) process.exitCode = EXIT.failed;
}

export function registerInvokeCommand(program: Command): void {
  program
    .command("invoke")
    .description("call a function (name, or name@version); the body on stdout, status and invocation id on stderr")
    .argument("<name>")
    .option("-X, --request <method>", "the HTTP method (default GET, or POST with --data)", method)
    .option("-d, --data <body>", "the request body: text, @file, or - for stdin")
    .option("-H, --header <header>", "a request header 'Name: value' (repeatable)", collect)
    .option("--path <path>", "the path below /fn/<name>, query string included (e.g. /items?id=1)")
    .action(invoke);
}

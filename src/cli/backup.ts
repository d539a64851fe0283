// backup: a consistent copy of the gateway's database, written atomically (temp file, fsync, rename)
// so FILE is either the previous file or a whole new copy, never half of one.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream } from "node:stream/web";
import type { Command } from "commander";
import { CliError, EXIT } from "./client.js";
import { contextOf } from "./context.js";
import { formatBytes, liveProgress, printJson, printLine } from "./output.js";

const SQLITE_TYPE = "application/vnd.sqlite3";
/** Every SQLite database starts with these 16 bytes. */
const SQLITE_MAGIC = Buffer.from("SQLite format 3\0", "latin1");

async function backup(file: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const target = path.resolve(file);
  const res = await client.send("/api/backup", { waitingFor: "the gateway is copying its database" });
  await client.expectOk(res);
  const type = res.headers.get("content-type") ?? "";
  if (!type.startsWith(SQLITE_TYPE))
    throw new CliError(EXIT.failed, `the gateway's backup answered ${type || "no content type"}, not ${SQLITE_TYPE}`);

  // Same directory as the target, so the rename cannot cross file systems.
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomBytes(6).toString("hex")}.tmp`);
  const shown = liveProgress();
  let bytes = 0;
  let head = Buffer.alloc(0);
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      if (head.length < SQLITE_MAGIC.length) head = Buffer.concat([head, chunk]).subarray(0, SQLITE_MAGIC.length);
      shown.update(`backup: ${formatBytes(bytes)}`);
      done(null, chunk);
    },
  });
  try {
    const out = fs.createWriteStream(temp, { flags: "wx", mode: 0o600 });
    await pipeline(Readable.fromWeb(res.body as ReadableStream<Uint8Array>), count, out);
    if (!head.equals(SQLITE_MAGIC)) throw new CliError(EXIT.failed, "the gateway's backup is not an SQLite database");
    const fd = fs.openSync(temp, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, target);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    if (error instanceof CliError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code && !code.startsWith("ERR_")) throw new CliError(EXIT.failed, `cannot write '${file}': ${code}`);
    throw new CliError(EXIT.unreachable, `the backup download from ${client.conn.url} broke off: ${String(error)}`);
  } finally {
    shown.done();
  }
  if (json) return printJson({ file: target, bytes });
  printLine(`wrote ${target} (${formatBytes(bytes)})`);
}

export function registerBackupCommand(program: Command): void {
  program
    .command("backup")
    .description("download a consistent copy of the gateway's database to FILE (replaced atomically)")
    .argument("<file>")
    .action(backup);
}

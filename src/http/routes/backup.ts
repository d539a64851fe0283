import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { ApiError, ErrorSchema, validationHook } from "../errors.js";
import { json, operation, requires } from "../schemas.js";

export const SQLITE_MEDIA_TYPE = "application/vnd.sqlite3";
/** Temp directories of backups in progress, under DATA_DIR: `.backup-XXXXXX/gateway.db`. */
const TEMP_PREFIX = ".backup-";

export interface BackupDeps {
  /** DATA_DIR: the copy is made next to the database (same file system, same root-only directory). */
  dataDir: string;
  /** SQLite's online backup of the live database into `file` (better-sqlite3's `db.backup`). */
  backup: (file: string) => Promise<unknown>;
  now?: () => number;
}

/**
 * GET /api/backup (admin): a consistent copy of the database, made with SQLite's online backup
 * while the gateway keeps serving (it copies in steps between other work; writes made meanwhile
 * are carried into the copy), then streamed. The copy is unlinked as soon as it is open, so
 * nothing is left behind whether the download finishes, breaks off or the process dies; a
 * directory left by a crash during the copy itself is removed when the gateway starts.
 * One backup at a time: each costs a database's size of disk while it runs.
 */
export function backupApi(deps: BackupDeps) {
  removeLeftovers(deps.dataDir);
  const now = deps.now ?? Date.now;
  let running = false;
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      ...operation("operations", "getBackup"),
      summary: "A consistent copy of the database (SQLite online backup), made while the gateway serves",
      description:
        "Restore: stop the gateway, replace DATA_DIR/gateway.db with the copy (remove gateway.db-wal and gateway.db-shm), " +
        "keep DATA_DIR/secrets.key (env values are sealed with it and are not in the copy in clear), start the gateway.",
      ...requires("admin"),
      responses: {
        200: {
          content: { [SQLITE_MEDIA_TYPE]: { schema: z.string().openapi({ format: "binary" }) } },
          description: "The SQLite database file",
        },
        401: json(ErrorSchema, "Missing or wrong token"),
        403: json(ErrorSchema, "The token lacks the admin scope"),
        429: json(ErrorSchema, "A backup is already being made; see Retry-After"),
      },
    }),
    async (c) => {
      if (running)
        throw new ApiError(429, "backup_in_progress", "a backup is already being made; retry when it is done", { "Retry-After": "5" });
      running = true;
      let fd: number;
      try {
        const dir = await fs.promises.mkdtemp(path.join(deps.dataDir, TEMP_PREFIX)); // 0700
        try {
          const file = path.join(dir, "gateway.db");
          await deps.backup(file);
          await fs.promises.chmod(file, 0o600);
          fd = fs.openSync(file, "r");
        } finally {
          await fs.promises.rm(dir, { recursive: true, force: true });
        }
      } finally {
        running = false;
      }
      const size = fs.fstatSync(fd).size;
      const body = Readable.toWeb(fs.createReadStream("", { fd, autoClose: true })) as ReadableStream<Uint8Array>;
      const stamp = new Date(now()).toISOString().replace(/[:.]/g, "-");
      return c.body(body, 200, {
        "Content-Type": SQLITE_MEDIA_TYPE,
        "Content-Length": String(size),
        "Content-Disposition": `attachment; filename="fngw-${stamp}.db"`,
        "Cache-Control": "no-store",
      });
    },
  );
  return app;
}

/** Temp directories a process that died mid-copy left under DATA_DIR. */
function removeLeftovers(dataDir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dataDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(TEMP_PREFIX)) fs.rmSync(path.join(dataDir, name), { recursive: true, force: true });
  }
}

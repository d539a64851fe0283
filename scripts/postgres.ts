import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";

/**
 * A PostgreSQL server of the project's own, for the tests, the bench and trying several gateways
 * on one machine: a cluster made with initdb (in a temp dir, or a directory given), started with
 * pg_ctl on a loopback port as the `postgres` user (Debian's postgresql package provides both).
 * A throwaway one is removed when stopped. Run as a script (`npm run postgres`), it keeps one in
 * ./data-postgres on port 5433 until Ctrl-C and prints its DATABASE_URL.
 */

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  /** The cluster's data directory (pg_ctl restart works on it). */
  dataDir: string;
  /** pg_ctl, run as the postgres user, on this cluster. */
  ctl(...args: string[]): void;
  /** The postmaster's pid (its backends are its children). */
  pid(): number;
  stop(): void;
}

/** The newest installed PostgreSQL's bin directory. */
export function postgresBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, "bin", "initdb"))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error(`no PostgreSQL server under ${root}: install Debian's postgresql package (scripts/setup.sh does)`);
  return path.join(root, newest, "bin");
}

function postgresUser(): { uid: number; gid: number } {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("there is no postgres user: install Debian's postgresql package");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/**
 * Starts a cluster: a new one in a temp dir on a free port, removed by `stop()`; or, with `dir`,
 * the one kept there (made at first use), on `port`, left in place by `stop()`.
 */
export async function startPostgres(options: { dir?: string; port?: number } = {}): Promise<PostgresServer> {
  const bin = postgresBin();
  const user = postgresUser();
  const root = options.dir ? path.resolve(options.dir) : fs.mkdtempSync(path.join(os.tmpdir(), "fngw-pg-"));
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  fs.chownSync(root, user.uid, user.gid);
  const dataDir = path.join(root, "data");
  const port = options.port ?? (await freePort());
  const asPostgres = (tool: string, args: string[]) => {
    const run = spawnSync(path.join(bin, tool), args, { uid: user.uid, gid: user.gid, cwd: root, encoding: "utf8" });
    if (run.status !== 0) throw new Error(`${tool} ${args.join(" ")} failed: ${run.stderr || run.stdout}`);
  };
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION")))
    asPostgres("initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  // Sized for a test machine: many short-lived databases and connections, nothing to keep on power loss.
  const settings = [
    `-c listen_addresses=127.0.0.1`,
    `-c port=${port}`,
    `-c unix_socket_directories=${root}`,
    "-c max_connections=300",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c shared_buffers=64MB",
  ].join(" ");
  const ctl = (...args: string[]) => asPostgres("pg_ctl", ["-D", dataDir, "-w", "-l", path.join(root, "log"), "-o", settings, ...args]);
  ctl("start");
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    ctl,
    pid: () => Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]),
    stop() {
      try {
        ctl("stop", "-m", options.dir ? "fast" : "immediate");
      } finally {
        if (!options.dir) fs.rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

/** A new, empty database on the server at `url`; returns its URL. */
export async function createDatabase(url: string): Promise<string> {
  const name = `fngw_${crypto.randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const target = new URL(url);
  target.pathname = `/${name}`;
  return target.toString();
}

// `npm run postgres`: one kept in ./data-postgres (or $PGDATA_DIR) on 127.0.0.1:5433 (or $PGPORT) until Ctrl-C.
if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startPostgres({ dir: process.env.PGDATA_DIR ?? "data-postgres", port: Number(process.env.PGPORT ?? 5433) });
  console.log(`PostgreSQL is running; stop it with Ctrl-C.\nDATABASE_URL=${server.url}`);
  const stop = () => {
    server.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  setInterval(() => {}, 1 << 30);
}

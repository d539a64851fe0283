import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { MIGRATIONS_DIR } from "../../src/store/sqlite/client.js";

/**
 * Writes `file` as the gateway did before sealed env values and scoped tokens existed (migrations
 * 0000 and 0001 only), then lets `seed` fill it with rows in that era's shape.
 */
export function databaseBeforeSealing(file: string, seed: (sqlite: Database.Database) => void): void {
  const legacyMigrations = fs.mkdtempSync(path.join(path.dirname(file), "legacy-migrations-"));
  fs.mkdirSync(path.join(legacyMigrations, "meta"));
  const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8")) as {
    entries: { idx: number; tag: string }[];
  };
  journal.entries = journal.entries.filter((entry) => entry.idx <= 1);
  fs.writeFileSync(path.join(legacyMigrations, "meta/_journal.json"), JSON.stringify(journal));
  for (const { tag } of journal.entries)
    fs.copyFileSync(path.join(MIGRATIONS_DIR, `${tag}.sql`), path.join(legacyMigrations, `${tag}.sql`));
  const sqlite = new Database(file);
  sqlite.pragma("journal_mode = WAL");
  migrate(drizzle(sqlite), { migrationsFolder: legacyMigrations });
  seed(sqlite);
  sqlite.close();
  fs.rmSync(legacyMigrations, { recursive: true });
}

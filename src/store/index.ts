import type { Config } from "../core/config.js";
import type { EnvSealer, Store, StoreOptions } from "./contract.js";
import { openPostgresStore } from "./postgres/index.js";
import { openSqliteStore } from "./sqlite/index.js";

export type StoreConfig = Pick<Config, "DATABASE_URL" | "DB_PATH" | "DATABASE_POOL_SIZE">;

/**
 * The store the configuration names: PostgreSQL when DATABASE_URL is set (several gateways may
 * share it), else the SQLite file in DATA_DIR. Pending migrations are applied before it returns.
 * The one place that knows both engines.
 */
export async function openStore(config: StoreConfig, sealer: EnvSealer, options: StoreOptions = {}): Promise<Store> {
  if (config.DATABASE_URL) return openPostgresStore(config.DATABASE_URL, sealer, { poolSize: config.DATABASE_POOL_SIZE, ...options });
  return openSqliteStore(config.DB_PATH, sealer, options);
}

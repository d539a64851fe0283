import { eq } from "drizzle-orm";
import type { Db } from "./client.js";
import { settings } from "./schema.js";

/** Small key/value settings that must survive restarts. */
export class KeyValueStore {
  constructor(private readonly db: Db) {}

  get(key: string): string | undefined {
    return this.db.select({ value: settings.value }).from(settings).where(eq(settings.key, key)).get()?.value;
  }

  set(key: string, value: string): void {
    this.db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value } }).run();
  }
}

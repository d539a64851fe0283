import { eq } from "drizzle-orm";
import type { SettingRecords } from "../contract.js";
import type { Db } from "./client.js";
import { settings } from "./schema.js";

export class SqliteSettings implements SettingRecords {
  constructor(private readonly db: Db) {}

  async get(key: string): Promise<string | undefined> {
    return this.db.select({ value: settings.value }).from(settings).where(eq(settings.key, key)).get()?.value;
  }

  async set(key: string, value: string): Promise<void> {
    this.db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value } }).run();
  }

  async setIfAbsent(key: string, value: string): Promise<string> {
    this.db.insert(settings).values({ key, value }).onConflictDoNothing().run();
    return (await this.get(key)) ?? value;
  }
}

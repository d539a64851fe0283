import { eq } from "drizzle-orm";
import type { SettingRecords } from "../contract.js";
import type { Db } from "./client.js";
import { settings } from "./schema.js";

export class PostgresSettings implements SettingRecords {
  constructor(private readonly db: Db) {}

  async get(key: string): Promise<string | undefined> {
    const [row] = await this.db.select({ value: settings.value }).from(settings).where(eq(settings.key, key));
    return row?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value } });
  }

  async setIfAbsent(key: string, value: string): Promise<string> {
    await this.db.insert(settings).values({ key, value }).onConflictDoNothing();
    return (await this.get(key)) ?? value;
  }
}

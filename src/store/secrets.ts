import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../core/config.js";
import type { Store } from "./contract.js";

/**
 * Functions' env values at rest: AES-256-GCM, a random 96-bit IV per value, and the function's
 * name, version and the variable's name as additional data, so a sealed value copied to another
 * function, version or variable fails to open. A sealed value reads `fngw1:<key id>:<base64 of
 * IV ‖ ciphertext ‖ tag>`; the key id (the first 8 bytes of the key's SHA-256, hex) says which key
 * sealed it, which is what rotation relies on.
 */

const FORMAT = "fngw1";
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

export class SecretsError extends Error {
  override name = "SecretsError";
}

export const keyId = (key: Buffer): string => crypto.createHash("sha256").update(key).digest("hex").slice(0, 16);

/** Where a sealed value belongs: it opens only there. */
export interface SecretPlace {
  functionName: string;
  version: number;
  variable: string;
}

const additionalData = (place: SecretPlace) => Buffer.from(JSON.stringify([place.functionName, place.version, place.variable]), "utf8");

export class SecretBox {
  readonly currentKeyId: string;
  private readonly keys = new Map<string, Buffer>();

  /** `current` seals; `older` keys only open (values sealed before a rotation). */
  constructor(current: Buffer, older: Buffer[] = []) {
    if (current.length !== KEY_BYTES) throw new SecretsError(`a secrets key must be ${KEY_BYTES} bytes`);
    this.currentKeyId = keyId(current);
    for (const key of older) this.keys.set(keyId(key), key);
    this.keys.set(this.currentKeyId, current);
  }

  seal(value: string, place: SecretPlace): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv("aes-256-gcm", this.keys.get(this.currentKeyId)!, iv);
    cipher.setAAD(additionalData(place));
    const sealed = Buffer.concat([iv, cipher.update(value, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${FORMAT}:${this.currentKeyId}:${sealed.toString("base64")}`;
  }

  open(sealed: string, place: SecretPlace): string {
    const [format, id, payload, ...rest] = sealed.split(":");
    if (format !== FORMAT || id === undefined || payload === undefined || rest.length > 0) {
      throw new SecretsError(`${describe(place)} is not a sealed value`);
    }
    const key = this.keys.get(id);
    if (!key) throw new SecretsError(`${describe(place)} was sealed with a key this gateway does not have (key id ${id})`);
    const bytes = Buffer.from(payload, "base64");
    if (bytes.length < IV_BYTES + TAG_BYTES) throw new SecretsError(`${describe(place)} is truncated`);
    const decipher = crypto.createDecipheriv("aes-256-gcm", key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(additionalData(place));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString("utf8");
    } catch {
      throw new SecretsError(`${describe(place)} does not open: tampered with, or moved from another function, version or variable`);
    }
  }

  /** Whether this box holds the key with id `id` (the current one or an older one). */
  opens(id: string): boolean {
    return this.keys.has(id);
  }

  /** Whether a sealed value was sealed with the current key. */
  isCurrent(sealed: string): boolean {
    return sealed.startsWith(`${FORMAT}:${this.currentKeyId}:`);
  }

  sealEnv(env: Record<string, string>, functionName: string, version: number): Record<string, string> {
    return Object.fromEntries(
      Object.entries(env).map(([variable, value]) => [variable, this.seal(value, { functionName, version, variable })]),
    );
  }

  openEnv(env: Record<string, string>, functionName: string, version: number): Record<string, string> {
    return Object.fromEntries(
      Object.entries(env).map(([variable, value]) => [variable, this.open(value, { functionName, version, variable })]),
    );
  }
}

const describe = (place: SecretPlace) => `env ${place.variable} of ${place.functionName} version ${place.version}`;

function parseKey(text: string, origin: string): Buffer {
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== KEY_BYTES) throw new SecretsError(`${origin} must hold the base64 of ${KEY_BYTES} bytes`);
  return key;
}

/** A new random key as its key file holds it. */
export const newKeyText = (): string => `${crypto.randomBytes(KEY_BYTES).toString("base64")}\n`;

/**
 * Reads a key file, refusing one that others may read; creates it (0600, a fresh random key)
 * when it does not exist. Its directory is created 0700, like the database's.
 */
export function readOrCreateKeyFile(file: string): { key: Buffer; created: boolean } {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let created = false;
  try {
    fs.writeFileSync(file, newKeyText(), { mode: 0o600, flag: "wx" });
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const stat = fs.statSync(file);
  if ((stat.mode & 0o077) !== 0) {
    throw new SecretsError(`${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  return { key: parseKey(fs.readFileSync(file, "utf8"), file), created };
}

/** A rotation in progress writes the new key here before it re-seals anything. */
export const nextKeyFile = (file: string) => `${file}.next`;

/**
 * The gateway's keys: SECRETS_KEY, or the key file (created at first start). SECRETS_KEY_PREVIOUS,
 * and a key file's `.next` left by an interrupted rotation, can open values but never seal.
 */
export function loadSecretBox(config: Config): { box: SecretBox; createdKeyFile: string | null } {
  const older: Buffer[] = config.SECRETS_KEY_PREVIOUS ? [config.SECRETS_KEY_PREVIOUS] : [];
  if (config.SECRETS_KEY) return { box: new SecretBox(config.SECRETS_KEY, older), createdKeyFile: null };
  const { key, created } = readOrCreateKeyFile(config.SECRETS_KEY_FILE);
  const next = nextKeyFile(config.SECRETS_KEY_FILE);
  if (fs.existsSync(next)) older.push(parseKey(fs.readFileSync(next, "utf8"), next));
  return { box: new SecretBox(key, older), createdKeyFile: created ? config.SECRETS_KEY_FILE : null };
}

/** Where the store keeps the id of the key every gateway seals with (a check value: the id, never the key). */
const KEY_ID_SETTING = "secrets_key_id";

/**
 * Every gateway on one database must seal with the same key. The first to start records its key's
 * id; one started with another key refuses to start, saying so, rather than seal values the others
 * cannot open. A gateway that holds the recorded key as an older one (a rotation: SECRETS_KEY_PREVIOUS)
 * has just re-sealed everything with its new key, and records that instead.
 */
export async function checkSecretsKey(store: Store, box: SecretBox): Promise<void> {
  const recorded = await store.settings.setIfAbsent(KEY_ID_SETTING, box.currentKeyId);
  if (recorded === box.currentKeyId) return;
  if (box.opens(recorded)) {
    await store.settings.set(KEY_ID_SETTING, box.currentKeyId);
    return;
  }
  throw new SecretsError(
    `this gateway's secrets key (id ${box.currentKeyId}) is not the one the database's values are sealed with (id ${recorded}): ` +
      "every gateway on one database needs the same SECRETS_KEY (or key file); to change it, rotate (README, Secrets at rest)",
  );
}

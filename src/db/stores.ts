import type { OpenedDatabase } from "./client.js";
import { FunctionStore } from "./functions.js";
import { InvocationLog, type InvocationLogOptions } from "./invocations.js";
import { KeyValueStore } from "./key-value.js";
import type { SecretBox } from "./secrets.js";
import { TokenStore } from "./tokens.js";

export interface Stores {
  functions: FunctionStore;
  invocations: InvocationLog;
  keyValue: KeyValueStore;
  tokens: TokenStore;
}

/** The stores over one database; `secrets` seals and opens functions' env values. */
export function createStores(
  opened: OpenedDatabase,
  secrets: SecretBox,
  options: Omit<InvocationLogOptions, "readInBackground"> = {},
): Stores {
  return {
    functions: new FunctionStore(opened.db, secrets),
    invocations: new InvocationLog(opened.db, { ...options, readInBackground: opened.readInBackground }),
    keyValue: new KeyValueStore(opened.db),
    tokens: new TokenStore(opened.db, options.now),
  };
}

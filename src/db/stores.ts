import type { OpenedDatabase } from "./client.js";
import { FunctionStore } from "./functions.js";
import { InvocationLog, type InvocationLogOptions } from "./invocations.js";
import { KeyValueStore } from "./key-value.js";

export interface Stores {
  functions: FunctionStore;
  invocations: InvocationLog;
  keyValue: KeyValueStore;
}

/** The three stores over one database. */
export function createStores(opened: OpenedDatabase, options: Omit<InvocationLogOptions, "readInBackground"> = {}): Stores {
  return {
    functions: new FunctionStore(opened.db),
    invocations: new InvocationLog(opened.db, { ...options, readInBackground: opened.readInBackground }),
    keyValue: new KeyValueStore(opened.db),
  };
}

import fs from "node:fs";
import { fileURLToPath } from "node:url";
import type { InterpreterKind } from "../core/runtimes.js";

/** Values rendered into the prescripts; each becomes a string literal in the generated source. */
export interface PrescriptValues {
  LIB_PATH: string;
  KOFFI_PATH: string;
  LOCKDOWN_SIGNATURE: string;
  READY_SIGNATURE: string;
}

const TEMPLATE_FILES: Record<InterpreterKind, string> = {
  python: "prescript.py",
  node: "prescript.js",
};

const TEMPLATE_DIR = fileURLToPath(new URL("../../prescripts/", import.meta.url));
const PLACEHOLDER = /\{\{([A-Z_]+)\}\}/g;

/**
 * Renders both prescripts once, at start-up. They depend only on where the library
 * and koffi live: the lock-down parameters and the function arrive on fd 3
 * (prescripts/PROTOCOL.md), so an interpreter can be started before its invocation is known.
 */
export function renderPrescripts(values: PrescriptValues, dir = TEMPLATE_DIR): Record<InterpreterKind, string> {
  const render = (runtime: InterpreterKind) =>
    fs.readFileSync(dir + TEMPLATE_FILES[runtime], "utf8").replace(PLACEHOLDER, (_, name: string) => {
      if (!Object.hasOwn(values, name)) throw new Error(`unknown prescript placeholder {{${name}}}`);
      // A JSON string literal is a valid string literal in Python and in JavaScript.
      return JSON.stringify(values[name as keyof PrescriptValues]);
    });
  return { python: render("python"), node: render("node") };
}

/** The last line of the Python prescript: the call that runs it. */
const PRESCRIPT_CALL = "\n_prescript()\n";

/**
 * The Python fork-server's source: the rendered Python prescript without its final call, then
 * prescripts/forkserver.py, which serves in the parent and, in each forked child, returns to
 * make that call. `preload` lists the modules the parent imports.
 */
export function renderForkServer(pythonPrescript: string, preload: readonly string[], dir = TEMPLATE_DIR): string {
  if (!pythonPrescript.endsWith(PRESCRIPT_CALL)) throw new Error("the Python prescript does not end with its call to _prescript()");
  const server = fs.readFileSync(`${dir}forkserver.py`, "utf8").replace(PLACEHOLDER, (_, name: string) => {
    if (name !== "PRELOAD_MODULES") throw new Error(`unknown fork-server placeholder {{${name}}}`);
    return JSON.stringify(preload); // a JSON array of strings is a Python list literal
  });
  return pythonPrescript.slice(0, -PRESCRIPT_CALL.length + 1) + server;
}

import fs from "node:fs";
import { fileURLToPath } from "node:url";
import type { Runtime } from "./types.js";

/** Values rendered into a prescript; each becomes a literal in the generated source. */
export interface PrescriptValues {
  LIB_PATH: string;
  KOFFI_PATH: string;
  JAIL: string;
  UID: number;
  GID: number;
  FLAGS: number;
  MAX_THREADS: number;
  /** The function's source, base64: no character of it can end the literal it sits in. */
  CODE: string;
}

/** Bit 0 of the lock-down flags: the sandbox may open AF_INET/AF_INET6 sockets. */
export const FLAG_NETWORK = 1;

const TEMPLATE_FILES: Record<Runtime, string> = {
  python: "prescript.py",
  node: "prescript.js",
};

const PLACEHOLDER = /\{\{([A-Z_]+)\}\}/g;
const NAMES = new Set<string>(["LIB_PATH", "KOFFI_PATH", "JAIL", "UID", "GID", "FLAGS", "MAX_THREADS", "CODE"] satisfies (keyof PrescriptValues)[]);

/** A template split at its placeholders once, so rendering is a single join. */
interface Template {
  texts: string[];
  names: (keyof PrescriptValues)[];
}

export class Prescripts {
  private readonly templates: Record<Runtime, Template>;

  constructor(dir = fileURLToPath(new URL("../../prescripts/", import.meta.url))) {
    this.templates = {
      python: parse(fs.readFileSync(dir + TEMPLATE_FILES.python, "utf8")),
      node: parse(fs.readFileSync(dir + TEMPLATE_FILES.node, "utf8")),
    };
  }

  render(runtime: Runtime, values: PrescriptValues): string {
    const { texts, names } = this.templates[runtime];
    let out = texts[0]!;
    for (let i = 0; i < names.length; i++) out += literal(values[names[i]!]) + texts[i + 1]!;
    return out;
  }
}

function parse(source: string): Template {
  const texts: string[] = [];
  const names: (keyof PrescriptValues)[] = [];
  let last = 0;
  for (const match of source.matchAll(PLACEHOLDER)) {
    const name = match[1]!;
    if (!NAMES.has(name)) throw new Error(`unknown prescript placeholder {{${name}}}`);
    texts.push(source.slice(last, match.index));
    names.push(name as keyof PrescriptValues);
    last = match.index + match[0].length;
  }
  texts.push(source.slice(last));
  return { texts, names };
}

/** JSON literals are valid in both Python and JavaScript source for strings and integers. */
function literal(value: string | number): string {
  if (typeof value === "number" && !Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
  return JSON.stringify(value);
}

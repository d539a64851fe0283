/**
 * What a function is written for: its `runtime` setting. TypeScript runs on Node, as the
 * JavaScript the gateway compiles it to (src/sandbox/typescript.ts).
 */
export const RUNTIMES = ["python", "node", "typescript"] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** The interpreters the sandbox starts. */
export const INTERPRETERS = ["python", "node"] as const;
export type InterpreterKind = (typeof INTERPRETERS)[number];

/** The interpreter each runtime runs on. */
export const INTERPRETER_OF = {
  python: "python",
  node: "node",
  typescript: "node",
} as const satisfies Record<Runtime, InterpreterKind>;

/** The file extensions of each runtime's source: `fngw deploy` tells a file's runtime by them. */
export const SOURCE_EXTENSIONS = {
  python: [".py"],
  node: [".js", ".mjs", ".cjs"],
  typescript: [".ts", ".mts", ".cts"],
} as const satisfies Record<Runtime, readonly string[]>;

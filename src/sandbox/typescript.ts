import crypto from "node:crypto";
import { transform } from "esbuild";
import type { SyntaxProblem } from "../core/runner.js";

/**
 * TypeScript functions: the version keeps the source as written; what runs is the JavaScript
 * esbuild's `transform` emits for the Node the sandbox starts, with an inline source map that the
 * Node prescript hands to Node's own loaders, so stack traces name the .ts lines. Types are
 * erased, not checked: a type error is the author's to find, a type *syntax* error is refused at
 * registration with esbuild's line and column. Imports used only as types (`import type`, or
 * names used only in types) are removed, so they need no package at run time.
 *
 * esbuild runs as its own long-lived process (the JS API's service), parsing source without
 * running it, reaching no file (transform reads only the string it is given) and taking no
 * plugin. Unlike the interpreters' syntax checks (syntax.ts) it is not dropped to nobody: its
 * parser is Go, memory-safe, and the source is bounded by MAX_CODE_BYTES.
 */

/** The file name stack traces show for a TypeScript function (beside the compiled file in its /tmp). */
const SOURCE_FILE = "function.ts";
const COMPILE_TIMEOUT_MS = 5000;
/** Compiled functions kept, by the digest of their source, at most this many bytes in all. */
const CACHE_BYTES = 64 * 1024 * 1024;

export class TypeScriptError extends Error {
  override name = "TypeScriptError";
  constructor(readonly problem: SyntaxProblem) {
    super(problem.message);
  }
}

export class TypeScriptCompiler {
  private readonly cache = new Map<string, string>();
  private cachedBytes = 0;

  /** `nodeVersion` is the interpreter's (`v20.19.0`): the output uses only syntax it runs. */
  constructor(private readonly nodeVersion: string) {}

  /** The JavaScript for `source`; rejects with TypeScriptError when it does not parse. */
  async compile(source: string): Promise<string> {
    const key = crypto.createHash("sha256").update(source).digest("hex");
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.cache.delete(key); // most recently used last
      this.cache.set(key, cached);
      return cached;
    }
    const code = await this.transform(source);
    this.cache.set(key, code);
    this.cachedBytes += code.length;
    for (const [oldest, value] of this.cache) {
      if (this.cachedBytes <= CACHE_BYTES) break;
      this.cache.delete(oldest);
      this.cachedBytes -= value.length;
    }
    return code;
  }

  /** Where `source` fails to parse, or null. */
  async check(source: string): Promise<SyntaxProblem | null> {
    try {
      await this.compile(source);
      return null;
    } catch (error) {
      if (error instanceof TypeScriptError) return error.problem;
      throw error;
    }
  }

  private async transform(source: string): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the TypeScript compiler did not answer within ${COMPILE_TIMEOUT_MS} ms`)),
        COMPILE_TIMEOUT_MS,
      );
    });
    try {
      const output = await Promise.race([
        transform(source, {
          loader: "ts",
          sourcefile: SOURCE_FILE,
          sourcemap: "inline",
          target: `node${/^v?(\d+)/.exec(this.nodeVersion)?.[1] ?? "20"}`,
          logLevel: "silent",
        }),
        deadline,
      ]);
      return output.code;
    } catch (error) {
      const first = (error as { errors?: { text: string; location: { line: number; column: number; lineText: string } | null }[] })
        .errors?.[0];
      if (first === undefined) throw error;
      const where = first.location;
      throw new TypeScriptError({
        line: where?.line ?? null,
        // esbuild counts the column in bytes from 0; the API's column counts characters from 1.
        column: where ? Buffer.from(where.lineText).subarray(0, where.column).toString("utf8").length + 1 : null,
        message: `SyntaxError: ${first.text}`,
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

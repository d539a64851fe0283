import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError, type Gateway, type Json, makeGateway, register } from "./harness.js";

// Code that does not parse is refused at registration (400 syntax_error, with the interpreter's
// message, line and column), checked by the real interpreter, which only parses it.

let gw: Gateway;
beforeAll(async () => {
  gw = await makeGateway();
  await register(gw, { name: "existing", runtime: "python", code: "def handler(request):\n    return 1\n" });
});
afterAll(() => gw.close());

describe("POST /api/functions with code that does not parse", () => {
  it.each<[string, "python" | "node", string, number | null, number | null, RegExp]>([
    [
      "an unclosed bracket",
      "python",
      "def handler(request):\n    return {\n",
      2,
      12,
      /^code: SyntaxError: '\{' was never closed at line 2, column 12$/,
    ],
    ["a missing indent", "python", "def handler(request):\nreturn 1\n", 2, 1, /^code: IndentationError: expected an indented block/],
    ["a NUL byte", "python", "x = 1\0\n", null, null, /^code: (SyntaxError|ValueError): source code string cannot contain null bytes$/],
    [
      "a source its coding line cannot decode",
      "python",
      "# coding: utf-16\nx = 1\n",
      null,
      null,
      /^code: SyntaxError: 'utf-16-le' codec can't decode/,
    ],
    [
      "an ES module's bad expression",
      "node",
      "export default function (request) {\n  return 1 +;\n}\n",
      2,
      13,
      /^code: SyntaxError: Unexpected token ';' at line 2, column 13$/,
    ],
    [
      "a CommonJS module's bad statement",
      "node",
      "module.exports = (request) => {\n  let = ;\n};\n",
      2,
      9,
      /^code: SyntaxError: Unexpected token ';'/,
    ],
    ["an ES module's error after its exports", "node", "export default () => 1\nlet a = (;\n", 2, 10, /at line 2, column 10$/],
  ])("answers 400 with line and column for %s (%s)", async (_, runtime, code, line, column, message) => {
    const res = await gw.call("/api/functions", { method: "POST", json: { name: "broken", runtime, code } });
    const json = await expectError(res, 400, "syntax_error", message);
    expect(json.error).toMatchObject({ line, column });
    expect((await gw.call("/api/functions/broken")).status).toBe(404);
  });

  it.each<[string, "python" | "node", string]>([
    [
      "imports a module that does not exist (never imported: only parsed)",
      "python",
      "import no_such_module_anywhere\ndef handler(request):\n    return 1\n",
    ],
    ["imports a package that does not exist", "node", "import x from 'no-such-package-anywhere'\nexport default () => x\n"],
    ["uses top-level await (an ES module)", "node", "await Promise.resolve(1)\nexport default () => 1\n"],
    ["returns at the top level (CommonJS, as the prescript wraps it)", "node", "return 5\n"],
    ["would write a file if it ran", "node", "require('fs').writeFileSync('/tmp/fngw-syntax-check-ran', 'x')\nmodule.exports = () => 1\n"],
  ])("accepts code that %s (%s)", async (_, runtime, code) => {
    const name = `ok-${Math.random().toString(36).slice(2, 10)}`;
    await register(gw, { name, runtime, code });
  });

  it("never ran the code it checked", async () => {
    const { existsSync } = await import("node:fs");
    expect(existsSync("/tmp/fngw-syntax-check-ran")).toBe(false);
  });
});

describe("PUT /api/functions/:name", () => {
  it("checks new code and keeps the current version when it does not parse", async () => {
    const res = await gw.call("/api/functions/existing", { method: "PUT", json: { code: "def handler(request)\n    return 2\n" } });
    await expectError(res, 400, "syntax_error", /^code: SyntaxError: expected ':' at line 1/);
    expect(((await (await gw.call("/api/functions/existing")).json()) as Json).version).toBe(1);
  });

  it("checks the current code against a new runtime", async () => {
    const res = await gw.call("/api/functions/existing", { method: "PUT", json: { runtime: "node" } });
    await expectError(res, 400, "syntax_error", /^code: SyntaxError: /);
  });
});

describe("when the check cannot answer", () => {
  it("stores nothing and answers 503 (fails closed)", async () => {
    const real = gw.runner.checkSyntax.bind(gw.runner);
    // The interpreter failing to start, as the check's port reports it.
    gw.runner.checkSyntax = () => Promise.reject(new Error("the syntax check could not run: spawn ENOENT"));
    try {
      const res = await gw.call("/api/functions", { method: "POST", json: { name: "unchecked", runtime: "python", code: "x = 1\n" } });
      await expectError(res, 503, "unavailable", /syntax check could not run/);
    } finally {
      gw.runner.checkSyntax = real;
    }
    expect((await gw.call("/api/functions/unchecked")).status).toBe(404);
  });
});

describe("a NUL character in JavaScript", () => {
  it("is refused at registration, naming where, though the interpreter would take it in a string", async () => {
    const gw = await makeGateway();
    try {
      const res = await gw.call("/api/functions", {
        method: "POST",
        json: { name: "nul-js", runtime: "node", code: 'export default () => "a\0b";\n' },
      });
      const body = await expectError(res, 400, "syntax_error", /NUL character \(U\+0000\).* at line 1, column 24$/);
      expect(body.error).toMatchObject({ line: 1, column: 24 });
    } finally {
      await gw.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Runtime } from "../../src/core/runtimes.js";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { bodyText, spec, startSandbox, stopSandbox } from "./harness.js";

// Mistakes users make, answered where they happen: a handler under another name is pointed out in
// the log, a result JSON cannot carry is refused rather than sent changed or invalid.

let handle: Awaited<ReturnType<typeof startSandbox>>;
let sandbox: Sandbox;
beforeAll(async () => {
  handle = await startSandbox();
  sandbox = handle.sandbox;
});
afterAll(() => stopSandbox(handle));

const stderrOf = (result: { stderr: { data: Buffer } }) => result.stderr.data.toString("utf8");

describe("a module without a handler that looks like it meant one", () => {
  it.each<[string, Runtime, string, RegExp]>([
    [
      "Python main",
      "python",
      "def main(request):\n    return {'hi': 1}\n",
      /no handler\(request\) is defined.*main looks like one: name it handler/,
    ],
    [
      "Python lambda_handler and app",
      "python",
      "def lambda_handler(event, context):\n    return 1\napp = lambda request: 1\n",
      /lambda_handler, app looks like one/,
    ],
    ["Python handle", "python", "class Handler:\n    pass\ndef handle(request):\n    return 1\n", /handle looks like one/],
    [
      "an ES module exporting main",
      "node",
      "export function main(request) {\n  return { hi: 1 };\n}\n",
      /no default export or handler is a function.*it exports main: export the handler as default/,
    ],
    ["CommonJS exporting handle", "node", "module.exports = { handle: () => 1, version: 2 };\n", /it exports handle: export the handler/],
  ])("runs as a script and warns in the log: %s", async (_, runtime, code, warning) => {
    const result = await sandbox.run(spec(runtime, code));
    expect(result.status).toBe("ok");
    expect(result.response?.status).toBe(200);
    expect(stderrOf(result)).toMatch(warning);
  });

  it.each<[string, Runtime, string]>([
    ["a Python handler", "python", "def main():\n    pass\ndef handler(request):\n    return 1\n"],
    ["a Python script with helpers of other names", "python", "def helper():\n    return 1\nprint(helper())\n"],
    ["an ES module with a default export beside others", "node", "export function main() {}\nexport default () => 1;\n"],
    ["a Node script that exports nothing", "node", "console.log('plain script');\n"],
  ])("does not warn for %s", async (_, runtime, code) => {
    const result = await sandbox.run(spec(runtime, code));
    expect(result.status, bodyText(result)).toBe("ok");
    expect(stderrOf(result)).not.toMatch(/fngw: warning/);
  });

  it("does not warn for a code-node template that defines main, calls it and prints the result, and answers it byte for byte", async () => {
    const result = await sandbox.run(spec("python", CODE_NODE_TEMPLATE));
    expect(result.status, bodyText(result)).toBe("ok");
    expect(bodyText(result)).toBe('<<RESULT>>{\n    "result": "ab"\n}<<RESULT>>\n');
    expect(stderrOf(result)).toBe("");
  });

  it("still warns when main is defined and called only from inside itself (it never ran)", async () => {
    const result = await sandbox.run(spec("python", "def main(n=3):\n    return main(n - 1) if n else 0\n"));
    expect(stderrOf(result)).toMatch(/main looks like one: name it handler/);
  });
});

describe("a handler result with a number JSON cannot carry", () => {
  it.each<[string, Runtime, string, RegExp]>([
    [
      "Python NaN in a dict",
      "python",
      "def handler(request):\n    return {'ratio': float('nan')}\n",
      /NaN or Infinity, which JSON cannot carry/,
    ],
    ["Python Infinity at the top", "python", "def handler(request):\n    return float('inf')\n", /NaN or Infinity/],
    [
      "Python -Infinity in a list with a status",
      "python",
      "def handler(request):\n    return [1, float('-inf')], 201\n",
      /NaN or Infinity/,
    ],
    ["JS NaN in an object", "node", "export default () => ({ ratio: 0 / 0 });\n", /holds NaN \(at "ratio"\), which JSON cannot carry/],
    ["JS Infinity at the top", "node", "export default () => Infinity;\n", /holds Infinity \(at the top level\)/],
  ])("ends `error` with a message naming it: %s", async (_, runtime, code, message) => {
    const result = await sandbox.run(spec(runtime, code));
    expect(result.status).toBe("error");
    expect(result.response).toBeNull();
    expect(result.errorMessage).toMatch(message);
  });

  it.each<[Runtime, string, string]>([
    ["python", "def handler(request):\n    return {'big': 1e308, 'small': -1e-308, 'n': 3}\n", '{"big": 1e+308, "small": -1e-308, "n": 3}'],
    ["node", "export default () => ({ big: 1e308, n: 3 });\n", '{"big":1e+308,"n":3}'],
  ])("still answers finite numbers (%s)", async (runtime, code, body) => {
    const result = await sandbox.run(spec(runtime, code));
    expect(bodyText(result)).toBe(body);
  });
});

/** The shape of a workflow tool's Python code node: the user's main(), then the tool's wrapper calling it and printing the result. */
const CODE_NODE_TEMPLATE = `def main(arg1: str, arg2: str) -> dict:
    return {
        "result": arg1 + arg2,
    }

import json

inputs_obj = json.loads('{"arg1": "a", "arg2": "b"}')
output_obj = main(**inputs_obj)
output_json = json.dumps(output_obj, indent=4)
result = f"""<<RESULT>>{output_json}<<RESULT>>"""
print(result)
`;

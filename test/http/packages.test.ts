import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingPackageHint } from "../../src/packages/hints.js";
import { type Gateway, makeGateway, PY_HELLO, register, runScenarios } from "./harness.js";

// The `packages` setting over the API: validation (table), and how versions, invocations and
// /healthz follow the state of a real package store whose environments were left by an earlier run.

const python = (packages: unknown) => ({
  method: "POST",
  url: "/api/functions",
  json: { name: "p", runtime: "python", code: PY_HELLO, packages },
});
const node = (packages: unknown) => ({
  method: "POST",
  url: "/api/functions",
  json: { name: "n", runtime: "node", code: "export default () => 1", packages },
});

describe("packages validation", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await makeGateway();
  });
  afterAll(() => gw.close());

  const refused = (name: string, request: ReturnType<typeof python>, message: RegExp) => ({
    name,
    ...request,
    expectedStatus: 400,
    expectedError: "invalid_packages",
    expectedMessage: message,
    after: (g: Gateway) => expect(g.cluster.functions.get(request.json.name)).toBeUndefined(),
  });
  runScenarios(
    () => gw,
    [
      refused("a pip option", python(["-e", "git+https://example.com/x.git"]), /packages\[0\].*pip options/),
      refused("a direct reference", python(["requests @ https://example.com/r.whl"]), /packages\[0\].*no URLs/),
      refused("a VCS URL", python(["numpy", "git+https://example.com/x.git"]), /packages\[1\]/),
      refused("an environment marker", python(["numpy; python_version > '3'"]), /environment markers/),
      refused("a path", python(["./wheels/numpy"]), /packages\[0\]/),
      refused("arbitrary equality", python(["numpy===1.0"]), /===/),
      refused("an invalid PEP 440 version", python(["numpy==1.0.0.dev.x"]), /PEP 440|not a requirement/),
      refused("one name with two constraints", python(["numpy==1.26.0", "NumPy==2.0.0"]), /listed twice/),
      refused("more than 32 entries", python(Array.from({ length: 33 }, (_, i) => `pkg${i}`)), /at most 32/),
      refused("a newline in a spec", python(["numpy\n--index-url=http://evil"]), /printable ASCII/),
      refused("an npm alias", node(["lodash-alias@npm:lodash@4"]), /aliases/),
      refused("a GitHub reference", node(["user/repo"]), /only registry packages/),
      refused("a file: spec", node(["file:../x"]), /packages\[0\]/),
      refused("a tarball URL", node(["https://example.com/x.tgz"]), /packages\[0\]/),
      refused("an npm option", node(["--registry=http://evil"]), /npm options/),
      refused("an invalid npm name", node(["_private"]), /invalid package name/),
      {
        name: "a list that is not an array",
        ...python("numpy"),
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /packages/,
      },
      {
        name: "an entry that is not a string",
        ...python([1]),
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /packages/,
      },
      {
        name: "a new version with a bad spec stores nothing",
        method: "PUT",
        url: "/api/functions/kept",
        json: { packages: ["numpy", "file:/etc"] },
        before: (g: Gateway) => register(g, { name: "kept" }),
        expectedStatus: 400,
        expectedError: "invalid_packages",
        expectedMessage: /packages\[1\]/,
        after: async (g: Gateway) => expect((await g.cluster.functions.versions("kept"))?.length).toBe(1),
      },
      {
        name: "valid packages on a gateway without a package store",
        ...python(["numpy>=2"]),
        expectedStatus: 503,
        expectedError: "packages_unavailable",
      },
      {
        name: "an empty list is no packages",
        ...python([]),
        expectedStatus: 201,
        after: async (_g: Gateway, _res: Response, text: string) =>
          expect(JSON.parse(text)).toMatchObject({ packages: [], environment: null, pending_version: null }),
      },
    ],
  );
});

// --- a real store with environments an earlier run left ------------------------------------

describe("the missing-package hint", () => {
  it.each([
    ["python", "ModuleNotFoundError: No module named 'yaml'\n", [], "yaml"],
    ["python", "ModuleNotFoundError: No module named 'requests.adapters'\n", ["numpy"], "requests"],
    ["python", "ModuleNotFoundError: No module named 'Foo_Bar'\n", ["foo-bar"], null],
    ["python", "ImportError: attempted relative import with no known parent package\n", [], null],
    ["node", "Error: Cannot find module 'lodash/fp'\nRequire stack:\n- /function.js\n", [], "lodash"],
    ["node", "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'zod' imported from /tmp/function.mjs\n", ["lodash@^4"], "zod"],
    [
      "node",
      'TypeError [ERR_UNSUPPORTED_RESOLVE_REQUEST]: Failed to resolve module specifier "@scope/pkg/sub" from "data:..."\n',
      [],
      "@scope/pkg",
    ],
    ["node", "Error: Cannot find module 'lodash'\n", ["lodash@4.17.21"], null],
    ["node", "Error: Cannot find module './local.js'\n", [], null],
    ["node", "Error: Cannot find module 'node:nothing'\n", [], null],
  ] as const)("%s: %j with packages %j → %s", (runtime, stderr, packages, missing) => {
    const hint = missingPackageHint(runtime, stderr, packages);
    expect(hint).toBe(missing === null ? null : `fngw: hint: '${missing}' is not installed; add it to the function's packages`);
  });
});

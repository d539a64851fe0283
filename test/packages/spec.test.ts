import { describe, expect, it } from "vitest";
import { MAX_PACKAGES, MAX_SPEC_LENGTH, normalisePackages, PackageSpecError } from "../../src/packages/spec.js";

const specs = (runtime: "python" | "node", input: unknown) => normalisePackages(runtime, input).map((p) => p.spec);

function refusal(runtime: "python" | "node", input: unknown): string {
  try {
    normalisePackages(runtime, input);
  } catch (error) {
    expect(error).toBeInstanceOf(PackageSpecError);
    return (error as PackageSpecError).message;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe("Python requirements", () => {
  it.each([
    ["requests==2.32.3", "requests==2.32.3"],
    ["numpy>=2", "numpy>=2"],
    ["NumPy >= 2 , < 3", "numpy<3,>=2"],
    ["Typing_Extensions", "typing-extensions"],
    ["zope.interface~=6.0", "zope-interface~=6.0"],
    ["httpx[HTTP2, brotli]==0.28.1", "httpx[brotli,http2]==0.28.1"],
    ["pandas==2.*", "pandas==2.*"],
    ["pydantic!=2.0.0", "pydantic!=2.0.0"],
  ])("accepts %j as %j", (input, expected) => {
    expect(specs("python", [input])).toEqual([expected]);
  });

  it("sorts by canonical name and merges duplicates", () => {
    expect(specs("python", ["requests", "Numpy>=2", "numpy >=2", "attrs"])).toEqual(["attrs", "numpy>=2", "requests"]);
  });

  it.each([
    ["-e git+https://example.com/x.git", /pip options/],
    ["--index-url=https://example.com/simple", /pip options/],
    ["-r requirements.txt", /pip options/],
    ["requests @ https://example.com/requests.whl", /no URLs/],
    ["git+https://github.com/psf/requests", /no URLs/],
    ["file:///tmp/x.whl", /no URLs/],
    ["http://example.com/x.tar.gz", /no URLs/],
    ["./local/package", /no paths/],
    ["/abs/package.whl", /no paths/],
    ["requests; python_version > '3'", /environment markers/],
    ["requests==2 ; extra == 'x'", /environment markers/],
    ["foo===bar", /arbitrary equality/],
    ["requests (>=2)", /parentheses/],
    ["requests==not a version", /not a requirement/],
    ["requests==1.0..0", /not a valid PEP 440/],
    ["-requests", /pip options/],
    ["requests==2\n--index-url=x", /printable ASCII/],
    ["requests\t==2", /printable ASCII/],
  ])("refuses %j", (input, message) => {
    expect(refusal("python", [input])).toMatch(message);
  });
});

describe("npm specs", () => {
  it.each([
    ["lodash@4", "lodash@4"],
    ["zod", "zod@*"],
    ["date-fns@^4.1.0", "date-fns@^4.1.0"],
    ["@scope/pkg@>=1 <2", "@scope/pkg@>=1 <2"],
    ["zod@latest", "zod@latest"],
    ["lodash@4.17.21", "lodash@4.17.21"],
  ])("accepts %j as %j", (input, expected) => {
    expect(specs("node", [input])).toEqual([expected]);
  });

  it("sorts by name and merges duplicates", () => {
    expect(specs("node", ["zod", "lodash@4", "lodash@ 4"])).toEqual(["lodash@4", "zod@*"]);
  });

  it.each([
    ["lodash@npm:underscore@1", /aliases/],
    ["git+https://github.com/lodash/lodash.git", /only registry packages.*git/],
    ["lodash/lodash", /only registry packages.*git/],
    ["lodash@github:lodash/lodash", /only registry packages/],
    ["file:../lodash", /only registry packages.*directory/],
    ["./lodash", /only registry packages.*directory/],
    ["lodash.tgz", /only registry packages.*file/],
    ["https://registry.example/lodash.tgz", /only registry packages.*remote/],
    ["--registry=http://evil.example", /npm options/],
    ["lodash@foo bar", /Invalid tag name/],
    ["node_modules", /invalid package name.*node_modules/],
    ["_private", /invalid package name/],
    ["lodash@4\n--ignore-scripts=false", /printable ASCII/],
    ["lodash@\u20284", /printable ASCII/],
  ])("refuses %j", (input, message) => {
    expect(refusal("node", [input])).toMatch(message);
  });
});

describe("the list itself", () => {
  it("must be an array of non-empty strings within the length bound", () => {
    expect(refusal("python", "numpy")).toMatch(/array of strings/);
    expect(refusal("node", [42])).toMatch(/packages\[0\] must be a string/);
    expect(refusal("python", ["ok", ""])).toMatch(/packages\[1\] must be 1 to 200 characters/);
    expect(refusal("node", ["a".repeat(MAX_SPEC_LENGTH + 1)])).toMatch(/at most|1 to 200/);
  });

  it(`holds at most ${MAX_PACKAGES} entries`, () => {
    const many = Array.from({ length: MAX_PACKAGES + 1 }, (_, i) => `pkg${i}`);
    expect(refusal("python", many)).toMatch(/at most 32 entries/);
    expect(specs("python", many.slice(0, MAX_PACKAGES))).toHaveLength(MAX_PACKAGES);
  });

  it("refuses one name listed with two different constraints", () => {
    expect(refusal("python", ["numpy>=2", "NumPy<2"])).toMatch(/numpy is listed twice with different constraints/);
    expect(refusal("node", ["lodash@4", "lodash@3"])).toMatch(/lodash is listed twice/);
  });

  it("accepts an empty list", () => {
    expect(specs("python", [])).toEqual([]);
  });
});

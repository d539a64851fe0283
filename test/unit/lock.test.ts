import { describe, expect, it } from "vitest";
import { checkNpmLock, LockError, parseLock, pipPins, sameLock } from "../../src/packages/lock.js";

// A stored lock is what every node but the first installs: read strictly, so that nothing in it
// reaches pip or npm as an option, a URL, a path or a link.

const npmLock = (packages: Record<string, unknown>) =>
  JSON.stringify({ name: "fngw-packages", lockfileVersion: 3, requires: true, packages: { "": { dependencies: {} }, ...packages } });
const IS_NUMBER = {
  version: "7.0.0",
  integrity: "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==",
};

describe("pip locks", () => {
  it("give their pins, in order, blank lines left out", () => {
    expect(pipPins("six==1.16.0\ntyping_extensions==4.12.2\n\nnumpy==2.1.0+local.1\n")).toEqual([
      "six==1.16.0",
      "typing_extensions==4.12.2",
      "numpy==2.1.0+local.1",
    ]);
  });

  it.each([
    ["an option", "--index-url=https://example.com/simple"],
    ["an option after a pin", "six==1.16.0\n-e git+https://example.com/x.git"],
    ["a direct reference", "six @ https://example.com/six.whl"],
    ["a range instead of a pin", "six>=1.16"],
    ["arbitrary equality", "six===1.16.0"],
    ["a path", "./six-1.16.0-py2.py3-none-any.whl"],
    ["an environment marker", 'six==1.16.0; python_version < "3"'],
    ["nothing at all", "\n\n"],
  ])("refuse %s", (_what, text) => {
    expect(() => pipPins(text)).toThrow(LockError);
  });
});

describe("npm locks", () => {
  it.each([
    ["registry packages without a resolved URL (omit-lockfile-registry-resolved)", { "node_modules/is-number": IS_NUMBER }],
    [
      "registry tarballs over HTTPS, nested copies too",
      {
        "node_modules/a": { ...IS_NUMBER, resolved: "https://registry.npmjs.org/a/-/a-1.0.0.tgz" },
        "node_modules/a/node_modules/b": { ...IS_NUMBER, resolved: "https://registry.npmjs.org/b/-/b-2.0.0.tgz" },
      },
    ],
  ])("accept %s", (_what, packages) => {
    expect(() => checkNpmLock(npmLock(packages))).not.toThrow();
  });

  it.each([
    ["a git dependency", { "node_modules/x": { ...IS_NUMBER, resolved: "git+ssh://git@github.com/x/x.git#abc" } }],
    ["a local file", { "node_modules/x": { ...IS_NUMBER, resolved: "file:../x" } }],
    ["a link", { "node_modules/x": { link: true, resolved: "../x" } }],
    ["no integrity hash", { "node_modules/x": { version: "1.0.0" } }],
    ["an entry outside node_modules", { "../escape": IS_NUMBER }],
  ])("refuse %s", (_what, packages) => {
    expect(() => checkNpmLock(npmLock(packages))).toThrow(LockError);
  });

  it("refuse what is not a package-lock.json of version 2 or later", () => {
    expect(() => checkNpmLock("six==1.16.0")).toThrow(/not JSON/);
    expect(() => checkNpmLock(JSON.stringify({ lockfileVersion: 1, dependencies: {} }))).toThrow(/version 2 or later/);
  });
});

describe("comparing locks", () => {
  it("compares the versions, not the text", () => {
    expect(sameLock("python", "six==1.16.0\nidna==3.7\n", "idna==3.7\nsix==1.16.0")).toBe(true);
    expect(sameLock("python", "six==1.16.0\n", "six==1.17.0\n")).toBe(false);
    expect(sameLock("python", "six==1.16.0\n", "six==1.16.0\nidna==3.7\n")).toBe(false);
    expect(sameLock("node", npmLock({ "node_modules/is-number": IS_NUMBER }), npmLock({ "node_modules/is-number": IS_NUMBER }))).toBe(true);
    expect(sameLock("node", npmLock({ "node_modules/is-number": IS_NUMBER }), npmLock({}))).toBe(false);
  });

  it("never finds a lock it cannot read equal to anything", () => {
    expect(sameLock("node", "not json", "not json")).toBe(false);
    expect(sameLock("python", null, null)).toBe(false);
    expect(parseLock("node", "{")).toBeNull();
  });
});

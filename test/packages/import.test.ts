import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InterpreterKind } from "../../src/core/runtimes.js";
import { normalisePackages } from "../../src/packages/index.js";
import { bodyJson, bodyText, spec, startSandbox, stopSandbox } from "../sandbox/harness.js";
import { closeStore, openStore, type StoreHandle } from "./harness.js";

// Real packages imported by locked-down functions: the environment is bound read-only at
// /packages in the slot's jail, under the full seccomp policy.

let store: StoreHandle;
let sandbox: Awaited<ReturnType<typeof startSandbox>>;
const trees: Partial<Record<InterpreterKind, string>> = {};

beforeAll(async () => {
  store = openStore();
  const lists: Record<InterpreterKind, string[]> = {
    python: ["numpy", "pandas", "pydantic", "requests", "httpx", "threadpoolctl"],
    node: ["lodash@4", "zod", "date-fns"],
  };
  await Promise.all(
    (Object.keys(lists) as InterpreterKind[]).map(async (runtime) => {
      const requested = store.store.request(runtime, normalisePackages(runtime, lists[runtime]));
      const record = await store.store.settledRecord(requested.key);
      if (record.state !== "ready") throw new Error(`${runtime} environment ${record.state}: ${record.error}\n${record.output}`);
      trees[runtime] = store.store.treeDir(record.key)!;
    }),
  );
  sandbox = await startSandbox();
}, 300_000);
afterAll(async () => {
  await stopSandbox(sandbox);
  await closeStore(store);
});

const run = (runtime: InterpreterKind, code: string) =>
  sandbox.sandbox.run(spec(runtime, code, { packagesDir: trees[runtime]!, memoryMb: 1024, timeoutMs: 30_000 }));

describe("Python packages in the jail", () => {
  it("numpy: a matrix product and an inverse, with OpenBLAS's threads", async () => {
    const result = await run(
      "python",
      `import os
import numpy as np, threadpoolctl
def handler(request):
    a = np.random.default_rng(7).random((400, 400)) + 400 * np.eye(400)
    product = a @ a
    inverse = np.linalg.inv(a)
    blas = threadpoolctl.threadpool_info()
    return {"identity": bool(np.allclose(a @ inverse, np.eye(400))), "trace": round(float(np.trace(product)) / 1e6, 1),
            "blas": [(pool["internal_api"], pool["num_threads"]) for pool in blas], "cpus": len(os.sched_getaffinity(0))}`,
    );
    expect(result.status).toBe("ok");
    const answer = bodyJson<{ identity: boolean; trace: number; blas: [string, number][]; cpus: number }>(result);
    expect(answer).toMatchObject({ identity: true, trace: expect.closeTo(64.3, 0) });
    // OpenBLAS runs one thread per CPU the sandbox may use, and they were not stopped by the filter.
    expect(answer.blas).toEqual([["openblas", answer.cpus]]);
  });

  it("pandas: a DataFrame group-by", async () => {
    const result = await run(
      "python",
      `import pandas as pd
def handler(request):
    frame = pd.DataFrame({"team": ["a", "b", "a", "b", "c"], "points": [1, 2, 3, 4, 5]})
    return frame.groupby("team")["points"].sum().to_dict()`,
    );
    expect(bodyJson(result)).toEqual({ a: 4, b: 6, c: 5 });
  });

  it("pydantic: validation by the compiled core", async () => {
    const result = await run(
      "python",
      `from pydantic import BaseModel, ValidationError
class Order(BaseModel):
    id: int
    tags: list[str] = []
def handler(request):
    try:
        Order(id="x")
        refused = False
    except ValidationError:
        refused = True
    return {"order": Order(id="42", tags=["a"]).model_dump(), "refused": refused}`,
    );
    expect(bodyJson(result)).toEqual({ order: { id: 42, tags: ["a"] }, refused: true });
  });

  it("requests and httpx import; the environment cannot be written", async () => {
    const result = await run(
      "python",
      `import requests, httpx
def handler(request):
    try:
        open("/packages/requests/__init__.py", "a")
        writable = True
    except OSError as error:
        writable = error.strerror
    return {"requests": requests.__version__, "httpx": httpx.__version__, "writable": writable}`,
    );
    expect(bodyJson(result)).toEqual({
      requests: expect.stringMatching(/^2\./),
      httpx: expect.stringMatching(/^0\./),
      writable: expect.stringMatching(/^(Read-only file system|Permission denied)$/),
    });
  });

  it("the standard library is not shadowed, and a function without packages sees none", async () => {
    const withPackages = await run(
      "python",
      `import sys, json\ndef handler(request):\n    return [sys.path[-1], json.__file__.startswith("/packages")]`,
    );
    expect(bodyJson(withPackages)).toEqual(["/packages", false]);
    const without = await sandbox.sandbox.run(spec("python", `import numpy`));
    expect(without.status).toBe("error");
    expect(without.stderr.data.toString()).toMatch(/No module named 'numpy'/);
  });
});

describe("Node packages in the jail", () => {
  it("lodash by an ES import and by require", async () => {
    const esm = await run("node", `import _ from "lodash";\nexport default () => _.chunk([1, 2, 3, 4, 5], 2);`);
    expect(bodyJson(esm)).toEqual([[1, 2], [3, 4], [5]]);
    const cjs = await run("node", `const _ = require("lodash");\nmodule.exports = () => _.kebabCase("Function Gateway");`);
    expect(bodyText(cjs)).toBe("function-gateway");
  });

  it("zod and date-fns (ES modules with named exports)", async () => {
    const result = await run(
      "node",
      `import { z } from "zod";
import { addDays, formatISO } from "date-fns";
const Order = z.object({ id: z.number().int(), tags: z.array(z.string()) });
export default () => ({
  order: Order.parse({ id: 42, tags: ["a"] }),
  refused: !Order.safeParse({ id: "x" }).success,
  day: formatISO(addDays(new Date(Date.UTC(2024, 1, 28, 12)), 1), { representation: "date" }),
});`,
    );
    expect(bodyJson(result)).toEqual({ order: { id: 42, tags: ["a"] }, refused: true, day: "2024-02-29" });
  });

  it("cannot write the environment, and a function without packages resolves none", async () => {
    const result = await run(
      "node",
      `import fs from "node:fs";\nexport default () => { try { fs.writeFileSync("/packages/node_modules/lodash/lodash.js", ""); return "written"; } catch (e) { return e.code; } };`,
    );
    expect(bodyText(result)).toMatch(/^(EROFS|EACCES)$/);
    const without = await sandbox.sandbox.run(spec("node", `const _ = require("lodash");\nmodule.exports = () => 1;`));
    expect(without.status).toBe("error");
    expect(without.stderr.data.toString()).toMatch(/Cannot find module 'lodash'/);
  });
});

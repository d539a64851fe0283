// End to end: TypeScript functions through the real gateway: deployed from a .ts file with the CLI,
// stored as written and run as the JavaScript they compile to, with interfaces, generics and a
// type-only import of the function's own package; a type syntax error refused at registration
// with its line; a thrown error's stack naming the .ts line.
import { describe, expect, it, vi } from "vitest";
import { runCli, workDir, writeFile } from "../cli/harness.js";
import { invocation, invocationId, type Json, register, uidBase, useGateway, waitFor } from "./harness.js";

vi.setConfig({ testTimeout: 120_000 });

const TOKEN = "e2e-typescript-token-9a1f4c7e20";
// The installer's uid sits in this file's uid block, above the sandbox slots.
const gateway = useGateway(TOKEN, { PACKAGES_UID: String(uidBase(0) + 99) });
const { call } = gateway;

const TYPED = `import { z } from "zod";
import type { ZodType } from "zod";

interface Order<Item> {
  items: Item[];
}
const schema: ZodType<Order<{ sku: string; qty: number }>> = z.object({
  items: z.array(z.object({ sku: z.string(), qty: z.number().int() })),
});

function total<T extends { qty: number }>(order: Order<T>): number {
  return order.items.reduce((sum, item) => sum + item.qty, 0);
}

export default async function (request: Request): Promise<Response> {
  const order = schema.parse(await request.json());
  return Response.json({ total: total(order) });
}
`;

describe("TypeScript functions", () => {
  it("deploys from a .ts file with the CLI, keeps the source as written, and runs with a type-only import of its package", async () => {
    const dir = workDir();
    const file = writeFile(dir, "orders.ts", TYPED);
    const deployed = await runCli(["deploy", file, "--packages", "zod@^3.23.0", "--json"], {
      env: { GATEWAY_URL: gateway.server.url, GATEWAY_TOKEN: TOKEN },
    });
    expect(deployed.code, deployed.stderr).toBe(0);
    const fn = (await (await call("/api/functions/orders")).json()) as Json;
    expect(fn).toMatchObject({ runtime: "typescript", code: TYPED });
    await waitFor(
      async () => ((await (await call("/api/functions/orders")).json()) as Json).environment?.state === "ready",
      "zod to be installed",
      8 * 60_000,
    );
    const res = await call("/fn/orders", {
      method: "POST",
      json: {
        items: [
          { sku: "a", qty: 2 },
          { sku: "b", qty: 3 },
        ],
      },
    });
    expect(res.status, JSON.stringify(await invocation(call, invocationId(res)))).toBe(200);
    expect(await res.json()).toEqual({ total: 5 });
  });

  it("refuses a type syntax error at registration, naming its line and column", async () => {
    const res = await call("/api/functions", {
      method: "POST",
      json: { name: "typo", runtime: "typescript", code: "interface A {\n  n: number;\n}\nconst a: A<> = { n: 1 };\n" },
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as Json;
    expect(error).toMatchObject({ code: "syntax_error", line: 4 });
    expect(error.message).toMatch(/at line 4, column \d+/);
  });

  it.each(["invocation", "function"] as const)("names the .ts line of a thrown error in its stack (isolation %s)", async (isolation) => {
    const name = `throws-${isolation}`;
    await register(call, {
      name,
      runtime: "typescript",
      isolation,
      code: `type Box<T> = { value: T };\n\nfunction open<T>(box: Box<T>): T {\n  throw new TypeError("empty box");\n}\nexport default (): string => String(open<number>({ value: 1 }));\n`,
    });
    const res = await call(`/fn/${name}`);
    expect(res.status).toBe(500);
    const row = await invocation(call, invocationId(res));
    expect(row).toMatchObject({ status: "error", error: "the function raised TypeError: empty box" });
    expect(row.stderr).toMatch(/function\.ts:4:\d+/);
  });
});

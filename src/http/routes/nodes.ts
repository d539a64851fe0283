import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { NodeRecord, NodeRecords } from "../../store/contract.js";
import { ErrorSchema, validationHook } from "../errors.js";
import { isoTime, json, operation, requires } from "../schemas.js";

const NodeSchema = z
  .object({
    id: z
      .string()
      .openapi({ description: "FLY_MACHINE_ID, or the id kept in the gateway's DATA_DIR/node-id", example: "node-3f2a9c0d1e4b" }),
    version: z.string().openapi({ description: "The gateway's version" }),
    state: z.enum(["live", "stopped", "lost"]).openapi({
      description: "live: its heartbeat is current; stopped: it stopped cleanly; lost: it missed its heartbeat for NODE_LEASE_MS",
    }),
    started_at: z.string(),
    last_heartbeat_at: z.string(),
    in_flight: z.number().int().openapi({ description: "Invocations admitted there at its last heartbeat" }),
    self: z.boolean().openapi({ description: "Whether this is the gateway that answered" }),
  })
  .openapi("Node");

/** GET /api/nodes (admin): the gateways sharing the database, mounted at /api/nodes. */
export function nodesApi(deps: { nodes: NodeRecords; self: string }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      summary: "The gateways that share this database, with their heartbeats",
      ...operation("operations", "listNodes"),
      ...requires("admin"),
      responses: {
        200: json(z.object({ items: z.array(NodeSchema) }), "Every gateway seen, oldest start first"),
        401: json(ErrorSchema, "Missing or wrong token"),
        403: json(ErrorSchema, "The token is not admin"),
      },
    }),
    async (c) => {
      const items = (await deps.nodes.list()).map((node) => nodeJson(node, deps.self));
      return c.json({ items }, 200);
    },
  );
  return app;
}

function nodeJson(node: NodeRecord, self: string): z.infer<typeof NodeSchema> {
  return {
    id: node.id,
    version: node.version,
    state: node.stoppedAt !== null ? "stopped" : node.lostAt !== null ? "lost" : "live",
    started_at: isoTime(node.startedAt),
    last_heartbeat_at: isoTime(node.heartbeatAt),
    in_flight: node.inFlight,
    self: node.id === self,
  };
}

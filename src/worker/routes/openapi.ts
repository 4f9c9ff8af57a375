// GET /openapi.json: generated from the route declarations (routes/spec.ts), whose zod schemas are the ones the
// routes validate with, so the document cannot drift from the server.
import { OpenAPIHono } from "@hono/zod-openapi";
import { STATEMENT_COMPONENTS } from "../http/schemas";
import { API_ROUTES } from "./spec";

const SECURITY: Record<string, string[]>[] = [{ bearer: [] }, { basic: [] }];

let cached: Record<string, unknown> | undefined;

/** The OpenAPI 3.1 document, built once per isolate. */
export function openApiDocument(): Record<string, unknown> {
  if (cached !== undefined) {
    return cached;
  }
  const generator = new OpenAPIHono();
  const registry = generator.openAPIRegistry;
  registry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A token from DHA_TOKENS",
  });
  registry.registerComponent("securitySchemes", "basic", {
    type: "http",
    scheme: "basic",
    description: "Any user name, the token as password (for rqlite clients)",
  });
  for (const [name, schema] of Object.entries(STATEMENT_COMPONENTS)) {
    registry.register(name, schema);
  }
  for (const { route, access } of API_ROUTES) {
    registry.registerPath({ ...route, security: access === "public" ? [] : SECURITY });
  }
  cached = generator.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "durable-ha",
      version: "0.1.0",
      description:
        "A Raft-replicated SQLite database on Durable Objects. The data API is wire-compatible with rqlite; the cluster API (/api/v1/cluster) reports health, leadership and membership and changes them. Unknown query parameters are ignored, as rqlite does; flags count by presence.",
    },
    security: SECURITY,
  }) as unknown as Record<string, unknown>;
  return cached;
}

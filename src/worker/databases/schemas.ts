// The databases API's shapes (PUT /api/v1/databases/{name} and the catalog entries), as zod schemas: the routes
// validate with them and /openapi.json is generated from them.
import { z } from "@hono/zod-openapi";
import { CONFIG_LIMITS, DATABASE_NAME_LIMITS, databaseNameProblem } from "../../objects/api";
import { LOCATION_HINTS, nodeNameSchema } from "../http/schemas";

/**
 * Node names one generation of a database may have added at run time (configured members not counted; a name added
 * again counts once), each recorded in the catalog: a drop calls each of them twice, with the configured members.
 */
export const MAX_ADDED_NODES = 64;

export const DATABASE_STATES = ["CREATING", "ONLINE", "DROPPING", "DROPPED"] as const;
export type DatabaseState = (typeof DATABASE_STATES)[number];

export const databaseNameSchema = z
  .string()
  .superRefine((name, ctx) => {
    const problem = databaseNameProblem(name);
    if (problem !== null) {
      ctx.addIssue({ code: "custom", message: problem });
    }
  })
  .openapi({
    pattern: "^[a-z0-9][a-z0-9_-]*$",
    minLength: 1,
    maxLength: DATABASE_NAME_LIMITS.maxLength,
    example: "tenant-42",
    description: `1 to ${DATABASE_NAME_LIMITS.maxLength} lowercase letters, digits, '-' or '_', starting with a letter or digit; "default" is reserved`,
  });

export const databaseParamsSchema = z.object({
  name: databaseNameSchema.openapi({ param: { name: "name", in: "path" } }),
});

/** A path's {database}: any name the data routes may address ("default" is the database of wrangler.toml). */
export const databasePathSchema = z.object({
  database: z.string().openapi({
    param: { name: "database", in: "path" },
    example: "tenant-42",
    description: 'A database name; "default" is the database of wrangler.toml',
  }),
});

const locationHintSchema = z.enum(LOCATION_HINTS);

const timingMs = (what: string, min: number, max: number) =>
  z
    .number()
    .int()
    .min(min)
    .max(max)
    .optional()
    .openapi({ description: `${what} in milliseconds` });

export const createDatabaseBodySchema = z
  .strictObject({
    nodes: z
      .union([
        z.number().int().min(1).max(CONFIG_LIMITS.maxMembers),
        z.array(nodeNameSchema).min(1).max(CONFIG_LIMITS.maxMembers),
      ])
      .optional()
      .openapi({
        description: `A node count (nodes n1, n2, ...) or the node names; default: the nodes of CLUSTER_NODES. At most ${CONFIG_LIMITS.maxMembers}`,
      }),
    locationHints: z.array(locationHintSchema).min(1).max(CONFIG_LIMITS.maxMembers).optional().openapi({
      description:
        "Durable Object location hints given to the nodes in order, repeated when shorter than the node list",
    }),
    heartbeatIntervalMs: timingMs(
      "Heartbeat interval (default HEARTBEAT_INTERVAL_MS)",
      CONFIG_LIMITS.minHeartbeatIntervalMs,
      CONFIG_LIMITS.maxHeartbeatIntervalMs,
    ),
    electionTimeoutMs: timingMs(
      "Election timeout, at least 3 heartbeats (default ELECTION_TIMEOUT_MS)",
      CONFIG_LIMITS.minHeartbeatIntervalMs * CONFIG_LIMITS.minElectionTicks,
      CONFIG_LIMITS.maxElectionTimeoutMs,
    ),
  })
  .openapi("CreateDatabaseRequest");

export type CreateDatabaseBody = z.output<typeof createDatabaseBodySchema>;

const memberSchema = z.object({ name: z.string(), locationHint: z.string().optional() });

/** The resolved options a database runs with (stored in the catalog; compared by a repeated PUT). */
export const databaseOptionsSchema = z
  .object({
    members: z.array(memberSchema),
    heartbeatIntervalMs: z.number().int(),
    electionTimeoutMs: z.number().int(),
  })
  .openapi("DatabaseOptions");

export type DatabaseOptions = z.output<typeof databaseOptionsSchema>;

export const databaseEntrySchema = z
  .object({
    name: z.string(),
    state: z.enum(DATABASE_STATES),
    generation: z.number().int().openapi({ description: "Bumped each time the name is created again after a drop" }),
    options: databaseOptionsSchema,
    createdAt: z.string().openapi({ format: "date-time" }),
    updatedAt: z.string().openapi({ format: "date-time" }),
    reason: z.string().nullable().openapi({ description: "Why the last transition happened" }),
    leader: z.string().nullable().optional().openapi({ description: "The leader, when asked and known" }),
    sizeBytes: z
      .number()
      .int()
      .nullable()
      .optional()
      .openapi({ description: "The leader's storage size in bytes, when known" }),
  })
  .openapi("Database");

export type DatabaseEntry = z.output<typeof databaseEntrySchema>;

export const databaseListSchema = z.object({ databases: z.array(databaseEntrySchema) }).openapi("DatabaseList");

// The shapes of request bodies, headers and responses, as zod schemas. The routes validate with them and
// /openapi.json is generated from them (routes/spec.ts), so the document and the server cannot disagree.
// Responses are written by the handlers in rqlite's exact wire form; the API tests check every body against these.
import { z } from "@hono/zod-openapi";
import { memberProblem } from "../config";
import {
  IDEMPOTENCY_HEADER,
  IDEMPOTENCY_KEY,
  NODE_NAME_PATTERN,
  queryOf,
  RAFT_INDEX,
  RAFT_INDEX_HEADER,
} from "./params";

// ---------------------------------------------------------------------------------------------------------------
// Node names and members (the objects' rules: validateMember in src/objects/config.ts)

export { NODE_NAME_PATTERN } from "./params";
/** Durable Object location hints the objects accept. */
export const LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const;

export const nodeNameSchema = z
  .string()
  .superRefine((name, ctx) => {
    const problem = memberProblem({ name });
    if (problem !== null) {
      ctx.addIssue({ code: "custom", message: problem });
    }
  })
  .openapi({ pattern: NODE_NAME_PATTERN, minLength: 1, maxLength: 64, example: "n2" });

export const transferBodySchema = z.strictObject({ to: nodeNameSchema }).openapi("TransferRequest");

/** POST /leader: the body may be empty; when it is not, it names the node to hand over to. */
export const leaderBodySchema = z.strictObject({ id: nodeNameSchema }).openapi("LeaderRequest");

export const memberBodySchema = z
  .strictObject({
    name: nodeNameSchema,
    locationHint: z
      .string()
      .optional()
      .openapi({
        enum: [...LOCATION_HINTS],
        description: "A Durable Object location hint; validated by the nodes' rules",
      }),
  })
  .openapi("MemberRequest");

export const memberNameParamsSchema = z.object({
  name: nodeNameSchema.openapi({ param: { name: "name", in: "path" } }),
});

// ---------------------------------------------------------------------------------------------------------------
// Statements (rqlite's request body), parsed by data/statements.ts

const sqlSchema = z.string().regex(/^$|\S/).openapi({
  description:
    'One SQL statement (at most 100 KB). "" is skipped, as rqlite does (no entry in results); only whitespace is refused',
});
const byteArraySchema = z.array(z.number().int().min(0).max(255)).openapi({ description: "A BLOB, as its bytes" });
const positionalValueSchema = z
  .union([z.null(), z.string(), z.number(), z.boolean(), byteArraySchema])
  .openapi("SqlValue", {
    description:
      "null, text, a number, a boolean (bound as 1/0) or a byte array (a BLOB). An integer within 64 bits is bound exactly as an INTEGER; one beyond binds as a REAL, as in rqlite.",
  });
const namedValuesSchema = z
  .record(z.string(), positionalValueSchema)
  .openapi("NamedValues", { description: "Named parameters (:name, @name, $name)" });

// The generator drops a tuple's rest element: the document states it explicitly (the same schemas, by reference;
// routes/openapi.ts registers them as components).
export const STATEMENT_COMPONENTS = { SqlValue: positionalValueSchema, NamedValues: namedValuesSchema } as const;
export const statementSchema = z
  .union([
    sqlSchema,
    z.tuple([sqlSchema], positionalValueSchema).openapi({
      description: "[sql, ...positional values] (at most 100)",
      minItems: 1,
      items: { $ref: "#/components/schemas/SqlValue" },
    }),
    z.tuple([sqlSchema], namedValuesSchema).openapi({
      description: "[sql, {named values}]; positional and named do not mix",
      minItems: 1,
      items: { $ref: "#/components/schemas/NamedValues" },
    }),
  ])
  .openapi("Statement");

export const statementsSchema = z
  .array(statementSchema)
  .min(1)
  .max(1000)
  .openapi("Statements", { description: "At most 1000 statements; the whole body at most 1 MiB" });

// ---------------------------------------------------------------------------------------------------------------
// Headers (checked by the handlers with the same patterns: idempotencyKeyOf and minRaftIndexOf in ./params)

export const idempotencyHeaderSchema = z.object({
  [IDEMPOTENCY_HEADER]: z
    .string()
    .regex(IDEMPOTENCY_KEY)
    .optional()
    .openapi({ description: "Makes retries safe: the same key (per token) is applied at most once" }),
});

export const raftIndexHeaderSchema = z.object({
  [RAFT_INDEX_HEADER]: z
    .string()
    // The handlers' own check (minRaftIndexOf): a log index, or empty for none.
    .regex(new RegExp(`^(?:${RAFT_INDEX.source.slice(1, -1)})?$`))
    .optional()
    .openapi({
      description:
        "Read-your-writes: serve only once the node has applied this log index (any node may serve); empty means none",
    }),
});

// ---------------------------------------------------------------------------------------------------------------
// Responses

export const errorSchema = z.strictObject({ error: z.string() }).openapi("Error");

export const requestErrorSchema = z
  .strictObject({ results: z.array(z.unknown()).max(0), error: z.string() })
  .openapi("RequestError", {
    description: "rqlite's request-level error: nothing was applied (unless the status is 504)",
  });

const secondsSchema = z.number().positive();
const integerSchema = z.number().int();

/**
 * A value as rendered: BLOBs are base64 text, or byte arrays with blob_array; a column declared BOOLEAN shows its
 * INTEGERs as true/false, and one declared DATE, DATETIME or TIMESTAMP its INTEGERs and TEXT as RFC 3339 text.
 */
const cellSchema = z.union([z.null(), z.boolean(), z.number(), z.string(), byteArraySchema]).openapi({
  description:
    "NULL, a number, text, or a BLOB (base64, or bytes with blob_array); true/false in a column declared BOOLEAN, " +
    "RFC 3339 text for INTEGERs and TEXT in a column declared DATE, DATETIME or TIMESTAMP (as rqlite shows them)",
});

export const executeResultSchema = z
  .strictObject({
    last_insert_id: integerSchema.optional(),
    rows_affected: integerSchema.optional(),
    error: z.string().optional(),
    time: secondsSchema.optional(),
  })
  .openapi("ExecuteResult", { description: "Zero and empty fields are omitted, as rqlite does" });

const queryResultSchema = z
  .strictObject({
    columns: z.array(z.string()).optional(),
    types: z.array(z.string()).optional(),
    values: z.array(z.array(cellSchema)).optional(),
    error: z.string().optional(),
    time: secondsSchema.optional(),
  })
  .openapi("QueryResult", { description: "No values key on an empty result set" });

const associativeQueryResultSchema = z
  .strictObject({
    types: z.record(z.string(), z.string()).optional(),
    rows: z.array(z.record(z.string(), cellSchema)),
    error: z.string().optional(),
    time: secondsSchema.optional(),
  })
  .openapi("AssociativeQueryResult", { description: "With ?associative: rows as maps keyed by column" });

/** /db/request: an execute result in associative form carries "rows": null, as rqlite's does. */
const associativeExecuteResultSchema = z
  .strictObject({
    last_insert_id: integerSchema.optional(),
    rows_affected: integerSchema.optional(),
    error: z.string().optional(),
    time: secondsSchema.optional(),
    rows: z.null(),
  })
  .openapi("AssociativeExecuteResult");

const responseEnvelope = <T extends z.ZodType>(results: T) =>
  z.strictObject({
    results: z.array(results),
    error: z.string().optional(),
    time: secondsSchema.optional(),
    raft_index: integerSchema.positive().optional(),
  });

/** A write with RETURNING answers its rows on /db/execute as a (never associative) query result, as rqlite does. */
export const executeResponseSchema = responseEnvelope(z.union([executeResultSchema, queryResultSchema])).openapi(
  "ExecuteResponse",
);
export const queryResponseSchema = responseEnvelope(z.union([queryResultSchema, associativeQueryResultSchema])).openapi(
  "QueryResponse",
);
export const requestResponseSchema = responseEnvelope(
  z.union([queryResultSchema, associativeQueryResultSchema, executeResultSchema, associativeExecuteResultSchema]),
).openapi("RequestResponse");

export const nodeEntrySchema = z
  .strictObject({
    id: z.string(),
    api_addr: z.string(),
    addr: z.string(),
    voter: z.boolean(),
    reachable: z.boolean(),
    leader: z.boolean(),
    time: secondsSchema.optional(),
    error: z.string().optional(),
  })
  .openapi("Node", { description: "rqlite's /nodes entry; time is the status call's duration in seconds" });

export const nodesResponseSchema = z
  .union([
    z.strictObject({ nodes: z.array(nodeEntrySchema) }).openapi({ description: "With ver=2" }),
    z
      .record(z.string().regex(new RegExp(NODE_NAME_PATTERN)), nodeEntrySchema)
      .openapi({ description: "Otherwise: a map keyed by node id" }),
  ])
  .openapi("Nodes");

export const leaderEntrySchema = z
  .strictObject({
    ...nodeEntrySchema.shape,
    time_s: z.string().openapi({ description: "The status call's duration as a Go duration" }),
  })
  .openapi("LeaderNode");

export const leadershipSchema = z
  .strictObject({ leader: z.string(), term: integerSchema.nonnegative() })
  .openapi("Leadership");
export const repairSchema = z
  .strictObject({
    node: z.string(),
    imageIndex: integerSchema.positive().openapi({ description: "The leader's applied index the image carried" }),
    durationMs: z.number().nonnegative(),
  })
  .openapi("Repair");

const pendingFollowUpSchema = z
  .strictObject({ action: z.enum(["start", "leave"]), node: z.string(), detail: z.string() })
  .openapi("PendingFollowUp", {
    description:
      "A step after the committed change that had not finished by the deadline (start the new member, tell the " +
      "removed one to stop); it goes on without the caller",
  });

const failedFollowUpSchema = z
  .strictObject({ action: z.enum(["start", "leave"]), node: z.string(), error: z.string(), detail: z.string() })
  .openapi("FailedFollowUp", {
    description:
      "A step after the committed change that failed, or that the member refused, before the deadline (the start " +
      "of the new member): what failed, and what happens without it",
  });

export const membershipSchema = z
  .strictObject({
    voters: z.array(z.string()),
    learners: z.array(z.string()),
    pending: z.array(pendingFollowUpSchema).optional(),
    failed: z.array(failedFollowUpSchema).optional(),
  })
  .openapi("Membership");

const roleSchema = z.enum(["leader", "follower", "candidate", "preCandidate"]);
const electionSchema = z.strictObject({
  status: z.enum(["NO_LEADER", "VOTING", "ELECTED"]),
  term: integerSchema.nonnegative(),
  lastElectionMs: z.number().nonnegative().nullable(),
});

export const healthSchema = z
  .strictObject({
    cluster: z.string(),
    status: z.enum(["HEALTHY", "DEGRADED", "UNHEALTHY"]),
    reportingNode: z.string().nullable(),
    leader: z.string().nullable(),
    term: integerSchema.nonnegative(),
    election: electionSchema,
    configuredServers: integerSchema.nonnegative(),
    onlineServers: integerSchema.nonnegative(),
    onlineReplicas: integerSchema.nonnegative(),
    voters: z.array(z.string()),
    learners: z.array(z.string()),
    quorum: integerSchema.positive(),
    quorumAvailable: z.boolean(),
    schemaAgreement: z.boolean(),
    replicas: z.array(
      z.strictObject({
        name: z.string(),
        isLearner: z.boolean(),
        status: z.enum(["JOINING", "ONLINE", "LAGGING", "RECONNECTING", "OFFLINE"]),
        matchIndex: integerSchema.nonnegative(),
        lag: integerSchema.nonnegative(),
        lastContactMs: z.number().nonnegative().nullable(),
        consecutiveFailures: integerSchema.nonnegative(),
        reconnections: integerSchema.nonnegative(),
        breaker: z.enum(["CLOSED", "OPEN", "HALF_OPEN"]),
        schemaVersion: integerSchema.nonnegative().nullable(),
        schemaHash: z.string().nullable(),
        reachable: z.boolean(),
        consistency: z.enum(["UNCHECKED", "CONSISTENT", "DIVERGED", "REPAIRING"]).nullable().openapi({
          description: "The consistency monitor's verdict on the replica (null from a node of an older version)",
        }),
        consistencyCheckedIndex: integerSchema.nonnegative().nullable(),
        consistencyDetail: z.string().nullable(),
      }),
    ),
    nodes: z.array(
      z.strictObject({
        name: z.string(),
        reachable: z.boolean(),
        role: roleSchema.nullable(),
        term: integerSchema.nonnegative().nullable(),
        leader: z.string().nullable(),
        commitIndex: integerSchema.nonnegative().nullable(),
        appliedIndex: integerSchema.nonnegative().nullable(),
        schemaVersion: integerSchema.nonnegative().nullable(),
        schemaHash: z.string().nullable(),
        locationHint: z.string().nullable(),
        responseMs: z.number().nonnegative(),
        error: z.string().nullable(),
        consistency: z.enum(["OK", "DIVERGED"]).nullable().openapi({
          description: "DIVERGED: the node's own digests contradict the majority's; it serves no reads until repaired",
        }),
      }),
    ),
    consistency: z.strictObject({
      enabled: z.boolean().nullable(),
      repair: z.enum(["auto", "manual"]).nullable(),
      diverged: z.array(z.string()),
      undecided: z
        .strictObject({
          checkpointIndex: integerSchema.nonnegative(),
          agreeing: z.array(z.string()),
          differing: z.array(z.string()),
          atMs: z.number(),
        })
        .nullable()
        .openapi({
          description:
            "Set while the leader's last image checkpoint found the voters split with no majority either way: no snapshot image is sent until an operator decides (README, consistency monitor)",
        }),
    }),
    problems: z.array(z.string()),
    checkedAt: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Health");

export const clusterSchema = z
  .strictObject({
    name: z.string(),
    leader: z.string().nullable(),
    term: integerSchema.nonnegative(),
    heartbeatIntervalMs: integerSchema.positive(),
    electionTimeoutMs: integerSchema.positive(),
    members: z.array(
      z.strictObject({
        name: z.string(),
        role: z.enum(["leader", "follower", "candidate", "preCandidate", "learner", "unknown", "removed"]),
        voter: z.boolean(),
        learner: z.boolean(),
        configured: z.boolean(),
        locationHint: z.string().nullable(),
        reachable: z.boolean(),
      }),
    ),
  })
  .openapi("Cluster");

const statusDocumentSchema = z
  .strictObject({
    build: z.strictObject({ name: z.string(), protocol_version: integerSchema }),
    http: z.strictObject({ api_addr: z.string(), auth: z.literal("enabled") }),
    cluster: z.strictObject({
      name: z.string(),
      heartbeat_interval_ms: integerSchema.positive(),
      election_timeout_ms: integerSchema.positive(),
      members: z.array(z.strictObject({ name: z.string(), location_hint: z.string().nullable() })),
    }),
    node: z.strictObject({
      id: z.string(),
      addr: z.string(),
      location_hint: z.string().nullable(),
      status_time: z.number().nonnegative(),
      current_time: z.string().openapi({ format: "date-time" }),
    }),
    store: z.strictObject({
      node_id: z.string(),
      started: z.boolean(),
      member: z.boolean(),
      ready: z.boolean(),
      leader: z.strictObject({ node_id: z.string(), addr: z.string() }).nullable(),
      raft: z.strictObject({
        state: z.enum(["Leader", "Follower", "Candidate", "PreCandidate"]),
        term: integerSchema.nonnegative(),
        commit_index: integerSchema.nonnegative(),
        applied_index: integerSchema.nonnegative(),
        last_log_index: integerSchema.nonnegative(),
        first_log_index: integerSchema.nonnegative(),
        voters: z.array(z.string()),
        learners: z.array(z.string()),
        last_leader_contact_ms: z.number().nonnegative().nullable(),
        election: z.strictObject({
          status: z.enum(["NO_LEADER", "VOTING", "ELECTED"]),
          term: integerSchema.nonnegative(),
          last_election_ms: z.number().nonnegative().nullable(),
        }),
      }),
      schema: z.strictObject({ version: integerSchema.nonnegative(), hash: z.string() }),
    }),
  })
  .openapi("Status");

/** /status: the whole document, or with ?key= the sub-document at that path (any JSON value; {} when absent). */
export const statusResponseSchema = z
  .union([statusDocumentSchema, z.unknown().openapi({ description: "With ?key=: the sub-document at that path" })])
  .openapi("StatusResponse");

// ---------------------------------------------------------------------------------------------------------------
// GET /api/v1/cluster/events

export const MAX_EVENTS_LIMIT = 1_000;

export const eventsQuerySchema = queryOf("timeout").extend({
  limit: z
    .string()
    .regex(/^[0-9]{1,4}$/, { error: `limit must be a whole number from 1 to ${MAX_EVENTS_LIMIT}` })
    .transform(Number)
    .refine((limit) => limit >= 1 && limit <= MAX_EVENTS_LIMIT, {
      error: `limit must be a whole number from 1 to ${MAX_EVENTS_LIMIT}`,
    })
    .optional()
    .openapi({
      description: `At most this many of the newest events, 1 to ${MAX_EVENTS_LIMIT} (default 100)`,
      pattern: "^[0-9]{1,4}$",
    }),
  since: z
    .string()
    .transform((text, ctx) => {
      const ms = /^[0-9]{1,15}$/.test(text) ? Number(text) : Date.parse(text);
      if (!Number.isFinite(ms)) {
        ctx.addIssue({
          code: "custom",
          message: `since ${JSON.stringify(text)} is neither epoch milliseconds nor an ISO 8601 time`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .optional()
    .openapi({ description: "Only events at or after this time: epoch milliseconds or an ISO 8601 time" }),
});

export const eventsResponseSchema = z
  .strictObject({
    cluster: z.string(),
    events: z.array(
      z.strictObject({
        time: z.string().openapi({ format: "date-time" }),
        timeMs: z.number(),
        node: z.string(),
        event: z.string(),
        level: z.string(),
        term: integerSchema.nonnegative(),
        commitIndex: integerSchema.nonnegative().nullable(),
        details: z.record(z.string(), z.unknown()),
      }),
    ),
    nodes: z.array(
      z.strictObject({
        name: z.string(),
        reachable: z.boolean(),
        events: integerSchema.nonnegative(),
        clockOffsetMs: z.number().nullable(),
        error: z.string().nullable(),
      }),
    ),
    maxEventsPerNode: integerSchema.positive(),
  })
  .openapi("ClusterEvents");
